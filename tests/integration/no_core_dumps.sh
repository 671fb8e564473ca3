#!/bin/bash
# The agent holds PINs and session keys: it makes itself not dumpable and
# sets its core limit to 0 at start (as ssh-agent does), whatever limit it
# was started with. Run as uid 65534, another process of that uid can
# read neither its environment nor its memory (/proc/PID/* are root's), and
# /proc/PID/limits shows a core size of 0. The units say LimitCORE=0 too.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init no_core_dumps
chmod 711 "$T"
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir "$T/run"
chown 65534:65534 "$T/run"
conf=$T/agent.conf
printf '[agent]\nlog_level = debug\nstate_dir = %s\ncontrol = %s\n' \
	"$T/run/state" "$T/run/control.sock" >"$conf"
chmod 644 "$conf"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

# A generous core limit to start with: the agent must lower it itself.
(
	ulimit -c unlimited
	exec "${nobody[@]}" "$MTLS_AGENT" -c "$conf"
) >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
t_on_exit agent_stop
AGENT_LOG_FROM=1
agent_log_wait 'event=ready' 30
grep -qE '^Uid:[[:space:]]+65534[[:space:]]' "/proc/$AGENT_PID/status" ||
	t_fail "the agent does not run as uid 65534"

# The files of a process that is not dumpable are root's.
owner=$(stat -c %u "/proc/$AGENT_PID/status")
[ "$owner" = 0 ] || t_fail "/proc/$AGENT_PID/status is owned by uid $owner: the agent is dumpable"
if "${nobody[@]}" cat "/proc/$AGENT_PID/environ" >/dev/null 2>&1; then
	t_fail "uid 65534 read the agent's /proc/$AGENT_PID/environ"
fi
if "${nobody[@]}" head -c1 "/proc/$AGENT_PID/mem" >/dev/null 2>&1; then
	t_fail "uid 65534 opened the agent's /proc/$AGENT_PID/mem"
fi
echo "ok: not dumpable; uid 65534 reads neither environ nor mem"

core=$(grep '^Max core file size' "/proc/$AGENT_PID/limits")
[[ $core =~ ^Max\ core\ file\ size\ +0\ +0\ +bytes ]] ||
	t_fail "core limit: $core"
echo "ok: $core"

for u in systemd/mtls-agent.service systemd/user/mtls-agent.service; do
	grep -qx 'LimitCORE=0' "$src/$u" || t_fail "$u lacks LimitCORE=0"
done
t_pass "no core dumps, no same-uid tracing"
