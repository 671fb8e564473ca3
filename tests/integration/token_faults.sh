#!/bin/bash
# Token faults through the fault-injecting module (tests/faultmod) wrapped
# around SoftHSM2: the token pulled out (new handshakes fail with
# token_absent, an established transfer goes on, the agent recovers by
# itself when it returns, nothing leaks); a slow token (300 ms signatures)
# does not slow established connections; a refused or locked PIN gives a
# clear error and is not retried.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/fault.sh"

t_init token_faults
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
fault_init "$SOFTHSM_MODULE"
pki_ca "$T/ca" "Fault CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
head -c 200M /dev/zero >"$T/ngx/www/big.bin"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i "s#^module = .*#module = $FAULT_MODULE#" "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=fault-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_start "$conf"
req() { curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ 2>&1; }
[[ $(req) == *"dn=CN=fault-device"* ]] || t_fail "baseline request"
fds() { ls "/proc/$AGENT_PID/fd" | wc -l; }
threads() { sed -n 's/^Threads:\t//p' "/proc/$AGENT_PID/status"; }
# settled: the agent holds no connection to nginx (it closes that side once
# its client has hung up).
settled() { ! ss -Htanp "dport = :$port" | grep -q "pid=$AGENT_PID,"; }
t_until 60 settled || t_fail "the agent still holds the first connection after 60 s"
fd0=$(fds) th0=$(threads)

# 1. Token pulled out during a transfer (200 MiB at 40 MiB/s: 5 s).
curl -sS --max-time 120 --limit-rate 40M --unix-socket "$T/web.sock" \
	-o "$T/during.bin" http://localhost/files/big.bin &
dl=$!
# Until it is established: curl makes the file with the first bytes.
t_until 30 test -s "$T/during.bin" || t_fail "the transfer did not start"
fault removed
agent_log_mark
for i in $(seq 1 20); do
	[[ $(req) == *"dn="* ]] && t_fail "handshake $i succeeded without the token"
done
agent_log_wait 'result=fail reason=token_absent .*CKR_DEVICE_REMOVED|result=fail reason=token_absent'
wait $dl || t_fail "the established transfer broke when the token left"
cmp -s "$T/during.bin" "$T/ngx/www/big.bin" || t_fail "the established transfer was corrupted"
echo "ok: token removed: 20 new handshakes refused with token_absent; a 200 MiB transfer went on intact"
fault
[[ $(req) == *"dn=CN=fault-device"* ]] || t_fail "no recovery after the token came back"
# Until the agent has closed what the 20 refused handshakes, the transfer
# and that request left (or 60 s: then it leaked).
released() { settled && [ "$(fds)" -le $((fd0 + 2)) ] && [ "$(threads)" -le $((th0 + 1)) ]; }
t_until 60 released || true
fd1=$(fds) th1=$(threads)
[ "$fd1" -le $((fd0 + 2)) ] || t_fail "fds $fd0 -> $fd1"
[ "$th1" -le $((th0 + 1)) ] || t_fail "threads $th0 -> $th1"
echo "ok: recovered by itself when the token returned (fds $fd0 -> $fd1, threads $th0 -> $th1)"

# 2. A slow token: established connections keep their rate
#    (tests/lib/fault.sh).
slow_token_check 300 16
# 3. A PIN the token refuses: one C_Login, then no retry loop.
logins() { grep -c C_Login "$T/fault.calls" || true; }
fault removed
req >/dev/null || true
fault login=CKR_PIN_INCORRECT
before=$(logins)
for i in $(seq 1 20); do req >/dev/null || true; done
after=$(logins)
[ $((after - before)) -eq 1 ] || t_fail "$((after - before)) C_Login calls for 20 requests"
agent_log_wait 'reason=pin_incorrect .*refused this PIN before; not trying it again'
echo "ok: a refused PIN: 1 C_Login for 20 requests, then 'not trying it again'"
agent_stop
# A restart with the same PIN file does not try it either.
before=$(logins)
agent_start "$conf"
agent_log_wait 'event=token_locked token=soft reason=pin_incorrect .*refused this PIN before'
[ $(($(logins) - before)) -eq 0 ] || t_fail "the refused PIN file was tried again after a restart"
agent_stop
echo "ok: restarted: the refused PIN file was not tried again"

# 4. A locked PIN at start-up: a clear error, one attempt, and the agent
# waits for a PIN instead of exiting (a service manager would restart it,
# and each start would try again). The PIN file is written anew: for the
# agent that is a new PIN.
printf '%s\n' "$SOFTHSM_PIN" >"$T/pin.new" && chmod 600 "$T/pin.new" && mv "$T/pin.new" "$T/pin"
fault login=CKR_PIN_LOCKED
before=$(logins)
agent_start "$conf"
agent_log_wait 'event=token_locked token=soft reason=pin_locked .*CKR_PIN_LOCKED \(pkcs11:token=itoken\)'
[ $(($(logins) - before)) -eq 1 ] || t_fail "more than one C_Login with a locked PIN at start"
kill -0 "$AGENT_PID" || t_fail "the agent exited on a locked PIN"
req >/dev/null && t_fail "a handshake succeeded with the PIN locked"
agent_log_wait 'result=fail reason=pin_locked'
agent_stop
echo "ok: PIN locked: the agent waits (reason pin_locked) after one C_Login at start"
t_pass "token faults"
