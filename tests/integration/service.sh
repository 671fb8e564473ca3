#!/bin/bash
# Running as a service: units pass systemd-analyze verify (and their
# exposure is measured); READY=1, STATUS=, WATCHDOG=1 and RELOADING=1 reach
# a NOTIFY_SOCKET this test owns; sockets come from systemd-socket-activate
# by name; metrics pass promtool and match the traffic sent; the control
# socket answers root and refuses another uid; a token with
# pin_source = unlock waits for mtlsctl unlock, and mtlsctl lock logs out.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init service
chmod 711 "$T"
src=$(cd "$(dirname "$0")/../.." && pwd)

# 1. The units, with ExecStart pointing at this build.
mkdir -p "$T/units"
for u in mtls-agent.service mtls-agent.socket; do
	sed "s#@SBINDIR@/mtls-agent#$MTLS_AGENT#" "$src/systemd/$u" >"$T/units/$u"
done
# systemd-analyze wants the account to exist; verify what the unit says.
# --man=no: the man pages are checked by their own install, not here.
if systemd-analyze verify --man=no "$T/units/mtls-agent.service" "$T/units/mtls-agent.socket" \
	>"$T/verify.log" 2>&1; then
	echo "ok: systemd-analyze verify"
else
	grep -v "mtls-agent.*user\|User=" "$T/verify.log" | grep -q . &&
		t_fail "systemd-analyze verify: $(cat "$T/verify.log")"
	echo "ok: systemd-analyze verify (only the missing mtls-agent account noted)"
fi
systemd-analyze security --offline=true "$T/units/mtls-agent.service" >"$T/security.log" 2>&1 || true
exposure=$(grep -o 'Overall exposure level for mtls-agent.service: [0-9.]*' "$T/security.log" | grep -o '[0-9.]*$' || echo "?")
echo "ok: systemd-analyze security exposure $exposure"
echo "$exposure" >"$T/exposure"

softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Service CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" svc "$T/ca/ca.pem"
identity_provision "$conf" svc ec-p256 "$T/ca" "CN=service-device"
sed -i "s#^\[agent\]\$#[agent]\ncontrol = $T/control.sock\nmetrics = $T/metrics.sock#" "$conf"
# "web" comes from systemd-socket-activate; the agent opens nothing there.
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" svc

# 2. sd_notify to our own socket; socket activation by name.
socat -u UNIX-RECVFROM:"$T/notify.sock",fork OPEN:"$T/notify.log",creat,append &
t_on_exit "kill $!"
t_wait_file "$T/notify.sock"
(
	export NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=400000
	# It passes on only the variables named with -E.
	exec systemd-socket-activate -l "$T/web.sock" --fdname=web \
		-E SOFTHSM2_CONF -E NOTIFY_SOCKET -E WATCHDOG_USEC \
		bash -c 'export WATCHDOG_PID=$$; exec "$0" -c "$1"' "$MTLS_AGENT" "$conf"
) >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
t_on_exit agent_stop
t_wait_file "$T/web.sock"
# systemd-socket-activate starts the agent on the first connection.
for i in 1 2 3 4 5; do
	out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
	[[ $out == *"dn=CN=service-device verify=SUCCESS"* ]] || t_fail "request $i: $out"
done
t_assert_contains "$T/agent.log" 'event=listen tunnel=web .*socket_activated=1'
# socat writes each datagram to notify.log from a child of its own, maybe
# a while after the agent sent it: waits, not assertions.
t_wait_grep "$T/notify.log" 'READY=1'
t_wait_grep "$T/notify.log" 'STATUS=1 listeners, 1 identities \(svc expires in'
# Every WATCHDOG_USEC / 2 (200 ms).
t_wait_grep "$T/notify.log" 'WATCHDOG=1'
agent_log_mark
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok'
t_wait_grep "$T/notify.log" 'RELOADING=1'
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=service-device"* ]] || t_fail "after reload: $out"
echo "ok: READY=1, STATUS, WATCHDOG=1, RELOADING=1; socket activated by name, kept across reload"

# 3. Metrics: valid for promtool, and the counts are the traffic sent.
curl -sS --max-time 30 --unix-socket "$T/metrics.sock" http://localhost/metrics >"$T/metrics.txt"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.log" 2>&1 ||
	t_fail "promtool: $(cat "$T/promtool.log")"
