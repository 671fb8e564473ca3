#!/bin/bash
# PIN safety on a real retry counter (the virtual PIV card: 5 tries, what
# is left read with yubico-piv-tool, which spends none):
#  - a wrong PIN is tried once: the agent keeps running (a restart loop
#    would spend a try each time), and neither handshakes, reloads, nor an
#    unlock with the same wrong PIN try it again: 4 tries stay 4;
#  - the counter flags are read from the card and shown in mtlsctl status,
#    the status JSON, the metric and the log: count low (2 left), final try
#    (1 left: the agent does not spend it from a file, only a PIN a person
#    gives with mtlsctl unlock), locked (0: the PUK unblocks it);
#  - a new, right PIN is tried and resets the counter.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/card.sh"

t_init card_pin
card_up "$T/card"
pki_ca "$T/ca" "Card CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
conf=$T/agent.conf
card_conf "$conf" card "$CARD_YKCS11" "$CARD_YKCS11_URI"
printf 'metrics = %s\n' "$T/metrics.sock" >>"$conf.agent"
sed -i "/^control = /r $conf.agent" "$conf"
card_conf_identity "$conf" ec card 01 "$T/ca/ca.pem"
identity_provision "$conf" ec ec-p256 "$T/ca" "CN=card-pin"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" ec

