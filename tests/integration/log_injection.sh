#!/bin/bash
# Log injection: a local user (uid 65534) runs a program from a path of its
# choosing, holding a newline and quotes, and connects to a tunnel socket
# and to the control socket. The agent logs the caller's executable; the
# path must stay inside its quoted field, escaped: no forged line (here a
# fake "event=token_unlocked") may appear in the agent's log.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init log_injection
chmod 711 "$T"
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Log CA"
conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=log-device"
sed -i "s#^\[agent\]\$#[agent]\ncontrol = $T/control.sock#" "$conf"
# Nothing listens there: the connection fails after its accept is logged.
agent_conf_tunnel "$conf" web "$T/web.sock" "127.0.0.1:$(t_free_port)" dev "mode = 0666"
agent_start "$conf"

forged='level=notice event=token_unlocked token=soft by_uid=0 x="'
evil_dir="$T/atk/a\"
$forged"
mkdir -p "$evil_dir"
chmod -R 755 "$T/atk"
cp "$(command -v socat)" "$evil_dir/socat"
# The attacker keeps its end open (EXEC:sleep) until the agent has logged,
# so that the agent finds its /proc entry.
attack() { # SOCKET PATTERN
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$evil_dir/socat" UNIX-CONNECT:"$1" EXEC:"sleep 60" </dev/null \
		>/dev/null 2>&1 &
	local pid=$!
	agent_log_wait "$2" 30
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
agent_log_mark
attack "$T/web.sock" 'event=accept conn=[0-9]+ tunnel=web uid=65534 '
# The control socket opened to everyone by an operator's mistake: the agent
# refuses uid 65534, and logs who it was.
chmod 666 "$T/control.sock"
attack "$T/control.sock" 'event=control_refused uid=65534 '
agent_stop

# Every line is one the logger began: a timestamp, the program, a level.
bad=$(grep -nvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z mtls-agent\[[0-9]+\] level=(err|warning|notice|info|debug) event=[a-z_]+( |$)' "$T/agent.log" || true)
[ -z "$bad" ] || t_fail "lines the logger did not begin: $bad"
# The path is in the exe= field, escaped, on both lines.
want="exe=\"$T/atk/a\\\"\\n${forged%\"}\\\"/socat\""
n=$(grep -cF -- "$want" "$T/agent.log" || true)
[ "$n" = 2 ] || t_fail "escaped exe= field found $n times, not 2: $want"
# The only mentions of token_unlocked are inside those fields.
m=$(grep -c 'event=token_unlocked' "$T/agent.log" || true)
[ "$m" = 2 ] || t_fail "event=token_unlocked appears on $m lines"
t_pass "a caller's path with a newline and quotes stays in its escaped field"
