#!/bin/bash
# pin_source = pinentry with the real pinentry-curses on a pty made by tmux:
#  - at start the agent asks; the dialogue names the token and why; the
#    PIN typed there unlocks the token and a handshake through a tunnel
#    to nginx works;
#  - mtlsctl lock asks again; <Cancel> cancels: the token stays locked,
#    handshakes fail, the log says pin_missing;
#  - a wrong PIN (mtlsctl unlock --pinentry) is reported and not asked
#    again by itself; the next mtlsctl unlock --pinentry says it was
#    refused, and the right PIN unlocks;
#  - the token pulled out takes its PIN with it: inserted again, the
#    agent asks through pinentry by itself; until the PIN is typed no
#    handshake works, not even after a reload (which would hand back a
#    PIN the agent kept), and status says the token is locked;
#  - uid 65534 cannot start a dialogue through the control socket.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/fault.sh"

PINENTRY=/usr/bin/pinentry-curses
for tool in tmux "$PINENTRY" setpriv nginx socat; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done

t_init pinentry
chmod 711 "$T"
softhsm_init ptoken 87654321 pPIN-2718zz
printf 'pPIN-2718zz\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Pinentry CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
conf=$T/agent.conf
agent_conf_token "$conf" ptoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=pinentry-device"
sed -i "s#^\[agent\]\$#[agent]\ncontrol = $T/control.sock#" "$conf"
# The token through the fault module, which can pull it out (step 5).
fault_init "$SOFTHSM_MODULE"
sed -i "s#^module = .*#module = $FAULT_MODULE#" "$conf"
# From here on the PIN comes only from a person, through pinentry.
sed -i "s#^pin_source = .*#pin_source = pinentry\npinentry_program = $PINENTRY#" "$conf"
rm -f "$T/pin"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev

# The user's terminal: a tmux pane running a program that reads nothing,
# so that every key goes to the pinentry on that tty.
TM=(tmux -S "$T/tmux.sock")
"${TM[@]}" new-session -d -x 200 -y 50 "sleep 100000"
t_on_exit "${TM[@]}" kill-server
pane_tty=$("${TM[@]}" display-message -p '#{pane_tty}')
[ -c "$pane_tty" ] || t_fail "no pane tty: $pane_tty"
screen_has() { "${TM[@]}" capture-pane -p | tr -s ' \n' ' ' | grep -qF -- "$1"; }
screen_wait() { # TEXT
	t_until 60 screen_has "$1" || {
		"${TM[@]}" capture-pane -p >&2
		t_fail "the pinentry never showed: $1"
	}
}
web_ok() { curl -sS --max-time 60 --unix-socket "$T/web.sock" http://localhost/ 2>/dev/null | grep -q "CN=pinentry-device"; }
asked() { grep -c 'event=pinentry_asked token=soft' "$T/agent.log" || true; }

# 1. At start.
MTLS_TTY=$pane_tty TERM=xterm agent_start "$conf"
screen_wait 'needs the PIN of token "soft" (label "ptoken")'
screen_wait "(the agent started)"
web_ok && t_fail "a handshake succeeded before the PIN was given"
"${TM[@]}" send-keys -l 'pPIN-2718zz'
"${TM[@]}" send-keys Enter
agent_log_wait 'event=token_unlocked token=soft by=pinentry' 60
t_until 60 web_ok || t_fail "no handshake after the PIN came through pinentry"
t_pass "PIN from pinentry at start; handshake works"

# 2. mtlsctl lock asks again; <Cancel> cancels.
agent_log_mark
"$MTLSCTL" -c "$conf" lock soft >/dev/null
agent_log_wait 'event=pinentry_asked token=soft why="the token was locked' 60
screen_wait "(the token was locked with mtlsctl lock)"
# pinentry-curses: Tab moves from the PIN to <OK>, then to <Cancel>.
"${TM[@]}" send-keys Tab
"${TM[@]}" send-keys Tab
"${TM[@]}" send-keys Enter
agent_log_wait 'event=pinentry_ended token=soft reason=pin_missing' 60
web_ok && t_fail "a handshake succeeded after lock and a cancelled pinentry"
"$MTLSCTL" -c "$conf" status >"$T/status.out"
grep -q 'LOCKED' "$T/status.out" || t_fail "status does not show the token locked after mtlsctl lock"
t_pass "cancel leaves the token locked (pin_missing)"

# 3. A wrong PIN: reported, not asked again by itself.
agent_log_mark
"$MTLSCTL" -c "$conf" unlock --pinentry soft </dev/null >/dev/null
screen_wait "(asked by mtlsctl unlock)"
"${TM[@]}" send-keys -l 'wrong-PIN'
"${TM[@]}" send-keys Enter
agent_log_wait 'event=pinentry_pin_refused token=soft reason=pin_incorrect' 60
n=$(asked)
for _ in 1 2 3; do
	web_ok && t_fail "a handshake succeeded with a refused PIN"
done
"$MTLSCTL" -c "$conf" status >/dev/null
[ "$(asked)" = "$n" ] || t_fail "the agent asked again by itself after a refused PIN"
agent_log_mark
"$MTLSCTL" -c "$conf" unlock --pinentry soft </dev/null >/dev/null
screen_wait "The PIN was refused"
"${TM[@]}" send-keys -l 'pPIN-2718zz'
"${TM[@]}" send-keys Enter
agent_log_wait 'event=token_unlocked token=soft by=pinentry' 60
t_until 60 web_ok || t_fail "no handshake after the second pinentry"
t_pass "wrong PIN reported, asked again only by mtlsctl unlock"

# 5. Pulled out and inserted again: the PIN went with the token.
agent_log_mark
fault removed
agent_log_wait 'event=token_removed token=soft' 60
web_ok && t_fail "a handshake succeeded with the token out"
"$MTLSCTL" -c "$conf" status >"$T/status.out"
grep -q 'LOCKED' "$T/status.out" || t_fail "status does not say the token is locked: $(cat "$T/status.out")"
fault
agent_log_wait 'event=token_inserted token=soft' 60
agent_log_wait 'event=pinentry_asked token=soft why="the token was inserted again"' 60
screen_wait "(the token was inserted again)"
for _ in 1 2; do
	web_ok && t_fail "the token inserted again signed with the PIN given before it was pulled out"
done
# A reload builds the token anew: the PIN the agent kept for reloads went
# with the token too.
agent_log_mark
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok' 60
web_ok && t_fail "after a reload the token signed with the PIN given before it was pulled out"
"${TM[@]}" send-keys -l 'pPIN-2718zz'
"${TM[@]}" send-keys Enter
agent_log_wait 'event=token_unlocked token=soft by=pinentry' 60
t_until 60 web_ok || t_fail "no handshake after the PIN was typed for the token inserted again"
t_pass "token pulled out and inserted again: asked again, nothing signed before"

# 4. Another uid cannot open a pinentry, on its tty or ours.
n=$(asked)
agent_log_mark
# The request mtlsctl unlock --pinentry sends, naming our pane's tty:
# refused by the socket's mode (0600), and by the agent's uid check when
# an operator opened the socket to everyone.
atk() {
	printf '{"cmd":"unlock","token":"soft","pinentry":true,"tty":"%s"}\n\n' "$pane_tty" |
		setpriv --reuid=65534 --regid=65534 --clear-groups \
			socat -t 30 - UNIX-CONNECT:"$T/control.sock" >"$T/atk.out" 2>&1 || true
	grep -q '"ok"' "$T/atk.out" && t_fail "uid 65534 was answered: $(cat "$T/atk.out")"
	return 0
}
atk
chmod 666 "$T/control.sock"
atk
agent_log_wait 'event=control_refused uid=65534' 60
[ "$(asked)" = "$n" ] || t_fail "uid 65534 made the agent open a pinentry"
grep -q 'pPIN-2718zz\|wrong-PIN' "$T/agent.log" && t_fail "a PIN reached the log"
t_pass "pinentry"