grep -qx 'mtls_handshakes_total{result="ok",reason="ok"} 6' "$T/metrics.txt" || t_fail "handshakes: $(grep handshakes_total "$T/metrics.txt")"
grep -qx 'mtls_connections_total 6' "$T/metrics.txt" || t_fail "connections_total"
grep -qx 'mtls_handshake_duration_seconds_count 6' "$T/metrics.txt" || t_fail "histogram count"
grep -qx 'mtls_token_sign_duration_seconds_count 6' "$T/metrics.txt" || t_fail "sign histogram"
grep -qx 'mtls_token_present{token="soft"} 1' "$T/metrics.txt" || t_fail "token_present"
up=$(sed -n 's/^mtls_bytes_total{direction="to_server"} //p' "$T/metrics.txt")
[ "$up" -eq $((6 * 73)) ] || t_fail "bytes to server: $up, expected $((6 * 73))"
grep -q '^mtls_certificate_not_after_seconds{identity="svc"} [0-9]' "$T/metrics.txt" || t_fail "not_after"
# 30 days left, warn_before 7d and 1d by default: no warning yet.
grep -qx 'mtls_certificate_expiry_warning{identity="svc"} 0' "$T/metrics.txt" || t_fail "expiry warning"
echo "ok: promtool accepts the metrics; 6 handshakes, 6 signatures, $up bytes up"

# 4. The control socket: status for root, nothing for another uid.
"$MTLSCTL" -c "$conf" status >"$T/status.out"
t_assert_contains "$T/status.out" 'soft +present'
t_assert_contains "$T/status.out" 'svc +expires .* \(in (29|30)d'
t_assert_contains "$T/status.out" 'tunnel web'
"$MTLSCTL" -c "$conf" status --json >"$T/status.json"
t_assert_contains "$T/status.json" '"seconds_left"'
other() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# The socket is 0600: the kernel refuses another uid...
if other "$MTLSCTL" -c "$conf" status --json >"$T/other.out" 2>&1; then
	t_fail "uid 65534 used the control socket"
fi
# ...and were it opened up by mistake, the agent itself refuses it.
chmod 666 "$T/control.sock"
if other "$MTLSCTL" -c "$conf" status --json >"$T/other2.out" 2>&1; then
	t_fail "uid 65534 used the opened control socket"
fi
agent_log_wait 'event=control_refused uid=65534'
if other "$MTLSCTL" -c "$conf" reload >/dev/null 2>&1; then
	t_fail "uid 65534 reloaded the agent"
fi
echo "ok: mtlsctl status for root; uid 65534 refused by the socket mode and by the agent"

# 5. Lock: logged out, PIN forgotten; new handshakes need the PIN again.
"$MTLSCTL" -c "$conf" lock soft >/dev/null
agent_stop

# 6. pin_source = unlock: locked until mtlsctl unlock.
sed -i 's#^pin_source = .*#pin_source = unlock#' "$conf"
agent_start "$conf"
t_assert_contains "$T/agent.log" 'event=token_locked token=soft'
curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ >/dev/null 2>&1 &&
	t_fail "a locked token served a request"
agent_log_wait 'reason=pin_missing'
if printf 'wrong-pin\n' | "$MTLSCTL" -c "$conf" unlock soft 2>"$T/unlock.err"; then
	t_fail "a wrong PIN unlocked"
fi
t_assert_contains "$T/unlock.err" 'pin_incorrect'
agent_log_mark
printf 'tPIN-4711xq\n' | "$MTLSCTL" -c "$conf" unlock soft >/dev/null
agent_log_wait 'event=reload result=ok'
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=service-device"* ]] || t_fail "after unlock: $out"
"$MTLSCTL" -c "$conf" lock soft >/dev/null
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ 2>&1) &&
	[[ $out == *dn=* ]] && t_fail "served after lock: $out"
agent_log_wait 'result=fail reason=pin_missing'
echo "ok: unlock (wrong PIN refused, right PIN loads the identities), lock logs out"
# 7. When stderr is the journal (JOURNAL_STREAM names it), lines carry
#    syslog priority prefixes.
: >"$T/journal.log"
rc=0
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/journal.log") \
	"$MTLS_AGENT" -c "$T/missing.conf" 2>>"$T/journal.log" || rc=$?
[ $rc -eq 1 ] || t_fail "missing config: exit $rc"
grep -q '^<3>level=err event=start_failed reason=config' "$T/journal.log" ||
	t_fail "no priority prefix: $(cat "$T/journal.log")"
echo "ok: journal priority prefixes (<3> for errors)"
t_pass "service"
