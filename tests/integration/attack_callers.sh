#!/bin/bash
# The agent's loopback TCP proxy port under attack by another local uid
# (65534), in a network and mount namespace of the test's own:
#  H1  a denied user's "CONNECT + GET, close at once" never passes for
#      root (whose socket shows uid 0 in /proc/net/tcp once closed);
#  H2  9,000 listening sockets of the attacker do not hide its uid;
#  M1  127.0.0.2 spelled 2130706434, 127.2, 0x7f.0.0.2 or 0177.0.0.2, or a
#      name resolving to it, does not pass a deny for 127.0.0.2/32;
#  M3  max_connections_per_uid holds on a TCP listener;
#  M4  connections to a server that accepts and never answers do not hold
#      up another caller's handshake, nor a thread each while queued;
#  M5  an agent that cannot read other users' executables refuses exe rules;
#  M6  connects to a server that never accepts hold no thread each.
set -euo pipefail
if [ -z "${MTLS_IN_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (namespaces, setpriv)"; exit 0; }
	exec unshare --net --mount env MTLS_IN_NS=1 bash "$0" "$@"
fi
ip link set lo up
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init attack_callers
chmod 711 "$T"
ATTACKER=$T/attacker.py
PY=/usr/bin/python3 # Debian's, which any uid can run
install -m 644 "$(dirname "$0")/../tools/attacker.py" "$ATTACKER"
# (An array, not a function: a function sent to the background is a
# subshell, and killing it would leave the attacker running.)
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
# A name for 127.0.0.2, in this mount namespace only.
{ cat /etc/hosts; echo "127.0.0.2 internal.test"; } >"$T/hosts"
mount --bind "$T/hosts" /etc/hosts

softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Attack CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost,DNS:internal.test,IP:127.0.0.2"
ca=$T/ca/ca.pem
p_root=$(t_free_port); nginx_start "$T/ngx-root" "$p_root" "$ca" "$T/server.pem" "$T/server.key"
p_open=$(t_free_port); nginx_start "$T/ngx-open" "$p_open" "$ca" "$T/server.pem" "$T/server.key"
# A server that accepts (the kernel does) and never says a word.
p_slow=$(t_free_port)
"$PY" -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128); time.sleep(600)' "$p_slow" >"$T/slow-server.log" 2>&1 &
t_on_exit "kill $!"
t_wait_port "$p_slow" 30
# A server that never accepts: its accept queue (backlog 0) holds one
# connection, never taken; the kernel drops every SYN after that, so a
# connect to it stays in progress. "full" once a connect is seen to hang.
p_full=$(t_free_port)
"$PY" -c 'import select,socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(0)
a=socket.create_connection(("127.0.0.1", int(sys.argv[1])))
b=socket.socket(); b.setblocking(False)
try: b.connect(("127.0.0.1", int(sys.argv[1])))
except BlockingIOError: pass
time.sleep(0.5)
if not select.select([], [b], [], 2)[1]: print("full", flush=True)
time.sleep(600)' "$p_full" >"$T/full-server.log" 2>&1 &
t_on_exit "kill $!"
t_until 30 grep -q full "$T/full-server.log" || t_fail "no connect hangs against a full accept queue: $(cat "$T/full-server.log")"
# The server at 127.0.0.2 that the policy keeps everyone from.
p_dot2=$(t_free_port)
openssl s_server -accept "127.0.0.2:$p_dot2" -cert "$T/server.pem" -key "$T/server.key" \
	-CAfile "$ca" -Verify 1 -www </dev/null >"$T/dot2.log" 2>&1 &
