#!/bin/bash
# The agent under valgrind memcheck through a real run: EC and RSA
# handshakes over TLS 1.3 and 1.2, a refused server, a SOCKS5 route, a
# reload and a clean stop. memcheck must report no error and no definite
# leak.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init valgrind_agent
command -v valgrind >/dev/null || t_fail "valgrind is not installed (scripts/deps.sh)"
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "VG CA"
pki_ca "$T/other" "Other CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
pki_server_cert "$T/other" "$T/foreign" localhost "DNS:localhost"
p13=$(t_free_port); s_server_start "$T/s13" "$p13" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_3
p12=$(t_free_port); s_server_start "$T/s12" "$p12" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_2
pf=$(t_free_port); s_server_start "$T/sf" "$pf" "$T/ca/ca.pem" "$T/foreign.pem" "$T/foreign.key"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i 's/^handshake_timeout = .*/handshake_timeout = 60s/' "$conf"
agent_conf_identity "$conf" ec "$T/ca/ca.pem"
agent_conf_identity "$conf" rsa "$T/ca/ca.pem"
identity_provision "$conf" ec ec-p256 "$T/ca" "CN=vg-ec"
identity_provision "$conf" rsa rsa-2048 "$T/ca" "CN=vg-rsa"
agent_conf_tunnel "$conf" ec13 "$T/ec13.sock" "localhost:$p13" ec
agent_conf_tunnel "$conf" rsa12 "$T/rsa12.sock" "localhost:$p12" rsa
agent_conf_tunnel "$conf" foreign "$T/foreign.sock" "localhost:$pf" ec
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[profile p]
	ca = $T/ca/ca.pem

	[rule all]
	hosts = localhost
	action = allow
	identity = rsa
	profile = p
	EOF

valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	--num-callers=50 --suppressions="$(dirname "$0")/../valgrind.supp" \
	--errors-for-leak-kinds=definite --log-file="$T/valgrind.log" \
	"$MTLS_AGENT" -c "$conf" >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
t_on_exit "kill $AGENT_PID"
# logged PATTERN: the agent logged it; fails the test if valgrind ended.
logged() {
	grep -qE "$1" "$T/agent.log" 2>/dev/null && return 0
	kill -0 "$AGENT_PID" 2>/dev/null || t_fail "the agent under valgrind ended: $(tail -5 "$T/valgrind.log")"
	return 1
}
# memcheck makes everything 20-50 times slower, more on a loaded machine.
t_until 240 logged 'event=ready' || t_fail "the agent under valgrind not ready after 240 s"
req() { curl -sS --max-time 120 "$@" 2>&1 || true; }
[[ $(req --unix-socket "$T/ec13.sock" http://localhost/) == *"Subject: CN"*"vg-ec"* ]] || t_fail "ec13"
[[ $(req --unix-socket "$T/rsa12.sock" http://localhost/) == *"Subject: CN"*"vg-rsa"* ]] || t_fail "rsa12"
req --unix-socket "$T/foreign.sock" http://localhost/ >/dev/null
[[ $(req -x "socks5h://localhost$T/agent.sock" "http://localhost:$p13/") == *"vg-rsa"* ]] || t_fail "socks"
kill -HUP $AGENT_PID
t_until 120 logged 'event=reload result=ok' || t_fail "no reload under valgrind after 120 s"
[[ $(req --unix-socket "$T/ec13.sock" http://localhost/) == *"vg-ec"* ]] || t_fail "after reload"
kill -TERM $AGENT_PID
# Its exit includes memcheck's leak search: a hung one fails, not hangs.
t_until 180 t_gone $AGENT_PID || t_fail "the agent under valgrind still runs 180 s after SIGTERM"
rc=0
wait $AGENT_PID || rc=$?
grep -q 'reason=unknown_ca' "$T/agent.log" || t_fail "the refusal did not happen"
if [ $rc -ne 0 ] || [ -s "$T/valgrind.log" ]; then
	cat "$T/valgrind.log" >&2
	t_fail "memcheck: exit $rc"
fi
echo "ok: memcheck clean: no error, no definite leak over 5 connections, a refusal, a reload and a stop"
t_pass "valgrind"
