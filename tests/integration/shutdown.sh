#!/bin/bash
# SIGTERM with work in flight, five times over: bulk downloads, streams
# both ways that keep the relay busy (it never waits, so it must look at
# the stop signal all the same), handshakes, junk requests and refusals at
# the same moment.
# Each time the agent ends within shutdown_grace plus its bounded stop,
# with status 0 and no connection left in its final stats line (earlier:
# main returned with connections_active=1 or 2, and freed wolfSSL's
# globals under a running relay: "double free or corruption").
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init shutdown
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Stop CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
ngx=$(t_free_port)
nginx_start "$T/ngx" "$ngx" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
# Sparse: nginx sends 4 GiB of zeros at loopback speed, longer than a round.
truncate -s 4G "$T/ngx/www/big.bin"

# An mTLS echo server: a client that streams both ways keeps the relay
# busy in both directions at once, so it never has to wait.
echo_port=$(t_free_port)
socat "OPENSSL-LISTEN:$echo_port,bind=127.0.0.1,reuseaddr,fork,cert=$T/server.pem,key=$T/server.key,cafile=$T/ca/ca.pem,verify=1" \
	EXEC:cat 2>"$T/socat.log" &
t_on_exit "kill $!"
t_wait_port "$echo_port" 30 $!

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i 's/^shutdown_grace = .*/shutdown_grace = 1s/' "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=stopper"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$ngx" dev
agent_conf_tunnel "$conf" echo "$T/echo.sock" "localhost:$echo_port" dev
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[profile p]
	ca = $T/ca/ca.pem

	[rule web]
	hosts = localhost
	action = allow
	identity = dev
	profile = p
	EOF

bulk() { # N: downloads running in the background, pids in $T/bulk.pids
	for _ in $(seq 1 "$1"); do
		curl -sS --max-time 120 --unix-socket "$T/web.sock" -o /dev/null \
			http://localhost/files/big.bin 2>/dev/null &
		echo $! >>"$T/bulk.pids"
	done
}
stream() { # N: clients sending zeros and reading the echo, both at once
	for _ in $(seq 1 "$1"); do
		timeout 120 socat "UNIX-CONNECT:$T/echo.sock" \
			SYSTEM:'cat /dev/zero & exec cat >/dev/null' 2>/dev/null &
		echo $! >>"$T/bulk.pids"
	done
}
noise() { # bounded: 200 short connections of every kind, then it ends
	for i in $(seq 1 50); do
		curl -sS --max-time 20 --unix-socket "$T/web.sock" http://localhost/ >/dev/null 2>&1 || true
		curl -sS --max-time 20 -x "socks5h://localhost$T/agent.sock" "http://localhost:$ngx/" >/dev/null 2>&1 || true
		printf 'GARBAGE %s\r\n\r\n' "$i" | socat -t 2 - "UNIX-CONNECT:$T/agent.sock" >/dev/null 2>&1 || true
		printf '\x05\x01\x00\x05\x01\x00\x03\x04evil\x01\xbb' | socat -t 2 - "UNIX-CONNECT:$T/agent.sock" >/dev/null 2>&1 || true
	done
}

for round in 1 2 3 4 5; do
	: >"$T/bulk.pids"
	agent_start "$conf"
	bulk 3
	stream 2
	noise &
	noise_pid=$!
	t_on_exit "kill $noise_pid"
	# The downloads are relaying when all three handshakes are done.
	agent_log_wait 'event=handshake .*tunnel=web result=ok' 60
	t_until 60 eval '(( $(tail -n +$AGENT_LOG_FROM "$T/agent.log" | grep -c "event=handshake .*tunnel=web result=ok") >= 3 ))' ||
		t_fail "round $round: the downloads did not start"
	t_until 60 eval '(( $(tail -n +$AGENT_LOG_FROM "$T/agent.log" | grep -c "event=handshake .*tunnel=echo result=ok") >= 2 ))' ||
		t_fail "round $round: the streams did not start"
	kill -TERM "$AGENT_PID"
	rc=0
	# shutdown_grace 1 s + at most 5 s for the stop signal: 60 s is ample.
	t_until 60 t_gone "$AGENT_PID" || t_fail "round $round: still running 60 s after SIGTERM"
	wait "$AGENT_PID" || rc=$?
	AGENT_PID=
	kill "$noise_pid" 2>/dev/null || true
	wait "$noise_pid" 2>/dev/null || true
	xargs -r kill <"$T/bulk.pids" 2>/dev/null || true
	[ $rc -eq 0 ] || t_fail "round $round: exit status $rc"
	stats=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep 'event=stats' | tail -1)
	[[ $stats == *"connections_active=0 "* || $stats != *connections_active=* ]] ||
		t_fail "round $round: connections left at exit: $stats"
	tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=close .*tunnel=web .*stopped=1' >/dev/null ||
		t_fail "round $round: no download was ended by the stop signal"
	[ "$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=close .*tunnel=echo .*stopped=1')" -eq 2 ] ||
		t_fail "round $round: a stream was not ended by the stop signal"
	! tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'result=forced' >/dev/null ||
		t_fail "round $round: shutdown had to be forced"
	echo "ok: round $round: stopped with downloads in flight, status 0, nothing left"
done
t_pass "SIGTERM with work in flight"