t_on_exit "server_stop $!"
t_until 30 eval 'ss -Htln "src 127.0.0.2:$p_dot2" | grep -q .' || t_fail "s_server on 127.0.0.2"
proxy=$(t_free_port)
tunnel=$(t_free_port)

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i 's/^handshake_timeout = .*/handshake_timeout = 90s/' "$conf"
sed -i 's/^\[agent\]$/[agent]\nconnect_timeout = 120s/' "$conf"
sed -i 's/^\[agent\]$/[agent]\nrequest_timeout = 60s\nmax_connections_per_uid = 4\nmax_handshakes = 8/' "$conf"
agent_conf_identity "$conf" rootid "$ca"
agent_conf_identity "$conf" openid "$ca"
identity_provision "$conf" rootid ec-p256 "$T/ca" "CN=root-only"
identity_provision "$conf" openid ec-p256 "$T/ca" "CN=open"
cat >>"$conf" <<-EOF

	[proxy tcp]
	listen = 127.0.0.1:$proxy

	; A TCP tunnel is reachable by every local user: only root may use it.
	[tunnel rootonly]
	listen = 127.0.0.1:$tunnel
	connect = localhost:$p_root
	identity = rootid
	uid = 0

	[profile p]
	ca = $ca

	[rule nobody-slow]
	uid = 65534
	hosts = localhost
	ports = $p_slow
	action = allow
	identity = openid
	profile = p

	[rule nobody-full]
	uid = 65534
	hosts = localhost
	ports = $p_full
	action = allow
	identity = openid
	profile = p

	[rule nobody]
	uid = 65534
	action = deny
	reason = not for nobody

	[rule no-dot2]
	cidrs = 127.0.0.2/32
	action = deny
	reason = internal

	[rule root-only]
	uid = 0
	hosts = localhost
	ports = $p_root
	action = allow
	identity = rootid
	profile = p

	[rule everyone]
	action = allow
	identity = openid
	profile = p
	EOF
agent_start "$conf"

via() { curl -sS --max-time 60 -p -x "http://127.0.0.1:$proxy" "$@" 2>&1 || true; }
[[ $(via "http://localhost:$p_root/") == *"dn=CN=root-only verify=SUCCESS"* ]] ||
	t_fail "root does not get the root identity"
[[ $(via "http://localhost:$p_open/") == *"dn=CN=root-only verify=SUCCESS"* ]] &&
	t_fail "everyone's port got the root identity"
echo "ok: root reaches its server with its identity over the TCP proxy"

# count PATTERN: lines of this phase's log (since the mark) that match.
count() { tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -cE -- "$1" || true; }
settled() { (($(count 'event=(refused|policy_denied|route|bad_request|resolve_failed) ') >= $1)); }

# A TCP tunnel with a caller rule: root is served, uid 65534 is not.
[[ $(curl -sS --max-time 60 "http://127.0.0.1:$tunnel/" 2>&1) == *"dn=CN=root-only verify=SUCCESS"* ]] ||
	t_fail "root is not served by its TCP tunnel"
agent_log_mark
out=$("${NOBODY[@]}" curl -sS --max-time 60 "http://127.0.0.1:$tunnel/" 2>&1 || true)
[[ $out == *"dn="* ]] && t_fail "uid 65534 used root's TCP tunnel: $out"
agent_log_wait 'event=policy_denied .*tunnel=rootonly uid=65534 .*reason=caller why="uid not allowed"'
echo "ok: a TCP tunnel with uid = 0 serves root and closes on uid 65534"

# Each finding is checked even when an earlier one failed, so a run of an
# old agent shows all of them.
failed=()
bad() { echo "FAIL: $*" >&2; failed+=("${1%%:*}"); }

# H1: 40 connections that send CONNECT + GET and close at once.
agent_log_mark
"${NOBODY[@]}" "$PY" "$ATTACKER" race 127.0.0.1 "$proxy" "localhost:$p_root" 40
t_until 120 settled 40 || bad "H1: the agent did not answer the 40 connections: $(count 'event=')"
n=$(count 'event=route .*rule=root-only')
[ "$n" -eq 0 ] || bad "H1: $n of 40 closed connections of uid 65534 were routed with the root identity"
n=$(count 'uid=0 ')
[ "$n" -eq 0 ] || bad "H1: $n connections of uid 65534 were taken for uid 0"
[[ " ${failed[*]} " == *" H1 "* ]] || echo "ok: H1: 40 send-and-close connections of uid 65534: none taken for root ($(count 'reason=caller_unknown') refused as gone, $(count 'event=policy_denied') denied)"

