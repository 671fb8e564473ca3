#!/bin/bash
# Slow clients on the local servers: local users (uid 65534) connect to the
# metrics socket (mode 0666) and send one byte every 1.5 s, never finishing
# a request. A scrape must still be answered at once, again and again; the
# slow clients are dropped at their request's deadline however often they
# send; one uid gets at most two clients at a time. The control socket is
# the same server: a slow client of root's does not stall mtlsctl status.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init metrics_slowloris
chmod 711 "$T"
conf=$T/agent.conf
printf '[agent]\nlog_level = debug\nstate_dir = %s\ncontrol = %s\nmetrics = %s\n' \
	"$T/state" "$T/control.sock" "$T/metrics.sock" >"$conf"
agent_start "$conf"

# One byte of a request every 1.5 s (the attack), until the server closes.
trickle() {
	while printf 'G' 2>/dev/null; do sleep 1.5; done
}
slow_client() { # SOCKET [setpriv args...]
	local sock=$1
	shift
	# $! is socat (setpriv execs it); once it is gone, trickle ends at its
	# next write.
	trickle | "$@" socat -u STDIN UNIX-CONNECT:"$sock" >/dev/null 2>&1 &
	t_on_exit "kill $!"
}
connected() { # SOCKET: connections the agent holds on it
	ss -xHn state connected | grep -cF " $1 " || true
}
wait_connected() { # SOCKET N: until the agent holds at least N
	for _ in $(seq 1 400); do
		[ "$(connected "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	t_fail "fewer than $2 clients connected to $1"
}
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

agent_log_mark
for _ in 1 2 3 4; do
	slow_client "$T/metrics.sock" "${nobody[@]}"
done
wait_connected "$T/metrics.sock" 1

scrape() { # each within 5 s, even on a loaded machine
	local t0 t1
	t0=$(date +%s%N)
	curl -sS --max-time 10 --unix-socket "$T/metrics.sock" http://localhost/metrics \
		>"$T/scrape.out" || t_fail "scrape failed while slow clients trickled"
	t1=$(date +%s%N)
	t_assert_contains "$T/scrape.out" '^mtls_connections_total '
	[ $(((t1 - t0) / 1000000)) -lt 5000 ] ||
		t_fail "scrape took $(((t1 - t0) / 1000000)) ms"
}
for _ in 1 2 3; do scrape; done
echo "ok: three scrapes answered while uid 65534 trickled"
# Two of its four were served (and stalled nothing), two refused at once.
agent_log_wait 'event=refused server=metrics reason=limit uid=65534 ' 30
[ "$(connected "$T/metrics.sock")" -le 2 ] || t_fail "more than two clients of uid 65534 served"

# The control socket: a slow client of root's, then mtlsctl status.
slow_client "$T/control.sock"
wait_connected "$T/control.sock" 1
t0=$(date +%s%N)
timeout 20 "$MTLSCTL" -c "$conf" status >"$T/status.out" 2>&1 ||
	t_fail "mtlsctl status failed while a slow client held the control socket: $(cat "$T/status.out")"
t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -lt 5000 ] || t_fail "mtlsctl status took $(((t1 - t0) / 1000000)) ms"
echo "ok: mtlsctl status answered while a slow client trickled"

# Each request has one deadline (5 s), however often its client sends: the
# slow clients are all gone well before they could finish a request.
for _ in $(seq 1 600); do
	[ "$(connected "$T/metrics.sock")" = 0 ] && [ "$(connected "$T/control.sock")" = 0 ] && break
	sleep 0.05
done
[ "$(connected "$T/metrics.sock")" = 0 ] || t_fail "slow metrics clients still connected after 30 s"
[ "$(connected "$T/control.sock")" = 0 ] || t_fail "slow control client still connected after 30 s"
t_pass "slow clients stall neither the metrics nor the control socket"
