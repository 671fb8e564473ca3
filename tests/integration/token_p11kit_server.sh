#!/bin/bash
# A token on another machine or outside a container: SoftHSM2 behind
# `p11-kit server` on a Unix socket, the agent and mtlsctl reaching it only
# through p11-kit-client.so (P11_KIT_SERVER_ADDRESS), as a host's YubiKey is
# handed into a container or VM. mtlsctl makes the key and stores the
# certificate through the socket; handshakes to nginx and to openssl
# s_server -verify_return_error carry the client DN; a renewal (exec
# enroller) makes the next key through the socket and is used. Then the
# server goes away: new handshakes fail with token_absent while an
# established connection goes on; the server comes back on the same socket
# and the agent, not restarted, signs again (it re-initialises the module:
# p11-kit-client never reconnects by itself). A second, quiet outage
# (SIGKILL, stale socket file): the first request after it succeeds.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

CLIENT_MODULE=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
[ -f "$CLIENT_MODULE" ] || t_fail "$CLIENT_MODULE missing (package p11-kit-modules)"
t_init token_p11kit_server
softhsm_init fwd 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Forward CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
nport=$(t_free_port)
# A kept connection waits through the outage: longer than any deadline here.
NGINX_KEEPALIVE_TIMEOUT=600s nginx_start "$T/ngx" "$nport" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
sport=$(t_free_port)
s_server_start "$T/ssrv" "$sport" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
exec_ca=$(cd "$(dirname "$0")/../lib" && pwd)/exec_ca.sh

# The "host" side: p11-kit server exporting the one SoftHSM2 token. It forks
# a `p11-kit remote` per client connection, and those outlive a SIGTERM to
# the server alone; so it runs in a process group of its own, and "the
# server goes away" ends the whole group, as when the host side dies.
sock=$T/p11kit.sock
export P11_KIT_SERVER_ADDRESS=unix:path=$sock
SRV_PGID=
p11srv_start() {
	local n=0
	[ -f "$T/p11srv.out" ] && n=$(wc -l <"$T/p11srv.out")
	setsid p11-kit server -f -n "$sock" --provider "$SOFTHSM_MODULE" \
		"pkcs11:token=fwd" >>"$T/p11srv.out" 2>>"$T/p11srv.log" &
	t_on_exit "p11srv_stop TERM $!"
	# In the foreground it prints its pid once the socket listens.
	t_until 30 _p11srv_ready "$n" $! || t_fail "p11-kit server not ready after 30 s"
	SRV_PGID=$(sed -n 's/^P11_KIT_SERVER_PID=\([0-9]*\);.*/\1/p' "$T/p11srv.out" | tail -1)
	# setsid exec'ed it (a background job leads no group): the pid we
	# stop at exit is the group's.
	[ "$SRV_PGID" = $! ] || t_fail "p11-kit server pid $SRV_PGID, started as $!"
	[ -S "$sock" ] || t_fail "p11-kit server printed its pid but $sock is no socket"
}
_p11srv_ready() { # LINES_BEFORE PID
	tail -n +"$(($1 + 1))" "$T/p11srv.out" 2>/dev/null | grep -c "^P11_KIT_SERVER_PID=" >/dev/null && return 0
	kill -0 "$2" 2>/dev/null || t_fail "p11-kit server exited: $(tail -3 "$T/p11srv.log")"
	return 1
}
_pgrp_alive() { # PGID: a process of the group is alive (zombies count as gone)
	local f st
	for f in /proc/[0-9]*/stat; do
		st=$(cat "$f" 2>/dev/null) || continue
		st=${st##*) }
		set -- $st # state ppid pgrp ...
		[ "$3" = "$PG" ] && [ "$1" != Z ] && return 0
	done
	return 1
}
# p11srv_stop SIGNAL PID: the server's whole group, and waits until it is gone.
p11srv_stop() {
	local sig=$1 pid=$2
	PG=$pid
	_pgrp_alive || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -"$sig" -- -"$pid" 2>/dev/null || true
	if ! t_until 30 eval '! _pgrp_alive'; then
		kill -KILL -- -"$pid" 2>/dev/null || true
		t_until 30 eval '! _pgrp_alive' || t_fail "p11-kit server group $pid still alive"
	fi
	wait "$pid" 2>/dev/null || true
}
p11srv_start

conf=$T/agent.conf
agent_conf_token "$conf" fwd "$T/pin"
sed -i "s#^module = .*#module = $CLIENT_MODULE#" "$conf"
sed -i "s#^\[agent\]\$#[agent]\ncontrol = $T/control.sock\nmetrics = $T/metrics.sock#" "$conf"
cat >>"$conf" <<-EOF

	[identity dev]
	token = soft
	key = pkcs11:object=dev-key;type=private
	cert = pkcs11:object=dev-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = exec
	exec = $exec_ca $T/ca
	issuer_ca = $T/ca/ca.pem
	cert_file = $T/dev-chain.pem
	EOF
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$nport" dev
agent_conf_tunnel "$conf" s "$T/s.sock" "localhost:$sport" dev

# 1. mtlsctl keygen, csr and import-cert through the socket; the host's
#    token (SoftHSM2 itself, not through the socket) holds the results.
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=fwd-device,O=Forward"
host_objs() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label fwd --login \
		--pin tPIN-4711xq --list-objects 2>/dev/null
}
host_objs >"$T/objs.1"
grep -A4 'label: *dev-key$' "$T/objs.1" | grep -c 'Access: *sensitive, always sensitive, never extractable' >/dev/null ||
	t_fail "dev-key not on the host's token, or not protected: $(cat "$T/objs.1")"
