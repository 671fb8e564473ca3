#!/bin/bash
# Certificates that live 120 s, renewed at half their lifetime with a fresh
# key generated on the token each time, by the exec enroller (openssl ca).
# A client sends requests through a tunnel the whole time: zero may fail.
# Two renewals; then the CA goes down: backoff, the current certificate
# stays in use, and the renewal succeeds once the CA is back.
# Each new key is sensitive and never extractable; the generation before the
# previous one is destroyed; libp11 uses the key and certificate the agent
# stored.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init lifecycle_exec
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Lifecycle CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
exec_ca=$(cd "$(dirname "$0")/../lib" && pwd)/exec_ca.sh

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
cat >>"$conf" <<-EOF

	[identity dev]
	token = soft
	key = pkcs11:object=dev-key;type=private
	cert = pkcs11:object=dev-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = exec
	exec = $exec_ca $T/ca 120
	issuer_ca = $T/ca/ca.pem
	subject = CN=lifecycle-device
	cert_file = $T/dev-chain.pem
	renew_at = 50%
	retry_min = 3s
	retry_max = 8s
	EOF
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
# exec_ca.sh back-dates notBefore by a minute: each certificate spans 180 s
# and is due for renewal 30 s after issue (less the default 2% jitter),
# which leaves 90 s for a late renewal on a loaded machine before the
# client would see it expire, and keeps the test well within ctest's time.

# First enrollment, by the tooling, before the agent runs.
"$MTLSCTL" -c "$conf" enroll dev >"$T/enroll.out"
t_assert_contains "$T/enroll.out" 'generation 1 in service'
agent_start "$conf"

# A client that never stops: one request every 100 ms, each must succeed.
client_start "$T/web.sock" "dn=CN=lifecycle-device verify=SUCCESS"

# Each wait: until the certificate in service would expire.
agent_log_wait 'event=renewed identity=dev generation=2' 90
agent_log_wait 'event=renewed identity=dev generation=3' 90
# Generation 1 went when generation 3 came into service (one previous kept).
agent_log_wait 'event=key_retired identity=dev objects_removed=3'
echo "ok: two renewals while the client kept going"

# The CA goes down during the next renewal window.
touch "$T/ca/down"
agent_log_wait 'event=renew_failed identity=dev .*failures=2 ' 90
fails=$(grep -c 'event=renew_failed identity=dev' "$T/agent.log")
rm "$T/ca/down"
agent_log_wait 'event=renewed identity=dev generation=4' 60
echo "ok: CA down: $fails failed attempts with backoff, then renewed"

client_stop
# Stopped here, so that what follows sees generation 4 (the next renewal
# is due 30 s after it) however slow the machine is; mtlsctl status reads
# the tokens and state_dir without it.
agent_stop || t_fail "mtls-agent did not stop cleanly"
ok=$CLIENT_OK bad=$CLIENT_BAD
[ "$bad" -eq 0 ] || t_fail "$bad of $((ok + bad)) requests failed: $(head -3 "$T/client-failures.log")"
# About 10 a second when idle; at least one every 3 s even when loaded.
[ "$ok" -gt 30 ] || t_fail "only $ok requests made"
echo "ok: $ok requests through four generations, none failed"

# The backoff doubled between failures (3 s, 6 s, 8 s cap).
grep -o 'failures=[0-9]* next_attempt_in=[0-9]*' "$T/agent.log" | head -4 >"$T/backoff.txt"
t_assert_contains "$T/backoff.txt" 'failures=1 next_attempt_in=3'
t_assert_contains "$T/backoff.txt" 'failures=2 next_attempt_in=6'

# Keys on the token: generations 3 (previous) and 4 (in service), both
# sensitive and never extractable; 1 and 2 are gone.
objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin tPIN-4711xq \
	--list-objects --type privkey 2>/dev/null)
for g in 3 4; do
	grep -A4 "label: *dev-g$g\$" <<<"$objs" |
		grep -q 'Access: *sensitive, always sensitive, never extractable' ||
		t_fail "dev-g$g missing or not protected: $objs"
done
for g in 1 2; do
	grep -q "label: *dev-g$g\$" <<<"$objs" && t_fail "dev-g$g still on the token"
done
echo "ok: generations 3 and 4 on the token, protected; 1 and 2 destroyed"

# The certificate the agent stored, with its key, serves libp11 too.
out=$(PKCS11_MODULE_PATH=$SOFTHSM_MODULE curl -sS --max-time 60 \
	--engine pkcs11 --key-type ENG --cert-type ENG \
	--key 'pkcs11:token=itoken;object=dev-g4;type=private;pin-value=tPIN-4711xq' \
	--cert 'pkcs11:token=itoken;object=dev-g4;type=cert;pin-value=tPIN-4711xq' \
	--cacert "$T/ca/ca.pem" "https://localhost:$port/")
[[ $out == *"dn=CN=lifecycle-device verify=SUCCESS"* ]] || t_fail "libp11: $out"
# And the PEM copy is the same certificate.
openssl x509 -in "$T/dev-chain.pem" -noout -subject | grep -q lifecycle-device ||
	t_fail "cert_file"
"$MTLSCTL" -c "$conf" status >"$T/status.out"
t_assert_contains "$T/status.out" 'generation:  4'
t_assert_contains "$T/status.out" 'next renewal: '
echo "ok: libp11 uses generation 4; mtlsctl status shows it"
t_pass "lifecycle with the exec enroller"
