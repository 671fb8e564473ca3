#!/bin/bash
# A slow card, and a card without RSA-PSS.
# The virtual PIV card signs in ~5-10 ms; behind
# tests/faultmod with 300 ms more per signature (a real card's RSA-2048 or
# a touch-policy key), an established 200 MiB transfer keeps its rate while
# 16 handshakes queue for the card. Also measured, to be documented:
# handshakes per second on the card itself through one card session
# (max_sessions = 1), one client after another and four at once.
# Then the card's RSA key with CKM_RSA_PKCS_PSS hidden by faultmod (cards
# without PSS exist): the agent uses TLS 1.2 with PKCS#1 v1.5 for it, says
# why, and mtlsctl key-info shows what the card lacks.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/card.sh"
. "$(dirname "$0")/../lib/fault.sh"

t_init card_slow
card_up "$T/card"
pki_ca "$T/ca" "Card CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
head -c 200M /dev/zero >"$T/ngx/www/big.bin"

conf=$T/agent.conf
card_conf "$conf" card "$CARD_YKCS11" "$CARD_YKCS11_URI"
card_conf_identity "$conf" dev card 01 "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=slow-card"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
req() { curl -sS --max-time 60 --unix-socket "$T/web.sock" http://localhost/ 2>&1; }

# Handshakes per second through one card session.
sed -i '/^so_pin_source/a max_sessions = 1' "$conf"
agent_start "$conf"
[[ $(req) == *"dn=CN=slow-card"* ]] || t_fail "baseline request"
ms() { echo $(($(date +%s%N) / 1000000)); }
s=$(ms)
for _ in $(seq 1 30); do [[ $(req) == *"dn=CN=slow-card"* ]] || t_fail "sequential handshake"; done
seq_ms=$(($(ms) - s))
s=$(ms)
pids=()
for _ in 1 2 3 4; do
	( for _ in $(seq 1 10); do [[ $(req) == *"dn=CN=slow-card"* ]] || exit 1; done ) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || t_fail "a concurrent client failed"; done
par_ms=$(($(ms) - s))
signs=$(grep -c 'event=handshake .*result=ok .*token_signs=1' "$T/agent.log")
[ "$signs" -ge 71 ] || t_fail "$signs full handshakes, want 71 (resume is off)"
echo "card session: 30 handshakes one after another in $seq_ms ms ($((30000 / seq_ms)).$(((30000000 / seq_ms) % 1000 / 100))/s); 40 from 4 clients at once in $par_ms ms ($((40000 / par_ms)).$(((40000000 / par_ms) % 1000 / 100))/s)" |
	tee "$T/card_rate.result"
agent_stop

# 300 ms more per signature: the established transfer is not held up.
fault_init "$CARD_YKCS11"
sed -i -e "s#^module = .*#module = $FAULT_MODULE#" -e '/^max_sessions/d' "$conf"
agent_start "$conf"
[[ $(req) == *"dn=CN=slow-card"* ]] || t_fail "baseline request through faultmod"
slow_token_check 300 16
agent_stop

# An RSA key (9e) on the card, the card's PSS hidden.
card_conf_identity "$conf" rsa card 04 "$T/ca/ca.pem"
sed -i -e "s#^module = .*#module = $CARD_YKCS11#" "$conf"
identity_provision "$conf" rsa rsa-2048 "$T/ca" "CN=card-nopss"
sed -i -e "s#^module = .*#module = $FAULT_MODULE#" "$conf"
sp=$(t_free_port)
s_server_start "$T/s" "$sp" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
agent_conf_tunnel "$conf" rsa "$T/rsa.sock" "localhost:$sp" rsa
fault hide_mech=CKM_RSA_PKCS_PSS
"$MTLSCTL" -c "$conf" key-info rsa >"$T/rsa.info"
t_assert_contains "$T/rsa.info" "^sign CKM_RSA_PKCS_PSS: no"
t_assert_contains "$T/rsa.info" "^tls: 1.2$"
agent_start "$conf"
agent_log_wait "event=tls_limited .*identity=rsa" 30
s_server_check "$T/rsa.sock" card-nopss TLSv1.2 RSA
fault
echo "ok: the card without RSA-PSS: TLS 1.2 with PKCS#1 v1.5, said at load"
[ "$(card_pin_tries)" = 5 ] || t_fail "PIN tries: $(card_pin_tries)"
t_pass "a 300 ms card does not hold up established connections"
