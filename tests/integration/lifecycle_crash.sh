#!/bin/bash
# SIGKILL at every renewal step (MTLS_AGENT_TEST_CRASH_AT, a test hook that
# kills the agent right after the step is recorded), then a plain restart:
# the identity in service works at once, the interrupted renewal is either
# finished or abandoned and redone, and the token holds exactly the key in
# service and the previous one: nothing half-made is left, nothing in
# service is lost.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init lifecycle_crash
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Crash CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
exec_ca=$(cd "$(dirname "$0")/../lib" && pwd)/exec_ca.sh

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
# 600 s certificates renewed 597 s before expiry: due 3 s after issue.
cat >>"$conf" <<-EOF

	[identity dev]
	token = soft
	key = pkcs11:object=dev-key;type=private
	cert = pkcs11:object=dev-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = exec
	exec = $exec_ca $T/ca 600
	issuer_ca = $T/ca/ca.pem
	subject = CN=crash-device
	renew_before = 597s
	renew_jitter = 0
	retry_min = 1s
	retry_max = 2s
	EOF
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
"$MTLSCTL" -c "$conf" enroll dev >/dev/null

privkeys() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin tPIN-4711xq \
		--list-objects --type privkey 2>/dev/null | grep -c 'Private Key Object' || true
}
request() {
	local out
	out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/) &&
		[[ $out == *"dn=CN=crash-device verify=SUCCESS"* ]]
}
# logged LOG PATTERN: LOG has the line; fails the test if the agent ($pid)
# died without it.
logged() {
	grep -q "$2" "$1" && return 0
	kill -0 "$pid" 2>/dev/null || t_fail "$step: the agent exited: $(tail -3 "$1")"
	return 1
}

for step in keygen csr received stored switched; do
	log=$T/agent-$step.log
	rc=0
	# Due 3 s after issue, then keygen and enrollment on a loaded machine.
	MTLS_AGENT_TEST_CRASH_AT=$step timeout 120 "$MTLS_AGENT" -c "$conf" >"$log" 2>&1 || rc=$?
	[ $rc -eq 137 ] || t_fail "$step: agent ended with $rc, not SIGKILL"
	grep -q "event=test_crash step=$step" "$log" || t_fail "$step: no crash"
	gen_before=$(sed -n 's/^generation=//p' "$T/state/dev.state")

	log=$T/agent-after-$step.log
	"$MTLS_AGENT" -c "$conf" >"$log" 2>&1 &
	pid=$!
	t_on_exit "kill $pid" # should the test fail before it stops it
	t_until 60 logged "$log" 'event=ready' || t_fail "$step: no restart: $(tail -3 "$log")"
	request || t_fail "$step: identity not working after restart"
	t_until 90 logged "$log" 'event=renewed' || t_fail "$step: renewal not completed after restart"
	kill -TERM $pid
	t_until 60 t_gone $pid || kill -KILL $pid 2>/dev/null || true
	wait $pid || true
	request 2>/dev/null && t_fail "agent still answering"
	gen_after=$(sed -n 's/^generation=//p' "$T/state/dev.state")
	grep -qx 'step=idle' "$T/state/dev.state" || t_fail "$step: state not idle"
	n=$(privkeys)
	[ "$n" -eq 2 ] || t_fail "$step: $n private keys on the token, expected 2"
	what=$(grep -o 'event=renew_recover [^ ]* step=[a-z]* action=[a-z]*' "$log" || echo "no recovery needed")
	echo "ok: SIGKILL after '$step' (generation $gen_before): restart works, $what, now generation $gen_after, 2 keys on the token"
done
t_pass "renewal survives SIGKILL at every step"
