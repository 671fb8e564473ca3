#!/bin/bash
# The same PIV card through OpenSC's opensc-pkcs11.so, for what OpenSC
# supports: it makes no keys (they are generated and stored by mtlsctl
# through ykcs11 first), and it signs with 9a, 9c (context login each time)
# and 9e. The agent does TLS 1.3 and 1.2 with each against s_server
# -Verify (DN and signature type asserted); the card pulled: reason
# token_absent, and back without a restart.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/card.sh"

t_init card_opensc
card_up "$T/card"
pki_ca "$T/ca" "Card CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"

# Provisioning through ykcs11.
yk=$T/ykcs11.conf
card_conf "$yk" card "$CARD_YKCS11" "$CARD_YKCS11_URI"
sed -i -e "s|^control = .*|control = $T/yk.sock|" "$yk"
card_conf_identity "$yk" ec card 01 "$T/ca/ca.pem"
card_conf_identity "$yk" rsa card 04 "$T/ca/ca.pem"
card_conf_identity "$yk" sig card 02 "$T/ca/ca.pem"
identity_provision "$yk" ec ec-p256 "$T/ca" "CN=osc-ec"
identity_provision "$yk" rsa rsa-2048 "$T/ca" "CN=osc-rsa"
identity_provision "$yk" sig ec-p256 "$T/ca" "CN=osc-sig"

# Use through OpenSC.
conf=$T/agent.conf
card_conf "$conf" card "$CARD_OPENSC" "$CARD_OPENSC_URI"
sed -i '/^so_pin_source/d' "$conf"
card_conf_identity "$conf" ec card 01 "$T/ca/ca.pem"
card_conf_identity "$conf" rsa card 04 "$T/ca/ca.pem"
card_conf_identity "$conf" sig card 02 "$T/ca/ca.pem"
"$MTLSCTL" -c "$conf" key-info sig >"$T/sig.info"
t_assert_contains "$T/sig.info" "always_authenticate: yes"
"$MTLSCTL" -c "$conf" key-info rsa >"$T/rsa.info"
t_assert_contains "$T/rsa.info" "type: rsa-2048"

p13=$(t_free_port)
s_server_start "$T/s13" "$p13" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_3
p12=$(t_free_port)
s_server_start "$T/s12" "$p12" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_2
for id in ec rsa sig; do
	agent_conf_tunnel "$conf" ${id}13 "$T/${id}13.sock" "localhost:$p13" $id
	agent_conf_tunnel "$conf" ${id}12 "$T/${id}12.sock" "localhost:$p12" $id
done
agent_start "$conf"
grep -q "event=token_open token=card module=$CARD_OPENSC" "$T/agent.log" ||
	t_fail "the agent did not open the card through OpenSC"

card_check_slots osc
echo "ok: OpenSC signed with 9a, 9c and 9e: TLS 1.3 and 1.2"

agent_log_mark
card_remove
if curl -sS --max-time 60 --unix-socket "$T/ec13.sock" http://localhost/ >/dev/null 2>&1; then
	t_fail "a handshake succeeded with the card pulled"
fi
agent_log_wait "event=handshake .*result=fail reason=token_absent" 60
card_insert
ok_again() {
	curl -sS --max-time 60 --unix-socket "$T/ec13.sock" http://localhost/ 2>/dev/null |
		grep -qE "Subject: CN ?= ?osc-ec\$"
}
t_until 120 ok_again || t_fail "no handshake after the card came back"
s_server_check "$T/sig12.sock" osc-sig TLSv1.2 ECDSA
[ "$(card_pin_tries)" = 5 ] || t_fail "PIN tries: $(card_pin_tries)"
t_pass "PIV card through OpenSC: 9a, 9c, 9e with TLS 1.3/1.2; removal and return"
