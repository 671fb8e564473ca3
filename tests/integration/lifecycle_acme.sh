#!/bin/bash
# ACME (RFC 8555) against pebble, a real ACME CA (tests/lib/pebble.sh), with
# real validation: an account whose key is on the token, created once with
# External Account Binding; http-01 answered by the agent's own responder
# (while a local uid 65534 holds a connection to it open, sending a byte a
# second) and dns-01 through a hook (pebble asks pebble-challtestsrv);
# badNonce retried (pebble refuses 20% of good nonces here); the chain
# chosen by issuer_ca among Link rel=alternate; a renewal by the running
# agent with a new key on the token; a CA outage retried while traffic
# flows on the old certificate; a problem document shown (mtlsctl, log,
# metric); revocation from the device seen by pebble, the revoked
# certificate never presented again, and re-enrollment (RSA: RS256 JWS).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/pebble.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init lifecycle_acme
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
eab_key=zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W
pebble_start "$T/pebble" eab=kid-1:$eab_key nonce_reject=20 alternate_roots=1
P=$T/pebble
# The EAB MAC key: a secret, owner-only like a PIN file.
printf '%s\n' "$eab_key" >"$T/eab" && chmod 644 "$T/eab"

# The ACME server reached through a forwarder the test can take away (an
# outage), since pebble makes new roots at every start.
fwd_port=$(t_free_port)
fwd_start() {
	socat TCP-LISTEN:"$fwd_port",bind=127.0.0.1,reuseaddr,fork \
		TCP:127.0.0.1:"$PEBBLE_PORT" >/dev/null 2>&1 &
	FWD_PID=$!
	t_wait_port "$fwd_port" 30 "$FWD_PID"
}
fwd_stop() {
	kill "$FWD_PID" 2>/dev/null || true
	t_until 30 t_gone "$FWD_PID" || true
	wait "$FWD_PID" 2>/dev/null || true
}
fwd_start
t_on_exit 'kill $FWD_PID 2>/dev/null || true'

pki_ca "$T/ca" "Server CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
cat "$P/roots-all.pem" >"$T/client-roots.pem"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/client-roots.pem" "$T/server.pem" "$T/server.key"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
printf 'metrics = %s\ncontrol = %s\n' "$T/metrics.sock" "$T/control.sock" >>"$conf.tmp"
sed -i "/^\[agent\]/r $conf.tmp" "$conf"
acme_common() { # the keys both identities share
	cat <<-EOF
	ca = $T/ca/ca.pem
	enroll = acme
	acme_directory = https://127.0.0.1:$fwd_port/dir
	acme_ca = $PEBBLE_CA
	acme_eab_kid = kid-1
	acme_eab_hmac = file:$T/eab
	acme_contact = mailto:devices@example.com
	renew_jitter = 0
	retry_min = 2s
	retry_max = 4s
	acme_timeout = 120s
	EOF
}
{
	cat <<-EOF

	[identity laptop]
	token = soft
	key = pkcs11:object=laptop-key;type=private
	cert = pkcs11:object=laptop-cert;type=cert
	acme_account_key = pkcs11:object=acme-account;type=private
	acme_challenge = http-01
	acme_http_listen = 127.0.0.1:$PEBBLE_HTTP_PORT
	issuer_ca = $P/roots.pem
	subject = CN=laptop.acme.test
	sans = DNS:laptop.acme.test
	EOF
	acme_common
	cat <<-EOF

	[identity build]
	token = soft
	key = pkcs11:object=build-key;type=private
	cert = pkcs11:object=build-cert;type=cert
	acme_account_key = pkcs11:object=acme-account-b;type=private
	acme_challenge = dns-01
	acme_dns_hook = $PEBBLE_HOOK
	acme_reenroll = yes
	key_type = rsa-2048
	issuer_ca = $P/root-1.pem
	subject = CN=build.acme.test
	sans = DNS:build.acme.test, DNS:ci.build.acme.test
	EOF
	acme_common
} >>"$conf"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" laptop
agent_conf_tunnel "$conf" ci "$T/ci.sock" "localhost:$port" build

"$MTLSCTL" -c "$conf" keygen laptop --acme-account >/dev/null
"$MTLSCTL" -c "$conf" keygen build --acme-account >/dev/null
# An RSA account key is refused: the account signs ES256/ES384.
t_expect_fail "$MTLSCTL" -c "$conf" keygen laptop --acme-account --type rsa-2048

# The EAB key world-readable: refused before anything is sent.
if "$MTLSCTL" -c "$conf" enroll laptop >"$T/e0.out" 2>&1; then
	t_fail "enrolled with a world-readable EAB key file"
fi
t_assert_contains "$T/e0.out" "$T/eab"
chmod 600 "$T/eab"
echo "ok: a 0644 EAB key file refused"

