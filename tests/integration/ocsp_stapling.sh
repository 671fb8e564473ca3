#!/bin/bash
# OCSP stapling in a server-verification profile: nginx staples a response
# made by `openssl ocsp` from the CA's database. With ocsp = required and
# revocation = fail-closed: a stapled "good" passes, a stapled "revoked" is
# refused as revoked, no staple at all is refused as revocation_unknown;
# with ocsp = optional and fail-open, a server without a staple passes.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init ocsp_stapling
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "OCSP CA"
pki_server_cert "$T/ca" "$T/good" localhost "DNS:localhost"
pki_server_cert "$T/ca" "$T/bad" localhost "DNS:localhost"
pki_revoke "$T/ca" "$T/bad.pem" >/dev/null
staple() { # CERTPREFIX: a DER OCSP response for it, signed by the CA
	openssl ocsp -issuer "$T/ca/ca.pem" -cert "$1.pem" -no_nonce -reqout "$1.req" 2>/dev/null
	openssl ocsp -index "$T/ca/index.txt" -rsigner "$T/ca/ca.pem" -rkey "$T/ca/ca.key" \
		-CA "$T/ca/ca.pem" -reqin "$1.req" -respout "$1.ocsp" -ndays 1 >/dev/null 2>&1
}
staple "$T/good"
staple "$T/bad"
pg=$(t_free_port); nginx_start "$T/ng" "$pg" "$T/ca/ca.pem" "$T/good.pem" "$T/good.key" "" "$T/good.ocsp"
pb=$(t_free_port); nginx_start "$T/nb" "$pb" "$T/ca/ca.pem" "$T/bad.pem" "$T/bad.key" "" "$T/bad.ocsp"
pn=$(t_free_port); nginx_start "$T/nn" "$pn" "$T/ca/ca.pem" "$T/good.pem" "$T/good.key"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=ocsp-device"
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[profile must-staple]
	ca = $T/ca/ca.pem
	ocsp = required
	revocation = fail-closed

	[profile may-staple]
	ca = $T/ca/ca.pem
	ocsp = optional
	revocation = fail-open

	[rule lenient]
	hosts = localhost
	ports = $pn
	action = allow
	identity = dev
	profile = may-staple

	[rule strict]
	hosts = localhost
	action = allow
	identity = dev
	profile = must-staple
	EOF
agent_start "$conf"
connect() { # PORT -> the CONNECT answer's status line and reason header
	printf 'CONNECT localhost:%s HTTP/1.1\r\n\r\n' "$1" |
		socat -t 30 - "UNIX-CONNECT:$T/agent.sock" 2>/dev/null | tr -d '\r' |
		grep -E '^HTTP/1.1|^X-Mtls-Reason' || true
}
out=$(curl -sS --max-time 30 -x "socks5h://localhost$T/agent.sock" "http://localhost:$pg/")
[[ $out == *"dn=CN=ocsp-device verify=SUCCESS"* ]] || t_fail "stapled good: $out"
echo "ok: a stapled 'good' answer passes ocsp = required"
resp=$(connect "$pb")
grep -q 'X-Mtls-Reason: revoked' <<<"$resp" || t_fail "stapled revoked: $resp"
echo "ok: a stapled 'revoked' answer is refused as revoked"
# A server without a staple under the strict profile (the lenient rule
# covers only port $pn).
pn2=$(t_free_port); nginx_start "$T/nn2" "$pn2" "$T/ca/ca.pem" "$T/good.pem" "$T/good.key"
resp=$(connect "$pn2")
grep -q 'X-Mtls-Reason: revocation_unknown' <<<"$resp" || t_fail "no staple, required: $resp"
echo "ok: no staple under ocsp = required is refused as revocation_unknown"
out=$(curl -sS --max-time 30 -x "socks5h://localhost$T/agent.sock" "http://localhost:$pn/")
[[ $out == *"dn=CN=ocsp-device verify=SUCCESS"* ]] || t_fail "optional, no staple: $out"
echo "ok: no staple under ocsp = optional passes"
t_pass "OCSP stapling"
