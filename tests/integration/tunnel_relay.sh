#!/bin/bash
# The relay: large transfers both ways intact, half-close passed through,
# handshakes that hang do not hold up other connections, idle connections
# time out, SIGHUP reloads without dropping an established connection (and
# keeps the old config when the new one is broken), SIGTERM ends in-flight
# connections within shutdown_grace.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_relay
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Test CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
ngx=$(t_free_port)
nginx_start "$T/ngx" "$ngx" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
head -c 48M /dev/urandom >"$T/ngx/www/big.bin"

# An mTLS echo server: socat hands each connection to cat, so the echo ends
# only when our half-close (close_notify) reaches it.
echo_port=$(t_free_port)
socat "OPENSSL-LISTEN:$echo_port,bind=127.0.0.1,reuseaddr,fork,cert=$T/server.pem,key=$T/server.key,cafile=$T/ca/ca.pem,verify=1" \
	EXEC:cat 2>"$T/socat.log" &
t_on_exit "kill $!"
t_wait_port "$echo_port" 30 $!
# A server that accepts and never answers: its handshakes hang.
hang_port=$(t_free_port)
socat "TCP-LISTEN:$hang_port,bind=127.0.0.1,reuseaddr,fork" EXEC:"sleep 60" 2>/dev/null &
t_on_exit "pkill -P $! ; kill $!"
t_wait_port "$hang_port" 30 $!

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i 's/^\[agent\]$/[agent]\nidle_timeout = 2s/' "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=relay"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$ngx" dev
agent_conf_tunnel "$conf" echo "$T/echo.sock" "localhost:$echo_port" dev
agent_conf_tunnel "$conf" hang "$T/hang.sock" "localhost:$hang_port" dev
cp "$conf" "$T/base.conf"
agent_start "$conf"

# 1. Server -> client: 48 MiB from nginx, byte for byte.
curl -sS --max-time 120 --unix-socket "$T/web.sock" -o "$T/got.bin" \
	http://localhost/files/big.bin
cmp "$T/ngx/www/big.bin" "$T/got.bin" || t_fail "download corrupted"
echo "ok: 48 MiB download intact"

# 2. Both ways with half-close: 16 MiB up, echoed back, EOF passed through.
head -c 16M /dev/urandom >"$T/up.bin"
timeout 60 socat -t 30 -T 30 "UNIX-CONNECT:$T/echo.sock" STDIO \
	<"$T/up.bin" >"$T/echoed.bin" || t_fail "echo transfer failed"
cmp "$T/up.bin" "$T/echoed.bin" || t_fail "echo corrupted ($(stat -c %s "$T/echoed.bin") bytes back)"
echo "ok: 16 MiB echoed through a half-closed connection"

# 3. Hung handshakes do not hold up anyone else.
for i in 1 2 3 4 5; do
	socat -u "UNIX-CONNECT:$T/hang.sock" /dev/null 2>/dev/null &
	t_on_exit "kill $! 2>/dev/null"
done
# Until the agent's 5 handshakes reached the server and hang there.
hanging() { [ "$(ss -Htn state established "sport = :$hang_port" | wc -l)" -ge 5 ]; }
t_until 30 hanging || t_fail "the 5 handshakes never reached the hanging server"
start=$(date +%s%N)
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[[ $out == *"dn=CN=relay"* ]] || t_fail "request beside hung handshakes: $out"
# Held up, it would wait out handshake_timeout (10 s); 5 s leaves room
# for a loaded machine.
[ $ms -lt 5000 ] || t_fail "request took ${ms} ms beside hung handshakes"
echo "ok: request served in ${ms} ms while 5 handshakes hang"

# 4. Idle connections are closed after idle_timeout (2 s): this client reads
# and never writes (socat -u), so nothing moves either way.
start=$(date +%s%N)
timeout 60 socat -u "UNIX-CONNECT:$T/echo.sock" /dev/null || t_fail "idle client"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
# 2 s, plus the handshake and room for a loaded machine.
[ $ms -ge 1900 ] && [ $ms -le 8000 ] || t_fail "idle connection lived ${ms} ms"
agent_log_wait 'event=close .*tunnel=echo .*idle_timeout=1'
echo "ok: idle connection closed after ${ms} ms"

# 5. SIGHUP during a transfer: the transfer completes, a new tunnel appears.
curl -sS --max-time 120 --limit-rate 12M --unix-socket "$T/web.sock" \
	-o "$T/slow.bin" http://localhost/files/big.bin &
slow=$!
# Until the transfer runs (curl makes the file with the first bytes).
t_until 30 test -s "$T/slow.bin" || t_fail "the transfer did not start"
new=$(t_free_port)
agent_conf_tunnel "$conf" added "127.0.0.1:$new" "localhost:$ngx" dev
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok tunnels=4'
out=$(curl -sS --max-time 30 "http://127.0.0.1:$new/")
[[ $out == *"dn=CN=relay"* ]] || t_fail "new tunnel after reload: $out"
# A broken config is refused and the running one kept.
printf '[tunnel broken]\nlisten = %s\n' "$T/broken.sock" >>"$conf"
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=kept_previous'
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=relay"* ]] || t_fail "old tunnel after failed reload: $out"
wait $slow || t_fail "transfer across reload failed"
cmp "$T/ngx/www/big.bin" "$T/slow.bin" || t_fail "transfer across reload corrupted"
echo "ok: 48 MiB transfer survived two reloads; new tunnel served"

# 6. SIGTERM with a transfer in flight: done within shutdown_grace (3 s),
#    with room for a loaded machine and ASan's exit; the transfer alone
#    would take 48 s.
curl -sS --max-time 120 --limit-rate 1M --unix-socket "$T/web.sock" \
	-o "$T/inflight.bin" http://localhost/files/big.bin 2>/dev/null &
t_on_exit "kill $! 2>/dev/null"
t_until 30 test -s "$T/inflight.bin" || t_fail "the transfer did not start"
start=$(date +%s%N)
agent_stop
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ $ms -lt 10000 ] || t_fail "SIGTERM took ${ms} ms"
[ ! -e "$T/web.sock" ] || t_fail "socket left behind"
t_assert_contains "$T/agent.log" 'event=shutdown ending=[1-9]'
echo "ok: SIGTERM ended an in-flight transfer in ${ms} ms"
t_pass "relay"
