#!/bin/bash
# A tunnel socket in a folder another local user (65534) can write: while
# the agent (root) starts, twenty times, that user keeps swapping the
# socket's path for a symlink to a root-only file. The agent's chown and
# chmod of its socket must never reach that file (earlier: chown/chmod by
# path after bind() followed the symlink). Starting may fail: the folder is
# the attacker's.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/agent.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv)"; exit 0; }

t_init attack_socket_path
chmod 711 "$T"
PY=/usr/bin/python3 # Debian's, which any uid can run
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Path CA"
# The victim: root's, mode 0600; the folder: the attacker's.
echo secret >"$T/victim" && chmod 600 "$T/victim"
mkdir "$T/shared" && chown 65534:65534 "$T/shared" && chmod 755 "$T/shared"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=path"
agent_conf_tunnel "$conf" web "$T/shared/agent.sock" "localhost:1" dev \
	"mode = 0666" "owner = 65534" "group = 65534"

# The attacker: waits for the socket to appear, then at once renames a
# symlink over its name (bounded: at most 60 s per round).
attack() {
	"${NOBODY[@]}" "$PY" -c 'import ctypes, os, stat, struct, sys, time
victim, d = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
libc.inotify_add_watch(fd, d.encode(), 0x100)  # IN_CREATE: woken by bind()
os.symlink(victim, d + "/.l")
print("ready", flush=True)
end = time.monotonic() + 60
while time.monotonic() < end:
    os.read(fd, 4096)
    try:
        if stat.S_ISSOCK(os.lstat(d + "/agent.sock").st_mode):
            os.rename(d + "/.l", d + "/agent.sock")
            print("swapped")
            break
    except FileNotFoundError:
        pass' "$T/victim" "$T/shared" >>"$T/attacker.out" 2>&1 &
	attacker=$!
	t_on_exit "kill $attacker"
}

started=0 refused=0
t_on_exit agent_stop
for i in $(seq 1 20); do
	rm -f "$T/shared/agent.sock" "$T/shared/.l"
	attack
	t_until 30 eval '[ "$(grep -c ready "$T/attacker.out")" -ge $i ]' || t_fail "round $i: attacker not ready"
	# The attacker controls the folder: the agent may refuse to start
	# (its socket was replaced), never act on the attacker's file.
	from=$(($(wc -l 2>/dev/null <"$T/agent.log" || echo 0) + 1))
	"$MTLS_AGENT" -c "$conf" >>"$T/agent.log" 2>&1 &
	AGENT_PID=$!
	up() { tail -n +"$from" "$T/agent.log" | grep -c 'event=ready' >/dev/null || ! kill -0 "$AGENT_PID" 2>/dev/null; }
	t_until 60 up || t_fail "round $i: the agent neither started nor ended"
	if tail -n +"$from" "$T/agent.log" | grep -c 'event=ready' >/dev/null; then
		started=$((started + 1))
		agent_stop || true
	else
		wait "$AGENT_PID" || true
		AGENT_PID=
		tail -n +"$from" "$T/agent.log" | grep -c 'replaced by someone else' >/dev/null ||
			t_fail "round $i: the agent ended for another reason"
		refused=$((refused + 1))
	fi
	t_until 60 t_gone "$attacker" || true
	st=$(stat -c '%u:%g %a' "$T/victim")
	[ "$st" = "0:0 600" ] || t_fail "round $i: the agent's chown/chmod reached the victim: $st"
done
echo "ok: 20 starts while uid 65534 swapped the new socket's name for a symlink ($(grep -c swapped "$T/attacker.out") swaps; $started started, $refused refused as replaced): the victim kept 0:0 600"
t_pass "socket path swapped for a symlink"
