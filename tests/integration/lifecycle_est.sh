#!/bin/bash
# Enrollment and renewal against an EST server (RFC 7030) built of real
# parts (nginx + fcgiwrap + openssl ca, tests/lib/est.sh): /cacerts fetched
# into issuer_ca, the first enrollment with HTTP Basic (a 202 + Retry-After
# honoured, a wrong password refused with its status), the renewal with
# /simplereenroll over mTLS with the token key in service.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/est.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init lifecycle_est
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "EST CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
est_port=$(t_free_port)
est_start "$T/est" "$est_port" "$T/ca" "$T/server.pem" "$T/server.key" "device:s3cret"
# Ten-minute certificates renewed 10 s after issue: the lifetime has room
# for every wait below (at most 90 s each) on a loaded machine.
echo 10 >"$T/est/minutes"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
printf 'wrong\n' >"$T/est.pw" && chmod 600 "$T/est.pw"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
cat >>"$conf" <<-EOF

	[identity laptop]
	token = soft
	key = pkcs11:object=laptop-key;type=private
	cert = pkcs11:object=laptop-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = est
	est_url = https://localhost:$est_port/.well-known/est
	est_ca = $T/ca/ca.pem
	est_user = device
	est_password_file = $T/est.pw
	issuer_ca = $T/state/issuers.pem
	subject = CN=est-laptop
	sans = DNS:est-laptop.example
	renew_before = 590s
	renew_jitter = 0
	retry_min = 2s
	retry_max = 4s
	EOF
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" laptop

# A wrong bootstrap password: refused, with the server's status.
if "$MTLSCTL" -c "$conf" enroll laptop --bootstrap 2>"$T/enroll.err"; then
	t_fail "enrolled with a wrong password"
fi
t_assert_contains "$T/enroll.err" 'simpleenroll answered 401'
[ -s "$T/state/issuers.pem" ] || t_fail "/cacerts not fetched into issuer_ca"
cmp <(openssl x509 -in "$T/state/issuers.pem") <(openssl x509 -in "$T/ca/ca.pem") ||
	t_fail "/cacerts gave another CA"
echo "ok: /cacerts fetched; wrong password refused (401)"

# The right password; the CA first answers 202 with Retry-After.
printf 's3cret\n' >"$T/est.pw"
echo 1 >"$T/est/pending"
"$MTLSCTL" -c "$conf" enroll laptop --bootstrap >"$T/enroll1.out"
t_assert_contains "$T/enroll1.out" 'ask again in 1 s'
# Not synchronisation: the client honours the Retry-After the CA asked for.
sleep 1
"$MTLSCTL" -c "$conf" enroll laptop --bootstrap >"$T/enroll2.out"
t_assert_contains "$T/enroll2.out" 'generation 1 in service'
t_assert_contains "$T/est/est.log" 'simpleenroll 202'
t_assert_contains "$T/est/est.log" 'simpleenroll 200 CN=est-laptop'
echo "ok: first enrollment with HTTP Basic after a 202"

agent_start "$conf"
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=est-laptop verify=SUCCESS"* ]] || t_fail "generation 1: $out"

# The certificate is renewed when due (10 s after issue), over mTLS.
agent_log_wait 'event=renewed identity=laptop generation=2' 90
t_assert_contains "$T/est/est.log" 'simplereenroll 200 CN=est-laptop'
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=est-laptop verify=SUCCESS"* ]] || t_fail "generation 2: $out"
# The renewed certificate kept the SAN and sits on the token.
openssl x509 -in "$T/est/last.pem" -noout -ext subjectAltName | grep -q 'DNS:est-laptop.example' ||
	t_fail "SAN lost"
"$MTLSCTL" -c "$conf" key-info laptop >/dev/null 2>&1 || true
echo "ok: renewed by simplereenroll with the token key; nginx accepts generation 2"
t_pass "EST enrollment and renewal"