# A local attacker holds a connection to the http-01 responder open and
# sends one byte a second; the responder answers pebble's VA beside it.
# It starts once the responder listens (during the enrollment below).
slowloris() {
	setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - "$PEBBLE_HTTP_PORT" <<-'PY' &
	import socket, sys, time
	end = time.time() + 120
	while time.time() < end:
	    try:
	        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
	    except OSError:
	        time.sleep(0.05)
	        continue
	    try:
	        for b in b"GET /.well-known/acme-challenge/x HTTP/1.1\r\n":
	            s.send(bytes([b]))
	            time.sleep(1)
	    except OSError:
	        pass
	PY
	SLOW_PID=$!
	t_on_exit 'kill $SLOW_PID 2>/dev/null || true'
}
slowloris

# First enrollment, both challenges, EAB once per account.
"$MTLSCTL" -c "$conf" enroll laptop >"$T/e1.out" 2>"$T/e1.err" ||
	t_fail "enroll laptop (http-01): $(cat "$T/e1.err")"
t_assert_contains "$T/e1.out" 'generation 1 in service'
kill "$SLOW_PID" 2>/dev/null || true
t_assert_contains "$T/e1.err" 'event=acme_account_created identity=laptop'
t_assert_contains "$T/e1.err" 'is no longer needed: remove it'
t_assert_contains "$T/e1.err" 'event=acme_authorized identity=laptop name=laptop.acme.test challenge=http-01'
grep -q 'event=acme_http01_request path=/.well-known/acme-challenge/[A-Za-z0-9_-]* status=200' "$T/e1.err" ||
	t_fail "pebble's VA never fetched the key authorization"
grep -q "event=acme_bad_nonce" "$T/e1.err" "$P/pebble.log" 2>/dev/null ||
	echo "note: no badNonce this time (pebble refuses 20% of nonces at random)"
[ "$(stat -c %a "$T/state/laptop.acme-account")" = 600 ] || t_fail "account file not 0600"
t_expect_fail setpriv --reuid=65534 --regid=65534 --clear-groups cat "$T/state/laptop.acme-account"
echo "ok: laptop enrolled over ACME with EAB and http-01 (a uid-65534 slow client beside the VA)"

# A hook others may write (uid 65534 could put its own code there) is
# refused before the CA is asked anything.
chmod 0777 "$PEBBLE_HOOK"
if "$MTLSCTL" -c "$conf" enroll build >"$T/e2bad.out" 2>&1; then
	t_fail "enrolled with a world-writable dns-01 hook"
fi
t_assert_contains "$T/e2bad.out" 'acme_dns_hook .*writable by no one else'
chmod 0700 "$PEBBLE_HOOK"
"$MTLSCTL" -c "$conf" enroll build >"$T/e2.out" 2>"$T/e2.err" ||
	t_fail "enroll build (dns-01): $(cat "$T/e2.err")"
t_assert_contains "$P/dns-hook.log" 'present _acme-challenge.build.acme.test.'
t_assert_contains "$P/dns-hook.log" 'present _acme-challenge.ci.build.acme.test.'
t_assert_contains "$P/dns-hook.log" 'cleanup _acme-challenge.ci.build.acme.test.'
t_assert_contains "$T/e2.err" 'event=acme_certificate identity=build chain=alternate'
openssl verify -CAfile "$P/root-1.pem" -untrusted "$T/state/build.chain.pem" \
	<(pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin tPIN-4711xq --read-object \
		--type cert --label build-g1 2>/dev/null | openssl x509 -inform DER) >/dev/null ||
	t_fail "build's certificate does not lead to root 1 (issuer_ca)"
echo "ok: build enrolled with dns-01 (2 names), chain chosen by issuer_ca among the alternates"