tries() { # WANT WHY
	local n
	n=$(card_pin_tries)
	[ "$n" = "$1" ] || t_fail "$2: the card has $n PIN tries left, want $1"
	echo "ok: $1 tries left: $2"
}
status_has() { # JSON_KEY VALUE
	"$MTLSCTL" -c "$conf" status --json >"$T/status.json"
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tokens"][0]; sys.exit(0 if str(t[sys.argv[2]]).lower()==sys.argv[3] else 1)' \
		"$T/status.json" "$1" "$2" || t_fail "status JSON: $1 is not $2: $(cat "$T/status.json")"
}
metric_is() { # STATE VALUE
	local m
	m=$(curl -sS --max-time 30 --unix-socket "$T/metrics.sock" http://localhost/metrics)
	grep -q "^mtls_token_pin_state{token=\"card\",state=\"$1\"} $2\$" <<<"$m" ||
		t_fail "metric state=$1 is not $2: $(grep mtls_token_pin_state <<<"$m")"
}
web_ok() { curl -sS --max-time 60 --unix-socket "$T/web.sock" http://localhost/ 2>/dev/null | grep -q "dn=CN=card-pin verify=SUCCESS"; }
tries 5 "after provisioning"

# One wrong PIN.
printf '654321\n' >"$T/card.pin"
agent_start "$conf"
agent_log_wait "event=token_pin_refused" 30
agent_log_wait "event=token_locked token=card reason=pin_incorrect" 30
tries 4 "after the agent's one try"
for _ in 1 2 3; do
	web_ok && t_fail "a handshake succeeded with a refused PIN"
done
grep -q "result=fail reason=pin_incorrect" "$T/agent.log" || t_fail "handshakes did not fail with reason pin_incorrect"
for _ in 1 2; do
	agent_log_mark
	"$MTLSCTL" -c "$conf" reload >/dev/null
	agent_log_wait "event=reload result=ok" 60
	agent_log_wait "event=token_locked token=card reason=pin_incorrect" 60
done
# A person typing the same wrong PIN: not tried either.
printf '654321\n' | "$MTLSCTL" -c "$conf" unlock card >"$T/unlock.out" 2>&1 &&
	t_fail "unlock with the refused PIN succeeded"
t_assert_contains "$T/unlock.out" "refused this PIN before"
tries 4 "after 3 handshakes, 2 reloads and an unlock with the same wrong PIN"
# What the agent keeps of the refusal is its own: 0600, and another local
# user cannot read it (nor would it find a PIN in it).
[ "$(stat -c %a "$T/state/pin-refusals")" = 600 ] || t_fail "pin-refusals mode $(stat -c %a "$T/state/pin-refusals")"
grep -q 654321 "$T/state/pin-refusals" && t_fail "the refused PIN is in pin-refusals"
chmod 711 "$T"
if setpriv --reuid=65534 --regid=65534 --clear-groups -- cat "$T/state/pin-refusals" >/dev/null 2>&1; then
	t_fail "uid 65534 read the agent's pin-refusals"
fi
chmod 700 "$T"
"$MTLSCTL" -c "$conf" status >"$T/status.txt"
t_assert_contains "$T/status.txt" "PIN REFUSED"
status_has pin_refused true
metric_is refused 1

# A restart does not try the same PIN file again either.
agent_stop
agent_start "$conf"
agent_log_wait "event=token_locked token=card reason=pin_incorrect detail=.*refused this PIN before" 30
tries 4 "after a restart with the same PIN file"
status_has pin_refused true
# mtls-agent --check says so, without a try either.
"$MTLS_AGENT" --check -c "$conf" >"$T/check.out" 2>&1 && t_fail "--check passed with a refused PIN"
t_assert_contains "$T/check.out" "event=check_failed token=card reason=pin_incorrect"
tries 4 "after mtls-agent --check"

# ykcs11 reads the counter when it starts and at each login, so other
# programs' wrong PINs show at the agent's next start.
restart() {
	agent_stop
	agent_start "$conf"
}
yubico-piv-tool -a verify-pin -P 000000 >/dev/null 2>&1 || true
yubico-piv-tool -a verify-pin -P 000001 >/dev/null 2>&1 || true
tries 2 "after two wrong PINs from yubico-piv-tool"
restart
agent_log_wait "event=token_pin_count_low" 30
status_has pin_count_low true
metric_is count_low 1
"$MTLSCTL" -c "$conf" status >"$T/status.txt"
t_assert_contains "$T/status.txt" "few tries left"
tries 2 "after a restart with the counter low"

# One left: the right PIN in the file is not spent on it by the agent.
yubico-piv-tool -a verify-pin -P 000002 >/dev/null 2>&1 || true
tries 1 "after a third wrong PIN from yubico-piv-tool"
printf '%s\n' "$CARD_PIN" >"$T/card.pin.new" && chmod 600 "$T/card.pin.new"
mv "$T/card.pin.new" "$T/card.pin"
restart
agent_log_wait "event=token_pin_final_try" 30
agent_log_wait "event=token_locked token=card reason=pin_missing detail=.*one PIN try left" 30
tries 1 "after a restart with the right PIN in the file"
status_has pin_final_try true
metric_is final_try 1
"$MTLSCTL" -c "$conf" status >"$T/status.txt"
t_assert_contains "$T/status.txt" "ONE TRY LEFT"
# A person gives it: tried, and the counter is full again.
printf '%s\n' "$CARD_PIN" | "$MTLSCTL" -c "$conf" unlock card >"$T/unlock.out" 2>&1 ||
	t_fail "unlock with the right PIN failed: $(cat "$T/unlock.out")"
tries 5 "after mtlsctl unlock with the right PIN"
t_until 60 web_ok || t_fail "no handshake after the unlock"
status_has pin_final_try false
metric_is ok 1

# Locked (five wrong PINs from elsewhere): shown, and nothing is tried.
for i in 1 2 3 4 5; do yubico-piv-tool -a verify-pin -P 00001$i >/dev/null 2>&1 || true; done
tries 0 "after five wrong PINs from yubico-piv-tool"
restart
agent_log_wait "event=token_pin_locked" 30
agent_log_wait "event=token_locked token=card reason=pin_locked" 30
status_has pin_locked true
metric_is locked 1
"$MTLSCTL" -c "$conf" status >"$T/status.txt"
t_assert_contains "$T/status.txt" "PIN LOCKED: unblock it with the PUK"
yubico-piv-tool -a unblock-pin -P 12345678 -N "$CARD_PIN" >/dev/null 2>&1 ||
	t_fail "the PUK did not unblock the PIN"
tries 5 "after the PUK"
printf '%s\n' "$CARD_PIN" | "$MTLSCTL" -c "$conf" unlock card >"$T/unlock.out" 2>&1 ||
	t_fail "unlock after the PUK failed: $(cat "$T/unlock.out")"
t_until 60 web_ok || t_fail "no handshake after the PIN was unblocked"
metric_is ok 1
tries 5 "at the end"
t_pass "one wrong PIN spent one try; the counter flags were shown; the last try was left to a person"
