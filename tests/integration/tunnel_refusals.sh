#!/bin/bash
# Every refusal names its own reason, in the log and in the counters:
# unknown server CA, wrong server name, expired server certificate, our
# certificate refused by the server; and at start-up: wrong PIN, missing key,
# absent token, unsafe PIN file. Server verification cannot be disabled.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_refusals
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Test CA"
pki_ca "$T/other" "Other CA"
pki_server_cert "$T/ca" "$T/good" localhost "DNS:localhost"
pki_server_cert "$T/other" "$T/foreign" localhost "DNS:localhost"
pki_server_cert "$T/ca" "$T/wrongname" other.example "DNS:other.example"
pki_server_cert "$T/ca" "$T/expired" localhost "DNS:localhost" expired

ca=$T/ca/ca.pem
start() { # NAME CERTPREFIX [CAFILE]: an s_server, prints its port
	local port
	port=$(t_free_port)
	s_server_start "$T/$1" "$port" "${3:-$ca}" "$2.pem" "$2.key" >/dev/null
	echo "$port"
}
p_foreign=$(start foreign "$T/foreign")
p_wrongname=$(start wrongname "$T/wrongname")
p_expired=$(start expired "$T/expired")
p_refuse=$(start refuse "$T/good" "$T/other/ca.pem")
p_good=$(start good "$T/good")

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$ca"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=refusals"
cp "$conf" "$T/base.conf"
agent_conf_tunnel "$conf" foreign "$T/foreign.sock" "localhost:$p_foreign" dev
agent_conf_tunnel "$conf" wrongname "$T/wrongname.sock" "localhost:$p_wrongname" dev
agent_conf_tunnel "$conf" expired "$T/expired.sock" "localhost:$p_expired" dev
agent_conf_tunnel "$conf" refuse "$T/refuse.sock" "localhost:$p_refuse" dev "min_tls = 1.3"
agent_conf_tunnel "$conf" good "$T/good.sock" "localhost:$p_good" dev
agent_start "$conf"

expect_reason() { # TUNNEL REASON
	curl -sS --max-time 30 --unix-socket "$T/$1.sock" http://localhost/ \
		>/dev/null 2>&1 && t_fail "$1: request succeeded"
	agent_log_wait "event=handshake conn=[0-9]+ tunnel=$1 result=fail reason=$2 "
	echo "ok: $1 refused: $2"
}
expect_reason foreign unknown_ca
expect_reason wrongname name_mismatch
expect_reason expired expired
expect_reason refuse client_cert_refused
page=$(curl -sS --max-time 30 --unix-socket "$T/good.sock" http://localhost/)
grep -qE 'Subject: CN ?= ?refusals' <<<"$page" || t_fail "good tunnel failed"
agent_stop
t_assert_contains "$T/agent.log" \
	'event=stats .*handshakes_ok=1 .*failed_unknown_ca=1 failed_name_mismatch=1 failed_expired=1 failed_client_cert_refused=1'

# Start-up failures: exit status 1 and a reason with the CK_RV and the URI.
expect_start_failure() { # CONF REASON PATTERN
	local rc=0
	"$MTLS_AGENT" -c "$1" >"$T/start.log" 2>&1 || rc=$?
	[ $rc -eq 1 ] || t_fail "agent with $1 exited $rc, expected 1"
	t_assert_contains "$T/start.log" "reason=$2 .*$3"
	echo "ok: start-up refused: $2"
}
# A wrong PIN does not stop the agent (a service manager would restart it
# and each start would spend a try): it says so, waits for a new PIN, and
# mtls-agent --check fails on it.
sed "s#file:$T/pin#env:WRONG_PIN#" "$T/base.conf" >"$T/wrongpin.conf"
rc=0
WRONG_PIN=999999 "$MTLS_AGENT" --check -c "$T/wrongpin.conf" >"$T/start.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || t_fail "mtls-agent --check with a wrong PIN exited $rc, expected 1"
t_assert_contains "$T/start.log" 'event=token_locked token=soft reason=pin_incorrect .*CKR_PIN_INCORRECT \(pkcs11:token=itoken\)'
t_assert_contains "$T/start.log" 'event=check_failed token=soft reason=pin_incorrect'
grep -q 999999 "$T/start.log" && t_fail "the PIN was logged"
echo "ok: --check refused: pin_incorrect"
sed 's#object=dev-key;#object=missing-key;#' "$T/base.conf" >"$T/nokey.conf"
expect_start_failure "$T/nokey.conf" key_not_found 'pkcs11:object=missing-key;type=private'
sed 's#token=itoken#token=absent#' "$T/base.conf" >"$T/absent.conf"
expect_start_failure "$T/absent.conf" token_absent 'pkcs11:token=absent'
chmod 644 "$T/pin"
expect_start_failure "$T/base.conf" permission 'mode 0644'
chmod 600 "$T/pin"
printf '\n[tunnel x]\nlisten = %s\nconnect = localhost:1\nidentity = dev\nverify = none\n' \
	"$T/x.sock" >>"$T/base.conf"
expect_start_failure "$T/base.conf" config 'agent.conf|base.conf:[0-9]+: server verification cannot be turned off'
t_pass "each refusal carried its own reason"
