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
# M2: a resumed session never outlives the configuration that verified
# the server. A proxy route whose profile pins the server's key resumes;
# after the pin is changed to another key and the agent reloads, the next
# connection must be a full handshake, refused as pin_mismatch (earlier:
# resumed=1, accepted).
spki_pin() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64
}
pki_server_cert "$T/ca" "$T/other" localhost "DNS:localhost"
sed -i 's/^resume = no$/resume = yes/' "$conf"
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[profile pinned]
	ca = $T/ca/ca.pem
	pins = sha256//$(spki_pin "$T/server.pem")

	[rule web]
	hosts = localhost
	action = allow
	identity = dev
	profile = pinned
	EOF
agent_log_mark
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok'
via() { curl -sS --max-time 30 -x "socks5h://localhost$T/agent.sock" "http://localhost:$port/" 2>&1 || true; }
for i in 1 2 3; do
	[[ $(via) == *"dn=CN=resume-device verify=SUCCESS"* ]] || t_fail "pinned route, request $i"
done
n=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=handshake .*result=ok .*profile=pinned .*resumed=1' || true)
[ "$n" -ge 1 ] || t_fail "the pinned route never resumed"
sed -i "s#^pins = .*#pins = sha256//$(spki_pin "$T/other.pem")#" "$conf"
agent_log_mark
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok'
out=$(via)
[[ $out == *"dn="* ]] && t_fail "M2: a session resumed past a reload that changed the pin: $out"
agent_log_wait 'event=handshake .*result=fail reason=pin_mismatch'
! tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'profile=pinned .*resumed=1' >/dev/null ||
	t_fail "M2: resumed after the reload"
echo "ok: M2: after a reload that changed the pin, no resumption: refused as pin_mismatch"
t_pass "resumption"
