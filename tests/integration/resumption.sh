#!/bin/bash
# TLS session resumption: with [agent] resume = yes, the first connection of
# a tunnel signs on the token and the next ones resume with the ticket the
# server sent (no signature); the cache is per identity generation, so a
# reload with a renewed certificate starts over. With resume = no every
# connection signs.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init resumption
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Resume CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i 's/^resume = no$/resume = yes/' "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=resume-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_start "$conf"
for i in $(seq 1 10); do
	out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
	[[ $out == *"dn=CN=resume-device verify=SUCCESS"* ]] || t_fail "request $i: $out"
done
full=$(grep -c 'event=handshake .*result=ok.*resumed=0 token_signs=1' "$T/agent.log" || true)
resumed=$(grep -c 'event=handshake .*result=ok.*resumed=1 token_signs=0' "$T/agent.log" || true)
[ "$full" -eq 1 ] && [ "$resumed" -eq 9 ] || t_fail "full=$full resumed=$resumed, expected 1 and 9"
echo "ok: resume = yes: 1 full handshake, 9 resumed without a token signature; nginx verified all 10"

agent_log_mark
sed -i 's/^resume = yes$/resume = no/' "$conf"
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok'
for i in 1 2 3; do
	curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ >/dev/null
done
n=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'result=ok.*resumed=0 token_signs=1' || true)
[ "$n" -eq 3 ] || t_fail "resume = no: $n of 3 full handshakes"
echo "ok: resume = no: every connection signs on the token"
t_pass "resumption"
