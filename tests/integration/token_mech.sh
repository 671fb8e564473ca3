#!/bin/bash
# The agent learns what the token can sign with and adapts. SoftHSM2 behind
# the fault-injecting module, an RSA-2048 key on it, openssl s_server
# (TLS 1.2 and 1.3, client certificate required) on loopback:
#   - the token with everything: TLS 1.3, RSA-PSS;
#   - CKM_RSA_PKCS_PSS hidden (a card without PSS): the agent caps that
#     identity at TLS 1.2 with PKCS#1 v1.5 and says so once at load; a
#     tunnel or a profile with min_tls = 1.3 for it is refused by
#     mtls-agent --check with the reason; mtlsctl key-info shows it;
#   - CKM_RSA_PKCS hidden: TLS 1.3 with RSA-PSS only;
#   - both hidden, or CKM_ECDSA hidden for an EC key: refused at load.
# Before this, the agent offered TLS 1.3 whatever the token could do and
# the handshake failed in C_SignInit (CKR_MECHANISM_INVALID).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/fault.sh"

t_init token_mech
softhsm_init mtoken 87654321 mPIN-8312zk
printf 'mPIN-8312zk\n' >"$T/pin" && chmod 600 "$T/pin"
fault_init "$SOFTHSM_MODULE"
pki_ca "$T/ca" "Mech CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
# Either version: the agent's offer decides which one runs.
port=$(t_free_port)
s_server_start "$T/s" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"

base=$T/base.conf
agent_conf_token "$base" mtoken "$T/pin"
sed -i "s#^module = .*#module = $FAULT_MODULE#" "$base"
agent_conf_identity "$base" rsa "$T/ca/ca.pem"
agent_conf_identity "$base" ec "$T/ca/ca.pem"
identity_provision "$base" rsa rsa-2048 "$T/ca" "CN=mech-rsa,O=Mech"
identity_provision "$base" ec ec-p256 "$T/ca" "CN=mech-ec,O=Mech"
conf=$T/agent.conf
cp "$base" "$conf"
agent_conf_tunnel "$conf" rsa "$T/rsa.sock" "localhost:$port" rsa
agent_conf_tunnel "$conf" ec "$T/ec.sock" "localhost:$port" ec