grep -q 'label: *dev-cert$' "$T/objs.1" || t_fail "dev-cert not on the host's token"
echo "ok: mtlsctl keygen + import-cert through p11-kit-client: dev-key (sensitive, never extractable) and dev-cert on the host's token"

agent_start "$conf"
# The agent reaches the token only through the socket.
grep -q 'p11-kit-client\.so' "/proc/$AGENT_PID/maps" || t_fail "agent did not load p11-kit-client.so"
grep -q 'libsofthsm2' "/proc/$AGENT_PID/maps" && t_fail "agent loaded SoftHSM2 itself"

web() { curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ 2>&1; }
web_ok() { [[ $(web) == *"dn=CN=fwd-device,O=Forward verify=SUCCESS"* ]]; }
# s_server prints the client certificate (X509_print): subject and serial.
s_page() { curl -sS --max-time 30 --unix-socket "$T/s.sock" http://localhost/ 2>&1; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
s_serial() { # the client certificate's serial s_server saw, as hex
	local page
	page=$(s_page)
	grep -qE 'Subject: O ?= ?Forward, CN ?= ?fwd-device$' <<<"$page" ||
		t_fail "s_server did not verify CN=fwd-device: $page"
	sed -n 's/^ *Serial Number: [0-9]* (0x\([0-9a-fA-F]*\))$/\1/p' <<<"$page" | tr a-f A-F
}
for i in 1 2 3; do web_ok || t_fail "handshake $i to nginx: $(web)"; done
[ "$(s_serial)" = "$(serial_of "$T/dev.pem")" ] || t_fail "s_server saw another certificate"
echo "ok: 3 handshakes to nginx (dn=CN=fwd-device,O=Forward) and one to s_server -verify_return_error with the forwarded key"

# 2. A renewal by the running agent: the next key is made through the socket.
renew_now() { # GENERATION
	agent_log_mark
	"$MTLSCTL" -c "$conf" renew dev --now >"$T/renew.$1.out" 2>&1 ||
		t_fail "mtlsctl renew: $(cat "$T/renew.$1.out")"
	agent_log_wait "event=renewed identity=dev generation=$1" 60
	# The new generation serves from the reload the renewal asks for.
	agent_log_wait "event=reload result=ok" 60
	host_objs >"$T/objs.$1"
	grep -A4 "label: *dev-g$1\$" "$T/objs.$1" |
		grep -c 'Access: *sensitive, always sensitive, never extractable' >/dev/null ||
		t_fail "dev-g$1 not on the host's token, or not protected"
	[ "$(s_serial)" = "$(serial_of "$T/dev-chain.pem")" ] ||
		t_fail "after renewal $1, s_server saw serial $(s_serial), not the new $(serial_of "$T/dev-chain.pem")"
	web_ok || t_fail "nginx after renewal $1: $(web)"
}
renew_now 1
echo "ok: renewal 1 generated dev-g1 through the socket; s_server now sees serial $(serial_of "$T/dev-chain.pem")"

# 3. An established connection (HTTP keep-alive through the tunnel), used
#    before and after the server goes away.
coproc KA { exec socat - "UNIX-CONNECT:$T/web.sock"; }
ka_pid=$KA_PID
t_on_exit "kill $ka_pid"
ka_get() { # [close]: one request on the kept connection; prints its dn= line
	local line extra=
	[ -n "${1:-}" ] && extra=$'Connection: close\r\n'
	printf 'GET / HTTP/1.1\r\nHost: localhost\r\n%s\r\n' "$extra" >&"${KA[1]}"
	while IFS= read -r -t 30 line <&"${KA[0]}"; do
		[[ $line == dn=* ]] && { echo "$line"; return 0; }
	done
	return 1
}
[[ $(ka_get) == "dn=CN=fwd-device,O=Forward verify=SUCCESS"* ]] || t_fail "kept connection: first request"

# 4. The server goes away (SIGTERM to its group: it removes its socket).
p11srv_stop TERM "$SRV_PGID"
[ -e "$sock" ] && t_fail "$sock still there after the server ended"
agent_log_mark
n_fail=12
for i in $(seq 1 $n_fail); do
	web_ok && t_fail "handshake $i succeeded with the server gone"
done
fails_absent() {
	[ "$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=handshake .*tunnel=web result=fail reason=token_absent')" -ge $n_fail ]
}
t_until 30 fails_absent || t_fail "not every refused handshake said token_absent: $(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep 'event=handshake' | head -5)"
other=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep 'event=handshake .*result=fail' | grep -vc 'reason=token_absent' || true)
[ "$other" -eq 0 ] || t_fail "$other handshakes failed for another reason"
t_assert_contains "$T/agent.log" 'event=module_reinit module=[^ ]*p11-kit-client\.so .*cause=CKR_DEVICE_ERROR attempt=1 result=ok'
[[ $(ka_get) == "dn=CN=fwd-device,O=Forward verify=SUCCESS"* ]] || t_fail "the kept connection broke when the server went away"
echo "ok: server gone: $n_fail new handshakes refused, each with reason=token_absent; the module was re-initialised after CKR_DEVICE_ERROR; the established connection still answers"

