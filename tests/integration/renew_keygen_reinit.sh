#!/bin/bash
# A module that can make one key pair per C_Initialize, as ykcs11 on the
# virtual PIV card (quirk 4 of shared/tools/virtual-piv; it failed the
# second renewal of integration.card_ykcs11 in CI): the next
# C_GenerateKeyPair makes its pair and answers CKR_DEVICE_ERROR, and every
# later one too, while signatures go on working. Before this test, each
# retry of the renewal failed the same way until the agent restarted.
#
# tests/faultmod's keygen_per_init=1 in front of SoftHSM2: the first
# renewal in the agent works; the second fails once, the agent
# re-initialises the module at that failure, and the retry renews. The
# failed attempt's pair is removed; a client through the tunnel never
# fails meanwhile.
#
# A second [token] on the same module, with an identity in use: the
# re-initialisation must reach the module all the same. (p11-kit counts
# the C_Initialize of each managed instance and finalises the module only
# at the last C_Finalize: with one instance per token, the agent's
# re-initialisation of one never reached it.)
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/fault.sh"

t_init renew_keygen_reinit
softhsm_init otoken 12345678 oPIN-0815zz
printf 'oPIN-0815zz\n' >"$T/opin" && chmod 600 "$T/opin"
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
fault_init "$SOFTHSM_MODULE"
fault keygen_per_init=1
pki_ca "$T/ca" "Keygen CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
exec_ca=$(cd "$(dirname "$0")/../lib" && pwd)/exec_ca.sh

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
sed -i "s#^module = .*#module = $FAULT_MODULE#" "$conf"
# mtlsctl renew asks the running agent, through its control socket.
sed -i "/^\[agent\]/a control = $T/control.sock" "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
# A day's certificates: only the forced renewals below happen.
cat >>"$conf" <<-EOF
	enroll = exec
	exec = $exec_ca $T/ca 86400
	issuer_ca = $T/ca/ca.pem
	subject = CN=keygen-device
	cert_file = $T/dev-chain.pem
	retry_min = 3s
	retry_max = 8s

	[token other]
	module = $FAULT_MODULE
	uri = pkcs11:token=otoken
	pin_source = file:$T/opin
	EOF
agent_conf_identity "$conf" other "$T/ca/ca.pem" "" other
identity_provision "$conf" other ec-p256 "$T/ca" "CN=other-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_conf_tunnel "$conf" oweb "$T/oweb.sock" "localhost:$port" other
# The first enrollment in its own process (its own C_Initialize).
"$MTLSCTL" -c "$conf" enroll dev >"$T/enroll.out"
t_assert_contains "$T/enroll.out" 'generation 1 in service'
agent_start "$conf"
req() { curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/ 2>&1; }
[[ $(req) == *"dn=CN=keygen-device verify=SUCCESS"* ]] || t_fail "baseline: $(req)"
oreq() { curl -sS --max-time 30 --unix-socket "$T/oweb.sock" http://localhost/ 2>&1; }
[[ $(oreq) == *"dn=CN=other-device verify=SUCCESS"* ]] || t_fail "baseline, other token: $(oreq)"

client_start "$T/web.sock" "dn=CN=keygen-device verify=SUCCESS"

inits() { grep -c '^C_Initialize$' "$T/fault.calls" || true; }
keygens() { grep -c '^C_GenerateKeyPair$' "$T/fault.calls" || true; }
init0=$(inits)

# The agent's first key pair: the module allows it.
"$MTLSCTL" -c "$conf" renew dev >/dev/null
agent_log_wait 'event=renewed identity=dev generation=2' 60
[ "$(inits)" = "$init0" ] || t_fail "C_Initialize $init0 -> $(inits) for a renewal that worked"

# The second: refused once, then renewed on the re-initialised module.
agent_log_mark
kg0=$(keygens)
"$MTLSCTL" -c "$conf" renew dev >/dev/null
agent_log_wait 'event=renew_failed identity=dev reason=token_error failures=1 .*C_GenerateKeyPair: CKR_DEVICE_ERROR' 60
agent_log_wait 'event=module_reinit module=[^ ]*faultp11\.so .*cause=CKR_DEVICE_ERROR .*result=ok' 30
agent_log_wait 'event=renewed identity=dev generation=3' 60
fails=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -c 'event=renew_failed identity=dev' || true)
[ "$fails" = 1 ] || t_fail "$fails failed attempts before generation 3 (one expected)"
[ "$(inits)" -gt "$init0" ] || t_fail "the module was not re-initialised"
[ "$(($(keygens) - kg0))" = 2 ] || t_fail "$(($(keygens) - kg0)) key pairs for one renewal retried once"
[[ $(oreq) == *"dn=CN=other-device verify=SUCCESS"* ]] || t_fail "the other token after the re-initialisation: $(oreq)"
echo "ok: second key pair in one C_Initialize refused with CKR_DEVICE_ERROR; module re-initialised (C_Initialize $init0 -> $(inits)); renewed on the retry; the module's other token signs on"

client_stop
agent_stop || t_fail "mtls-agent did not stop cleanly"
ok=$CLIENT_OK bad=$CLIENT_BAD
[ "$bad" -eq 0 ] || t_fail "$bad of $((ok + bad)) requests failed: $(head -3 "$T/client-failures.log")"
[ "$ok" -gt 5 ] || t_fail "only $ok requests made"

# On the token: generations 2 and 3 (1 retired), and nothing of the
# refused attempt.
objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label itoken --login --pin tPIN-4711xq \
	--list-objects --type privkey 2>/dev/null)
n=$(grep -c '^Private Key Object' <<<"$objs" || true)
[ "$n" = 2 ] || t_fail "$n private keys on the token, 2 expected: $objs"
for g in 2 3; do
	grep -q "label: *dev-g$g\$" <<<"$objs" || t_fail "dev-g$g missing: $objs"
done
echo "ok: $ok requests meanwhile, none failed; the token holds generations 2 and 3 only"
t_pass "a module that refuses a second key pair is re-initialised, and the renewal's retry works"