# check SOCKET CN PROTOCOL SIGTYPE: one request through the tunnel; what
# s_server saw of the client.
check() {
	local page
	page=$(curl -sS --max-time 30 --unix-socket "$1" http://localhost/ 2>&1) ||
		t_fail "$1: no answer through the tunnel: $page; agent: $(grep 'event=handshake' "$T/agent.log" | tail -1)"
	grep -qE "^ +Subject: O ?= ?Mech, CN ?= ?$2\$" <<<"$page" ||
		t_fail "$1: s_server did not report the client DN O=Mech, CN=$2: $page"
	grep -q "Protocol *: *$3\$" <<<"$page" || t_fail "$1: not $3: $(grep Protocol <<<"$page")"
	grep -q "^Peer signature type: $4\$" <<<"$page" ||
		t_fail "$1: signature type $(grep 'Peer signature type' <<<"$page"), want $4"
	echo "ok: $1: $3, client CN=$2, $4"
}
info() { "$MTLSCTL" -c "$conf" key-info "$1" 2>&1; }
limited() { grep -c 'event=tls_limited' "$T/agent.log" || true; }

# 1. Everything there: TLS 1.3 and RSA-PSS, and key-info says so.
out=$(info rsa)
for want in "sign CKM_RSA_PKCS: yes" "sign CKM_RSA_PKCS_PSS: yes" "tls: 1.2 1.3" \
	"tls1.3_schemes: rsa_pss_rsae_sha256,rsa_pss_rsae_sha384,rsa_pss_rsae_sha512" \
	"tls1.2_schemes: rsa_pkcs1_sha256,rsa_pkcs1_sha384,rsa_pkcs1_sha512"; do
	grep -qx "$want" <<<"$out" || t_fail "key-info rsa lacks '$want': $out"
done
grep -qE '^  CKM_RSA_PKCS_PSS [0-9]+\.\.[0-9]+ .*\bsign\b' <<<"$out" ||
	t_fail "key-info rsa does not list CKM_RSA_PKCS_PSS with sign: $out"
grep -qE '^mechanisms: [0-9]+$' <<<"$out" || t_fail "key-info: no mechanism count: $out"
agent_start "$conf"
check "$T/rsa.sock" mech-rsa TLSv1.3 RSA-PSS
check "$T/ec.sock" mech-ec TLSv1.3 ECDSA
[ "$(limited)" -eq 0 ] || t_fail "a notice of a limit with every mechanism there"
agent_stop

# 2. A token without CKM_RSA_PKCS_PSS.
fault hide_mech=CKM_RSA_PKCS_PSS
out=$(info rsa)
for want in "sign CKM_RSA_PKCS: yes" \
	"sign CKM_RSA_PKCS_PSS: no, not in the token's mechanism list; C_SignInit: CKR_MECHANISM_INVALID" \
	"tls: 1.2" \
	"tls1.3_schemes: none" "tls1.2_schemes: rsa_pkcs1_sha256,rsa_pkcs1_sha384,rsa_pkcs1_sha512"; do
	grep -qx "$want" <<<"$out" || t_fail "key-info rsa (PSS hidden) lacks '$want': $out"
done
grep -q '^  CKM_RSA_PKCS_PSS ' <<<"$out" && t_fail "key-info lists the hidden CKM_RSA_PKCS_PSS: $out"
grep -q '^  CKM_RSA_PKCS ' <<<"$out" || t_fail "key-info lost CKM_RSA_PKCS: $out"
echo "ok: key-info: CKM_RSA_PKCS_PSS absent, TLS 1.2 with rsa_pkcs1 schemes"
agent_start "$conf"
# (The agent before this offered TLS 1.3 here, and C_SignInit refused
# CKM_RSA_PKCS_PSS: the handshake failed with reason=mechanism.)
check "$T/rsa.sock" mech-rsa TLSv1.2 RSA
# The EC identity on the same token is not affected.
check "$T/ec.sock" mech-ec TLSv1.3 ECDSA
check "$T/rsa.sock" mech-rsa TLSv1.2 RSA
# Said at load, once, with the reason.
agent_log_wait 'event=tls_limited identity=rsa token=soft key_type=rsa-2048 tls=1.2 schemes=rsa_pkcs1_sha256,rsa_pkcs1_sha384,rsa_pkcs1_sha512 reason="no CKM_RSA_PKCS_PSS: TLS 1.3'
[ "$(limited)" -eq 1 ] || t_fail "$(limited) notices of the limit, want one: $(grep event=tls_limited "$T/agent.log")"
# No signature went to the token with the missing mechanism.
grep -q 'CKR_MECHANISM_INVALID' "$T/agent.log" && t_fail "the agent tried a mechanism the token lacks"
echo "ok: PSS hidden: TLS 1.2 with PKCS#1 v1.5, one notice at load"
agent_stop

# 3. min_tls = 1.3 for that identity, in a tunnel or a profile: refused by
#    --check, saying which identity, which token, what is missing and what
#    to do.
refused() { # CONF WHAT
	local rc=0
	"$MTLS_AGENT" -c "$1" --check >"$T/check.out" 2>&1 || rc=$?
	[ $rc -ne 0 ] || t_fail "--check accepted min_tls = 1.3 with a PSS-less RSA key: $(cat "$T/check.out")"
	t_assert_contains "$T/check.out" "reason=mechanism detail=\"[^\"]*$2: min_tls = 1.3 needs RSA-PSS for an RSA key \(RFC 8446 4\.2\.3\), but identity 'rsa' on token 'soft': its token has no usable CKM_RSA_PKCS_PSS: set min_tls = 1\.2, or use an EC key or a token with CKM_RSA_PKCS_PSS\""
}
c13=$T/tunnel13.conf
cp "$base" "$c13"
agent_conf_tunnel "$c13" rsa13 "$T/rsa13.sock" "localhost:$port" rsa "min_tls = 1.3"
line=$(grep -n '^\[tunnel rsa13\]' "$c13" | cut -d: -f1)
refused "$c13" "$c13:$line: \[tunnel rsa13\]"
cp13=$T/profile13.conf
cp "$base" "$cp13"
cat >>"$cp13" <<-EOF

	[proxy socks]
	listen = $T/socks.sock

	[profile strict]
	ca = $T/ca/ca.pem
	min_tls = 1.3

	[rule strict]
	uid = $(id -u)
	hosts = localhost
	action = allow
	identity = rsa
	profile = strict
	EOF
line=$(grep -n '^\[rule strict\]' "$cp13" | cut -d: -f1)
refused "$cp13" "$cp13:$line: \[rule strict\] profile 'strict'"
"$MTLS_AGENT" -c "$conf" --check >"$T/check.out" 2>&1 ||
	t_fail "--check refused the TLS 1.2 configuration: $(cat "$T/check.out")"
echo "ok: min_tls = 1.3 with that key refused by --check (tunnel and profile); min 1.2 accepted"

# 4. A token with RSA-PSS but without CKM_RSA_PKCS: TLS 1.3 only.
fault hide_mech=CKM_RSA_PKCS
out=$(info rsa)
grep -qx "tls: 1.3" <<<"$out" || t_fail "key-info rsa (PKCS hidden): $out"
agent_start "$conf"
agent_log_wait 'event=tls_limited identity=rsa token=soft key_type=rsa-2048 tls=1.3 schemes=rsa_pss_rsae_sha256,rsa_pss_rsae_sha384,rsa_pss_rsae_sha512 reason="no CKM_RSA_PKCS:'
check "$T/rsa.sock" mech-rsa TLSv1.3 RSA-PSS
agent_stop
echo "ok: PKCS#1 hidden: TLS 1.3 with RSA-PSS"

# 5. Keys the token cannot sign with at all are refused at load.
fault hide_mech=CKM_RSA_PKCS,CKM_RSA_PKCS_PSS
rc=0
"$MTLS_AGENT" -c "$conf" --check >"$T/check.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || t_fail "--check accepted an RSA key without any RSA signing mechanism"
t_assert_contains "$T/check.out" "\[identity rsa\]: identity 'rsa' on token 'soft': the token cannot sign with this RSA key"
fault hide_mech=CKM_ECDSA
rc=0
"$MTLS_AGENT" -c "$conf" --check >"$T/check.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || t_fail "--check accepted an EC key without CKM_ECDSA"
t_assert_contains "$T/check.out" "\[identity ec\]: identity 'ec' on token 'soft': the token cannot sign with this EC key \(no usable CKM_ECDSA\)"
out=$(info ec)
grep -qx "sign CKM_ECDSA: no, not in the token's mechanism list; C_SignInit: CKR_MECHANISM_INVALID" <<<"$out" || t_fail "key-info ec (ECDSA hidden): $out"
echo "ok: no RSA mechanism, or no CKM_ECDSA for an EC key: refused at load"
t_pass "the agent signs only with what the token offers"