# H2: the attacker's line pushed past any fixed read of /proc/net/tcp.
agent_log_mark
out=$( (ulimit -n 20000 && "${NOBODY[@]}" "$PY" "$ATTACKER" flood 127.0.0.1 "$proxy" "localhost:$p_open" 9000) 2>&1)
[[ $out == *" 403 "* ]] || bad "H2: uid 65534 behind 9,000 listening sockets was not refused: $out"
t_until 30 _agent_log_has 'event=policy_denied .*uid=65534 .*rule .nobody' ||
	bad "H2: no denial of uid 65534 logged"
[[ " ${failed[*]} " == *" H2 "* ]] || echo "ok: H2: uid 65534 behind 9,000 listening sockets is still uid 65534 ($out)"

# M1: 127.0.0.2 spelled otherwise (raw CONNECT lines: curl would tidy
# the URL), or by a name that resolves to it.
for spelling in 2130706434 127.2 0x7f.0.0.2 0177.0.0.2; do
	out=$("$PY" "$ATTACKER" ask 127.0.0.1 "$proxy" "$spelling:$p_dot2")
	[[ $out == *" 400 "* ]] || bad "M1: $spelling:$p_dot2 not refused as a bad address: $out"
done
for spelling in 127.0.0.2 internal.test; do
	out=$("$PY" "$ATTACKER" ask 127.0.0.1 "$proxy" "$spelling:$p_dot2")
	[[ $out == *" 403 "* ]] || bad "M1: $spelling:$p_dot2 not denied by the CIDR rule: $out"
done
grep -q 'non-standard form' "$T/agent.log" || bad "M1: no reason logged"
grep -q "event=policy_denied .*dest=internal.test:$p_dot2 .*rule 'no-dot2'" "$T/agent.log" ||
	bad "M1: the name was not denied by the CIDR rule"
[[ " ${failed[*]} " == *" M1 "* ]] || echo "ok: M1: 127.0.0.2 as 2130706434, 127.2, 0x7f.0.0.2, 0177.0.0.2 refused (400); as itself or internal.test denied (403)"

# M3: 8 silent connections of uid 65534, 4 allowed.
agent_log_mark
n=$("${NOBODY[@]}" "$PY" "$ATTACKER" hold 127.0.0.1 "$proxy" 8 20)
[ "$n" -eq 4 ] || bad "M3: the agent closed $n of 8 connections of uid 65534 (limit 4)"
[ "$(count 'event=refused .*reason=limit uid=65534')" -eq 4 ] || bad "M3: refusals not logged"
[[ " ${failed[*]} " == *" M3 "* ]] || echo "ok: M3: max_connections_per_uid = 4 holds on the TCP listener (4 of 8 refused)"

