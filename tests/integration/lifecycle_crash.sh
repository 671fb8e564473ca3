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
. "$(dirname "$0")/../lib/pebble.sh"
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
# agent_gone PID: the cleanup's stop of a restarted agent. It waits for
# the agent to end before the next cleanup step stops the servers it talks
# to: on SIGTERM the agent finishes a renewal in progress, and pebble
# stopped under it made its request fail ("Peer closed underlying
# transport", a line of the teardown that the failure's log dump showed
# under the real FAIL).
agent_gone() {
	kill "$1" 2>/dev/null || return 0
	t_until 60 t_gone "$1" || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
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
	t_on_exit "agent_gone $pid" # should the test fail before it stops it
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

# The same over ACME (pebble, dns-01 through the hook): SIGKILL after each
# ACME step, on a token of its own. The account key is a third private
# key there, kept by every recovery.
softhsm2-util --init-token --free --label atoken --so-pin 87654321 \
	--pin tPIN-4711xq >/dev/null || t_fail "second token"
pebble_start "$T/pebble" validity=600
acme_conf=$T/acme.conf
sed -e 's/^uri = pkcs11:token=itoken/uri = pkcs11:token=atoken/' \
	-e "s|^state_dir = .*|state_dir = $T/astate|" "$conf" |
	sed -n '/^\[identity/q;p' >"$acme_conf"
cat >>"$acme_conf" <<-EOF

	[identity dev]
	token = soft
	key = pkcs11:object=dev-key;type=private
	cert = pkcs11:object=dev-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = acme
	acme_directory = $PEBBLE_DIR_URL
	acme_ca = $PEBBLE_CA
	acme_account_key = pkcs11:object=acme-account;type=private
	acme_challenge = dns-01
	acme_dns_hook = $PEBBLE_HOOK
	issuer_ca = $T/pebble/roots.pem
	subject = CN=crash-device.acme.test
	sans = DNS:crash-device.acme.test
	renew_before = 597s
	renew_jitter = 0
	retry_min = 1s
	retry_max = 2s
	EOF
agent_conf_tunnel "$acme_conf" web "$T/web.sock" "localhost:$port" dev
cat "$T/pebble/roots-all.pem" "$T/ca/ca.pem" >"$T/ngx-clients.pem"
nginx_start "$T/ngx2" "$(t_free_port)" "$T/ngx-clients.pem" "$T/server.pem" "$T/server.key"
# The tunnel goes to the nginx that trusts pebble's roots.
sed -i "s|^connect = localhost:$port|connect = localhost:$(sed -n 's/.*listen 127.0.0.1:\([0-9]*\) ssl.*/\1/p' "$T/ngx2/nginx.conf")|" "$acme_conf"
"$MTLSCTL" -c "$acme_conf" keygen dev --acme-account >/dev/null
"$MTLSCTL" -c "$acme_conf" enroll dev >/dev/null 2>"$T/acme-enroll.err" ||
	t_fail "ACME enroll: $(tail -3 "$T/acme-enroll.err")"
arequest() { # pebble names the subject after the order's first identifier
	local out
	out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/) &&
		[[ $out == *"dn=CN=crash-device.acme.test verify=SUCCESS"* ]]
}
aprivkeys() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label atoken --login \
		--pin tPIN-4711xq --list-objects --type privkey 2>/dev/null |
		grep -c 'Private Key Object' || true
}
for step in acme_account acme_order acme_challenge acme_finalize acme_download; do
	# The account is looked up (and the crash comes) only without the
	# record of it: a lost state folder.
	[ $step = acme_account ] && rm -f "$T/astate/dev.acme-account"
	log=$T/acme-$step.log
	rc=0
	MTLS_AGENT_TEST_CRASH_AT=$step timeout 120 "$MTLS_AGENT" -c "$acme_conf" >"$log" 2>&1 || rc=$?
	[ $rc -eq 137 ] || t_fail "$step: agent ended with $rc, not SIGKILL: $(tail -3 "$log")"
	grep -q "event=test_crash step=$step" "$log" || t_fail "$step: no crash"
	gen_before=$(sed -n 's/^generation=//p' "$T/astate/dev.state")
	log=$T/acme-after-$step.log
	"$MTLS_AGENT" -c "$acme_conf" >"$log" 2>&1 &
	pid=$!
	t_on_exit "agent_gone $pid"
	t_until 60 logged "$log" 'event=ready' || t_fail "$step: no restart: $(tail -3 "$log")"
	arequest || t_fail "$step: identity not working after restart"
	t_until 90 logged "$log" 'event=renewed' || t_fail "$step: renewal not completed after restart"
	kill -TERM $pid
	t_until 60 t_gone $pid || kill -KILL $pid 2>/dev/null || true
	wait $pid || true
	gen_after=$(sed -n 's/^generation=//p' "$T/astate/dev.state")
	grep -qx 'step=idle' "$T/astate/dev.state" || t_fail "$step: state not idle"
	[ -s "$T/astate/dev.acme-account" ] || t_fail "$step: no account record"
	n=$(aprivkeys)
	[ "$n" -eq 3 ] || t_fail "$step: $n private keys on the token, expected 3 (in service, previous, account)"
	echo "ok: SIGKILL after '$step' (generation $gen_before): restart works, now generation $gen_after, 3 keys on the token"
done
# Nothing left in the zone: every dns-01 record presented, also by an
# agent killed mid-order, was cleaned up (by the next order at the latest).
[ ! -e "$T/astate/dev.acme-dns" ] || t_fail "dns-01 records still recorded: $(cat "$T/astate/dev.acme-dns")"
left=$(awk '$1 == "present" { p[$2 " " $3]++ } $1 == "cleanup" { p[$2 " " $3]-- }
	END { for (k in p) if (p[k] > 0) print k }' "$T/pebble/dns-hook.log")
[ -z "$left" ] || t_fail "dns-01 records never cleaned up: $left"
echo "ok: every dns-01 record presented was cleaned up ($(grep -c '^present' "$T/pebble/dns-hook.log") records)"
t_pass "renewal survives SIGKILL at every step (exec and ACME)"
