#!/bin/bash
# The agent socket: SOCKS5 (Unix socket) and HTTP CONNECT (loopback port),
# routed by the policy. The identity is chosen by destination; another uid
# is denied; each server-side failure reaches the program with its reason;
# mtlsctl connect bridges a pipe; mtlsctl policy check explains; a rule
# letting a dev identity reach prod does not load.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init proxy_policy
# Another uid must reach the socket (and be refused by the policy).
chmod 711 "$T"
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Corp CA"
pki_ca "$T/other" "Other CA"
pki_server_cert "$T/ca" "$T/good" localhost "DNS:localhost"
pki_server_cert "$T/ca" "$T/rotated" localhost "DNS:localhost"
pki_server_cert "$T/ca" "$T/revoked" localhost "DNS:localhost"
pki_server_cert "$T/ca" "$T/expired" localhost "DNS:localhost" expired
pki_server_cert "$T/other" "$T/foreign" localhost "DNS:localhost"
pki_revoke "$T/ca" "$T/revoked.pem" >/dev/null
pki_crl "$T/ca"
spki_pin() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64
}
pin_good=$(spki_pin "$T/good.pem")
pin_rotated=$(spki_pin "$T/rotated.pem")

ca=$T/ca/ca.pem
pA=$(t_free_port); nginx_start "$T/ngxA" "$pA" "$ca" "$T/good.pem" "$T/good.key"
pB=$(t_free_port); nginx_start "$T/ngxB" "$pB" "$ca" "$T/good.pem" "$T/good.key"
srv() { # NAME CERTPREFIX -> port
	local p
	p=$(t_free_port)
	s_server_start "$T/$1" "$p" "$ca" "$2.pem" "$2.key" >/dev/null
	echo "$p"
}
pP=$(srv pinned "$T/good")
pR=$(srv revoked "$T/revoked")
pE=$(srv expired "$T/expired")
pF=$(srv foreign "$T/foreign")
proxy_port=$(t_free_port)

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" corp "$ca"
agent_conf_identity "$conf" dev "$ca"
identity_provision "$conf" corp ec-p256 "$T/ca" "CN=corp-device"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=dev-device"
sed -i '/^\[identity corp\]$/a env = prod' "$conf"
sed -i '/^\[identity dev\]$/a env = dev' "$conf"
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock
	mode = 0666

	[proxy tcp]
	listen = 127.0.0.1:$proxy_port

	[destinations prod]
	env = prod
	hosts = localhost
	ports = $pA, $pP, $pR, $pE, $pF

	[destinations dev]
	env = dev
	hosts = localhost
	ports = $pB

	[profile corp]
	ca = $ca
	names = localhost
	; the current key and the next one: rotation without an outage
	pins = sha256//$pin_rotated, sha256//$pin_good
	min_tls = 1.3

	[profile badpin]
	ca = $ca
	pins = sha256//$pin_rotated

	[profile crl]
	ca = $ca
	crl = $T/ca/crl.pem
	revocation = fail-closed

	[profile dev]
	ca = $ca

	[rule blocked]
	hosts = blocked.example
	action = deny
	reason = blocked by the test policy

	[rule corp-pinned]
	uid = root
	hosts = localhost
	ports = $pP
	action = allow
	identity = corp
	profile = badpin

	[rule corp-revocation]
	uid = 0
	hosts = localhost
	ports = $pR
	action = allow
	identity = corp
	profile = crl

	[rule corp]
	uid = 0
	destinations = prod
	action = allow
	identity = corp
	profile = corp

	[rule dev]
	uid = 0
	destinations = dev
	action = allow
	identity = dev
	profile = dev
	EOF
agent_start "$conf"
sock=$T/agent.sock

# 1. SOCKS5 over the Unix socket and HTTP CONNECT on the loopback port; the
#    destination picks the identity.
out=$(curl -sS --max-time 30 -x "socks5h://localhost$sock" "http://localhost:$pA/")
[[ $out == *"dn=CN=corp-device verify=SUCCESS"* ]] || t_fail "SOCKS5 to corp: $out"
out=$(curl -sS --max-time 30 -x "socks5h://localhost$sock" "http://localhost:$pB/")
[[ $out == *"dn=CN=dev-device verify=SUCCESS"* ]] || t_fail "SOCKS5 to dev: $out"
out=$(curl -sS --max-time 30 -p -x "http://127.0.0.1:$proxy_port" "http://localhost:$pA/")
[[ $out == *"dn=CN=corp-device verify=SUCCESS"* ]] || t_fail "CONNECT to corp: $out"
echo "ok: SOCKS5 and CONNECT reach nginx as corp-device / dev-device"

# 2. git through the agent (dumb HTTP served by nginx). Debian 12's git
#    cannot use a proxy on a Unix socket, so it uses SOCKS5 on the loopback
#    port (the same listener also answers HTTP CONNECT).
git init -q --bare "$T/ngxA/www/repo.git"
git -C "$T" init -q work && git -C "$T/work" -c user.name=t -c user.email=t@t \
	commit -q --allow-empty -m "through the agent"