# 5. The server comes back on the same socket: no restart of the agent.
p11srv_start
t0=${EPOCHREALTIME/./}
tries=0
back() { tries=$((tries + 1)); web_ok; }
t_until 60 back || t_fail "no handshake within 60 s after the server came back"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
for i in 1 2 3 4 5; do web_ok || t_fail "handshake $i after recovery: $(web)"; done
kill -0 "$AGENT_PID" || t_fail "the agent is gone"
agent_log_wait 'event=module_recovered module=[^ ]*p11-kit-client\.so reinits=[0-9]+'
reinits=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=module_reinit ' || true)
echo "ok: server back: handshakes again after $ms ms ($tries tries), same agent (pid $AGENT_PID); $reinits re-initialisations in the outage"
[[ $(ka_get close) == "dn=CN=fwd-device,O=Forward verify=SUCCESS"* ]] || t_fail "the kept connection after recovery"
t_until 30 t_gone "$ka_pid" || t_fail "the kept connection did not close"

# 6. A renewal after recovery (login and key generation through the new
#    connection), and the metric counts the re-initialisations.
renew_now 2
curl -sS --max-time 30 --unix-socket "$T/metrics.sock" http://localhost/metrics >"$T/metrics.txt"
ok_reinits=$(sed -n 's/^mtls_token_module_reinits_total{result="ok"} //p' "$T/metrics.txt")
[ "${ok_reinits:-0}" -ge 2 ] || t_fail "mtls_token_module_reinits_total: $(grep reinits "$T/metrics.txt")"
echo "ok: renewal 2 after recovery (dev-g2 on the host's token, used by s_server); mtls_token_module_reinits_total{result=\"ok\"} $ok_reinits"

# 7. A quiet outage: SIGKILL (the socket file stays behind, connect() is
#    refused), nothing asks for the token meanwhile, the server returns:
#    the very first request works (its dead pooled session is retried
#    through a re-initialisation).
p11srv_stop KILL "$SRV_PGID"
[ -S "$sock" ] || t_fail "expected the killed server's socket file to stay"
p11srv_start
agent_log_mark
web_ok || t_fail "first request after a quiet outage: $(web)"
agent_log_wait 'event=module_reinit .*cause=CKR_DEVICE_ERROR attempt=1 result=ok'
echo "ok: quiet outage (SIGKILL, stale socket): the first request after the server returned succeeded"

agent_stop || t_fail "mtls-agent did not stop cleanly"
t_pass "a token forwarded by p11-kit server: provisioning, renewal, outage and recovery without restart"