# M4: 12 handshakes that never finish (a server that never answers) by
# uid 65534 (allowed there), then root's handshake elsewhere must not wait
# for them (handshake_timeout is 90 s; 30 s is ample on a loaded machine).
sed -i 's/^max_connections_per_uid = 4$/max_connections_per_uid = 64/' "$conf"
agent_log_mark
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok'
agent_log_mark
threads() { sed -n 's/^Threads:\t//p' "/proc/$AGENT_PID/status"; }
th0=$(threads)
"${NOBODY[@]}" "$PY" "$ATTACKER" connect 127.0.0.1 "$proxy" "localhost:$p_slow" 12 300 >"$T/slow.out" 2>&1 &
t_on_exit "kill $!"
t_until 60 grep -q 'held 12' "$T/slow.out" || bad "M4: the slow connections were not made"
t_until 60 eval '(( $(count "event=route .*uid=65534") >= 12 ))' || bad "M4: not all 12 routed"
# A handshake queued for a worker holds no thread: the destination's share
# of max_handshakes = 8 (4) hangs in workers, the other 8 wait in the
# queue; the pool itself may have grown to its 8 workers meanwhile. (A
# thread each waited there before: 12 more than that, for 90 s.)
few_threads() { (( $(threads) <= th0 + 8 )); }
t_until 30 few_threads || bad "M4: $(threads) threads with 12 hung handshakes (before: $th0)"
th4=$(threads)
start=${EPOCHREALTIME//[!0-9]/}
out=$(curl -sS --max-time 30 -p -x "http://127.0.0.1:$proxy" "http://localhost:$p_root/" 2>&1 || true)
took=$(( (${EPOCHREALTIME//[!0-9]/} - start) / 1000 ))ms
[[ $out == *"dn=CN=root-only verify=SUCCESS"* ]] ||
	bad "M4: root's handshake waited behind 12 hung ones: $out (after $took)"
[[ " ${failed[*]} " == *" M4 "* ]] || echo "ok: M4: with 12 hung handshakes of uid 65534 (threads $th0 -> $th4), root's completed in $took"
# M6: 12 connects by uid 65534 to the server that never accepts, each
# waiting out connect_timeout (120 s): a wait on the event loop each, not
# a thread (before: a thread each, for 120 s). Root is served meanwhile.
agent_log_mark
th5=$(threads)
"${NOBODY[@]}" "$PY" "$ATTACKER" connect 127.0.0.1 "$proxy" "localhost:$p_full" 12 300 >"$T/full.out" 2>&1 &
t_on_exit "kill $!"
t_until 60 grep -q 'held 12' "$T/full.out" || bad "M6: the connections were not made"
t_until 60 eval '(( $(count "event=route .*dest=localhost:$p_full") >= 12 ))' || bad "M6: not all 12 routed"
(( $(count "event=handshake .*server=localhost:$p_full") == 0 )) ||
	bad "M6: a connect to the full server ended: $(count "event=handshake .*server=localhost:$p_full")"
few_threads() { (( $(threads) <= th5 + 2 )); }
t_until 30 few_threads || bad "M6: $(threads) threads with 12 connects in progress (before: $th5)"
th6=$(threads)
out=$(curl -sS --max-time 30 -p -x "http://127.0.0.1:$proxy" "http://localhost:$p_root/" 2>&1 || true)
[[ $out == *"dn=CN=root-only verify=SUCCESS"* ]] || bad "M6: root beside 12 pending connects: $out"
[[ " ${failed[*]} " == *" M6 "* ]] || echo "ok: M6: 12 connects in progress to a server that never accepts: threads $th5 -> $th6; root served meanwhile"

# M5: an agent that cannot read other users' /proc/PID/exe (not root, no
# CAP_SYS_PTRACE: the shipped system unit) refuses exe rules it could
# never apply, naming the rule's line; with the agent's own uid it is fine.
m5() { # EXTRA-RULE-LINES... -> the output of mtls-agent --check as uid 65534
	{
		sed -n '1,/^\[rule nobody-slow\]/p' "$conf" | sed '$d'
		printf '[rule by-exe]\n'
		printf '%s\n' "$@"
		printf 'action = allow\nidentity = openid\nprofile = p\n'
	} >"$T/m5.conf"
	chmod 644 "$T/m5.conf"
	"${NOBODY[@]}" "$MTLS_AGENT" --check -c "$T/m5.conf" 2>&1 || true
}
out=$(m5 'exe = /usr/bin/curl')
line=$(grep -n '^\[rule by-exe\]' "$T/m5.conf" | cut -d: -f1)
[[ $out == *"m5.conf:$line: [rule by-exe]: exe = cannot be read"* ]] ||
	bad "M5: an exe rule it cannot apply was not refused at load: $out"
out=$(m5 'exe = /usr/bin/curl' 'uid = 65534')
[[ $out != *"exe = cannot be read"* ]] || bad "M5: an exe rule for the agent's own uid was refused: $out"
[[ " ${failed[*]} " == *" M5 "* ]] || echo "ok: M5: exe rules the agent cannot read are refused at load with their line"

[ ${#failed[@]} -eq 0 ] || t_fail "broken: ${failed[*]}"
t_pass "attacks on the caller boundary"