git -C "$T/work" push -q "$T/ngxA/www/repo.git" HEAD:refs/heads/main
git -C "$T/ngxA/www/repo.git" update-server-info
git -c "http.proxy=socks5h://127.0.0.1:$proxy_port" clone -q -b main \
	"http://localhost:$pA/files/repo.git" "$T/clone"
[ "$(git -C "$T/clone" log -1 --format=%s)" = "through the agent" ] || t_fail "git clone"
echo "ok: git clone through the agent socket"

# 3. Another uid is denied: SOCKS5 reply 2, and HTTP 403 with the reason.
if setpriv --reuid=65534 --regid=65534 --clear-groups \
	curl -sS --max-time 30 -x "socks5h://localhost$sock" "http://localhost:$pA/" \
	2>"$T/denied.err"; then
	t_fail "uid 65534 was let through"
fi
t_assert_contains "$T/denied.err" 'SOCKS5.*\(2\)|not allowed'
agent_log_wait 'event=policy_denied .*uid=65534 .*reason=no_rule'
connect_raw() { # SOCKET HOST:PORT [setpriv...] -> the response head
	printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$2" "$2" |
		"${@:3}" socat -t 30 -T 30 - "UNIX-CONNECT:$1" 2>/dev/null | tr -d '\r' || true
}
resp=$(connect_raw "$sock" "localhost:$pA" setpriv --reuid=65534 --regid=65534 --clear-groups)
grep -q '^HTTP/1.1 403 ' <<<"$resp" || t_fail "uid 65534 CONNECT: $resp"
grep -q '^X-Mtls-Reason: policy_denied' <<<"$resp" || t_fail "no reason header: $resp"
resp=$(connect_raw "$sock" "blocked.example:443")
grep -q 'blocked by the test policy' <<<"$resp" || t_fail "deny rule reason: $resp"
echo "ok: uid 65534 denied (SOCKS5 reply 2, HTTP 403); deny rule's reason shown"

# 4. Each failure reaches the program with its reason.
expect_502() { # PORT REASON
	local resp
	resp=$(connect_raw "$sock" "localhost:$1")
	grep -q '^HTTP/1.1 502 ' <<<"$resp" || t_fail "localhost:$1: $resp"
	grep -q "^X-Mtls-Reason: $2\$" <<<"$resp" || t_fail "localhost:$1 wanted $2: $resp"
	echo "ok: localhost:$1 refused with $2"
}
expect_502 "$pP" pin_mismatch
expect_502 "$pR" revoked
expect_502 "$pE" expired
expect_502 "$pF" unknown_ca
# SOCKS5 has no text: a general failure (1), and the reason in the log.
if curl -sS --max-time 30 -x "socks5h://localhost$sock" "http://localhost:$pF/" \
	2>"$T/socks_fail.err"; then
	t_fail "SOCKS5 to a foreign CA succeeded"
fi
t_assert_contains "$T/socks_fail.err" '\(1\)'

# 5. mtlsctl connect: a pipe through the agent, as an ssh ProxyCommand uses it.
out=$(printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' |
	"$MTLSCTL" -c "$conf" connect "localhost:$pA")
[[ $out == *"dn=CN=corp-device verify=SUCCESS"* ]] || t_fail "mtlsctl connect: $out"
if "$MTLSCTL" -c "$conf" connect "localhost:$pF" </dev/null 2>"$T/ctl.err"; then
	t_fail "mtlsctl connect to a foreign CA succeeded"
fi
t_assert_contains "$T/ctl.err" "refused: unknown_ca"
echo "ok: mtlsctl connect bridges stdin/stdout and names refusals"

# 6. mtlsctl policy check explains without connecting.
out=$("$MTLSCTL" -c "$conf" policy check --uid 0 --dest "localhost:$pB")
grep -qx 'allow' <<<"$out" && grep -qx 'identity: dev' <<<"$out" &&
	grep -q '^rule: dev (.*agent.conf:[0-9]*)$' <<<"$out" || t_fail "policy check: $out"
rc=0; out=$("$MTLSCTL" -c "$conf" policy check --uid 65534 --dest "localhost:$pA") || rc=$?
[ $rc -eq 3 ] && grep -qx 'reason: no_rule' <<<"$out" || t_fail "policy check deny: $rc $out"
json=$("$MTLSCTL" -c "$conf" policy check --json --uid 0 --dest "localhost:$pB")
grep -q '"decision": *"allow"' <<<"$json" && grep -q '"identity": *"dev"' <<<"$json" ||
	t_fail "policy check --json: $json"
echo "ok: mtlsctl policy check (text and --json)"

agent_stop
t_assert_contains "$T/agent.log" 'event=stats .*failed_pin_mismatch=1 .*failed_revoked=1 .*denied_policy_denied=1 denied_no_rule=2'

# 7. A dev identity that could reach prod: the configuration is refused.
cat >>"$conf" <<-EOF

	[rule leak]
	uid = 0
	hosts = localhost
	action = allow
	identity = dev
	profile = dev
	EOF
rc=0; "$MTLS_AGENT" -c "$conf" --check >"$T/leak.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || t_fail "dev->prod config loaded"
t_assert_contains "$T/leak.log" "\[rule leak\]: identity 'dev' is tagged env dev but the rule can reach \[destinations prod\], tagged env prod"
echo "ok: dev identity to prod destinations refused at load"
t_pass "proxy and policy"
