#!/bin/bash
# A module that breaks as a whole, as ykcs11 does when pcscd restarts
# (tests/faultmod's "wedged": CKR_DEVICE_ERROR to every call until
# C_Finalize + C_Initialize), under load from four clients at once: every
# handshake meanwhile fails with token_absent, the agent re-initialises the
# module with a backoff (not once per handshake) while other threads use
# it; once the cause is gone, the next re-initialisation mends it and every
# client gets through again, without a restart; nothing leaks.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/fault.sh"

t_init token_module_reinit
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
fault_init "$SOFTHSM_MODULE"
pki_ca "$T/ca" "Reinit CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i "s#^module = .*#module = $FAULT_MODULE#" "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=reinit-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_start "$conf"
req() { curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ 2>&1; }
req_ok() { [[ $(req) == *"dn=CN=reinit-device verify=SUCCESS"* ]]; }
req_ok || t_fail "baseline request: $(req)"
fds() { ls "/proc/$AGENT_PID/fd" | wc -l; }
threads() { sed -n 's/^Threads:\t//p' "/proc/$AGENT_PID/status"; }
settled() { ! ss -Htanp "dport = :$port" | grep -q "pid=$AGENT_PID,"; }
t_until 60 settled || t_fail "the agent still holds the first connection after 60 s"
fd0=$(fds) th0=$(threads)
inits() { grep -c '^C_Initialize$' "$T/fault.calls" || true; }
init0=$(inits)

# Four clients, each one request after another, until told to stop; each
# line of their log says ok or fail.
for c in 1 2 3 4; do
	(
		while [ ! -e "$T/stop" ]; do
			if req_ok; then echo ok; else echo fail; fi >>"$T/client.$c"
		done
	) &
	t_on_exit "touch $T/stop; kill $!"
	pids+=($!)
done
count() { cat "$T"/client.* 2>/dev/null | grep -c "^$1$" || true; }
t_until 60 eval '[ "$(count ok)" -ge 20 ]' || t_fail "the clients got nowhere"

# pcscd goes away: the module is wedged.
agent_log_mark
w0=${EPOCHREALTIME/./}
fault wedged
absent() { tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=handshake .*result=fail reason=token_absent' || true; }
reinits() { tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=module_reinit .*cause=CKR_DEVICE_ERROR' || true; }
# Until 40 handshakes were refused and the module was re-initialised
# twice (the second after a backoff): both prove it stays broken.
t_until 120 eval '[ "$(absent)" -ge 40 ] && [ "$(reinits)" -ge 2 ]' ||
	t_fail "wedged: $(absent) refusals, $(reinits) re-initialisations in 120 s"
# pcscd is back; the module answers CKR_DEVICE_ERROR until re-initialised.
fault
w_ms=$(((${EPOCHREALTIME/./} - w0) / 1000))
refused=$(absent) n_reinit=$(reinits)
other=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep 'event=handshake .*result=fail' | grep -vc 'reason=token_absent' || true)
[ "$other" -eq 0 ] || t_fail "$other handshakes failed for another reason: $(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep 'event=handshake .*result=fail' | grep -v token_absent | head -3)"
# The backoff (0.5 s doubling to 8 s) bounds the attempts: at most 5 in
# the first 7.5 s, one per 8 s after.
max=$((6 + w_ms / 8000))
[ "$n_reinit" -le "$max" ] || t_fail "$n_reinit re-initialisations in $w_ms ms (at most $max)"
echo "ok: wedged for $w_ms ms under 4 clients: $refused handshakes refused with token_absent, $n_reinit re-initialisations (backoff)"

agent_log_mark
ok_before=$(count ok)
t0=${EPOCHREALTIME/./}
t_until 60 eval '[ "$(count ok)" -ge $((ok_before + 20)) ]' || t_fail "no recovery within 60 s of the cause going away"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
agent_log_wait 'event=module_recovered module=[^ ]*faultp11\.so reinits=[0-9]+'
touch "$T/stop"
wait "${pids[@]}"
kill -0 "$AGENT_PID" || t_fail "the agent is gone"
echo "ok: recovered without a restart: 20 more requests through within $ms ms; C_Initialize $init0 -> $(inits)"

# Everything works at once again: 32 concurrent requests.
seq 1 32 | xargs -P 16 -I{} sh -c "curl -sS --max-time 30 --unix-socket '$T/web.sock' http://localhost/ >'$T/par.{}' 2>&1" || true
good=$(grep -l "dn=CN=reinit-device verify=SUCCESS" "$T"/par.* | wc -l)
[ "$good" -eq 32 ] || t_fail "$good of 32 concurrent requests after recovery"
# The handshake pool keeps up to max_handshakes (8) workers, grown under
# the load above; a leak would be a thread or descriptor per connection.
released() { settled && [ "$(fds)" -le $((fd0 + 2)) ]; }
t_until 60 released || true
fd1=$(fds) th1=$(threads)
[ "$fd1" -le $((fd0 + 2)) ] || t_fail "fds $fd0 -> $fd1"
[ "$th1" -le $((th0 + 8)) ] || t_fail "threads $th0 -> $th1"
echo "ok: 32 of 32 concurrent requests after recovery; $(count ok) + $(count fail) client requests in all; fds $fd0 -> $fd1, threads $th0 -> $th1"
agent_stop || t_fail "mtls-agent did not stop cleanly"
t_pass "a wedged module is re-initialised, with a backoff, under load"