# The binding was for creating the accounts: it is not needed again.
rm "$T/eab"
agent_start "$conf"
request() { # SOCK DN: a request through the tunnel shows DN
	local out
	out=$(curl -sS --max-time 30 --unix-socket "$1" http://localhost/) &&
		[[ $out == *"dn=$2 verify=SUCCESS"* ]]
}
request "$T/web.sock" CN=laptop.acme.test || t_fail "laptop's tunnel"
request "$T/ci.sock" CN=build.acme.test || t_fail "build's tunnel"
serial1=$(openssl x509 -noout -serial -in <(pkcs11-tool --module "$SOFTHSM_MODULE" --login \
	--pin tPIN-4711xq --read-object --type cert --label laptop-g1 2>/dev/null |
	openssl x509 -inform DER) | cut -d= -f2)
echo "ok: both identities in service (laptop serial $serial1)"

# A renewal by the running agent: a new key on the token, the new
# certificate after the reload; without the EAB file (the account exists).
agent_log_mark
"$MTLSCTL" -c "$conf" renew laptop >/dev/null
agent_log_wait 'event=renewed identity=laptop generation=2' 120
agent_log_wait 'event=reload result=ok' 60
request "$T/web.sock" CN=laptop.acme.test || t_fail "laptop after renewal"
pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin tPIN-4711xq --list-objects \
	--type privkey 2>/dev/null | grep -q 'laptop-g2' || t_fail "no new key laptop-g2 on the token"
echo "ok: renewed over ACME by the agent, new key laptop-g2 on the token"

# The CA out of reach: the renewal fails and is retried; traffic flows on
# the certificate in service; the CA back: renewed.
fwd_stop
agent_log_mark
"$MTLSCTL" -c "$conf" renew laptop >/dev/null
agent_log_wait 'event=renew_failed identity=laptop reason=connect_failed' 60
request "$T/web.sock" CN=laptop.acme.test || t_fail "traffic during the CA outage"
agent_log_wait 'event=renew_failed identity=laptop reason=connect_failed failures=2' 60
fwd_start
agent_log_wait 'event=renewed identity=laptop generation=3' 120
agent_log_wait 'event=reload result=ok' 60
request "$T/web.sock" CN=laptop.acme.test || t_fail "laptop after the outage"
echo "ok: CA outage retried with backoff while traffic flowed; renewed when it came back"

# A problem document: the hook sets nothing, pebble finds no TXT record.
touch "$P/dns-hook.noop"
agent_log_mark
"$MTLSCTL" -c "$conf" renew build >/dev/null
agent_log_wait 'event=acme_problem identity=build step=challenge type=[a-z]+' 120
agent_log_wait 'event=renew_failed identity=build' 60
rm "$P/dns-hook.noop"
m=$(curl -sS --max-time 30 --unix-socket "$T/metrics.sock" http://localhost/metrics)
grep -qE '^mtls_acme_problems_total\{type="(unauthorized|dns)"\} [1-9]' <<<"$m" ||
	t_fail "no problem counted by type: $(grep acme <<<"$m")"
request "$T/ci.sock" CN=build.acme.test || t_fail "build's tunnel after a refused renewal"
agent_log_wait 'event=renewed identity=build generation=2' 120
agent_log_wait 'event=reload result=ok' 60
echo "ok: a refused challenge shown with its problem type (log, metric), then renewed"

# Emergency revocation from the device, signed by the certificate's own key.
serial=$(openssl x509 -noout -serial -in <(pkcs11-tool --module "$SOFTHSM_MODULE" --login \
	--pin tPIN-4711xq --read-object --type cert --label laptop-g3 2>/dev/null |
	openssl x509 -inform DER) | cut -d= -f2)
[ "$(pebble_cert_status "$P" "$serial")" = Valid ] || t_fail "pebble does not know $serial"
agent_log_mark
"$MTLSCTL" -c "$conf" revoke laptop --reason key-compromise >"$T/rv.out"
t_assert_contains "$T/rv.out" 'revoked .key-compromise.'
[ "$(pebble_cert_status "$P" "$serial")" = Revoked ] || t_fail "pebble: $serial not revoked"
agent_log_wait 'event=identity_revoked identity=laptop' 60
agent_log_wait 'event=reload result=ok' 60
if request "$T/web.sock" CN=laptop.acme.test 2>/dev/null; then
	t_fail "the revoked certificate was presented"
fi
agent_log_wait 'reason=identity_revoked' 30
# Revoking again: the CA says it is already revoked; nothing breaks.
"$MTLSCTL" -c "$conf" revoke laptop >/dev/null
echo "ok: revoked from the device (pebble: Revoked), never presented again"

# acme_reenroll = yes: revoked (RS256, the RSA key signs), then a new key
# and certificate at once, and the revoked key destroyed.
bserial=$(openssl x509 -noout -serial -in <(pkcs11-tool --module "$SOFTHSM_MODULE" --login \
	--pin tPIN-4711xq --read-object --type cert --label build-g2 2>/dev/null |
	openssl x509 -inform DER) | cut -d= -f2)
agent_log_mark
"$MTLSCTL" -c "$conf" revoke build --reason superseded >"$T/rv2.out" 2>"$T/rv2.err" ||
	t_fail "revoke build: $(cat "$T/rv2.err")"
t_assert_contains "$T/rv2.out" 'generation 3 enrolled in its place'
[ "$(pebble_cert_status "$P" "$bserial")" = Revoked ] || t_fail "pebble: build $bserial not revoked"
agent_log_wait 'event=reload result=ok' 60
request "$T/ci.sock" CN=build.acme.test || t_fail "build after re-enrollment"
if pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin tPIN-4711xq --list-objects \
	--type privkey 2>/dev/null | grep -q 'build-g2'; then
	t_fail "the revoked key build-g2 is still on the token"
fi
echo "ok: RSA identity revoked and re-enrolled at once; the revoked key destroyed"
agent_stop
"$MTLSCTL" -c "$conf" status >"$T/status.out" 2>&1
t_assert_contains "$T/status.out" 'acme account: https://127.0.0.1:'
t_assert_contains "$T/status.out" 'acme EAB: *no longer needed'
t_pass "ACME: EAB, http-01, dns-01, alternates, renewal, outage, problems, revocation"
