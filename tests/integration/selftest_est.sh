#!/bin/bash
# The EST test responder (tests/lib/est.sh: nginx + fcgiwrap + est.cgi)
# without the agent, checked with curl and openssl: /cacerts, simpleenroll
# (Basic auth or a bootstrap certificate, pending, down, bad CSRs, validity
# switches), simplereenroll (client certificate of the CA, same subject),
# the request log, and est_stop.
set -euo pipefail
LIB=$(dirname "$0")/../lib
. "$LIB/common.sh"
. "$LIB/pki.sh"
. "$LIB/servers.sh"
. "$LIB/est.sh"

t_init selftest_est
pki_ca "$T/ca" "EST CA"
pki_ca "$T/other" "Other CA"
pki_server_cert "$T/ca" "$T/srv" localhost "DNS:localhost,IP:127.0.0.1"
pki_client_file_cert "$T/other" "$T/stranger" est-client
# A manufacturer's CA and a device certificate of its (IDevID-like): the
# responder trusts it for simpleenroll only (DIR/bootstrap-ca.pem).
pki_ca "$T/mfg" "Manufacturer CA"
pki_client_file_cert "$T/mfg" "$T/idev" mfg-device-1
mkdir -p "$T/est"
cp "$T/mfg/ca.pem" "$T/est/bootstrap-ca.pem"
port=$(t_free_port)
est_start "$T/est" "$port" "$T/ca" "$T/srv.pem" "$T/srv.key"
E=$T/est
listening=$(ss -Htln "sport = :$port" | awk '{print $4}')
[ "$listening" = "127.0.0.1:$port" ] || t_fail "EST nginx listens on: $listening"
url=https://localhost:$port/.well-known/est

# req NAME URL [curl args...]: prints the status; headers in $T/NAME.hdr,
# body in $T/NAME.body.
req() {
	local name=$1 u=$2
	shift 2
	curl -sS --max-time 60 --cacert "$T/ca/ca.pem" -D "$T/$name.hdr" \
		-o "$T/$name.body" -w '%{http_code}' "$@" "$u"
}
expect() { # NAME CODE CURL_ARGS...: req with an expected status
	local name=$1 want=$2 got
	shift 2
	got=$(req "$name" "$@")
	[ "$got" = "$want" ] || t_fail "$name: HTTP $got, expected $want ($(head -c 300 "$T/$name.body"))"
}
header() { # NAME 'Header: value' (whole line, case-insensitive name)
	grep -qiFx -- "$2"$'\r' "$T/$1.hdr" || {
		cat "$T/$1.hdr" >&2
		t_fail "$1: no header line '$2'"
	}
}
# certs NAME: the certificates in the base64 certs-only PKCS#7 answer.
certs() { base64 -d "$T/$1.body" | openssl pkcs7 -inform DER -print_certs; }
# csr KEYOUT SUBJECT: base64 (with line breaks) of a new DER PKCS#10.
csr() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1" -subj "$2" -outform DER 2>>"$T/req.log" | base64
}
fp() { openssl x509 -noout -fingerprint -sha256 "$@"; }
enroll() { # NAME CODE CSRFILE [curl args...]
	local name=$1 code=$2 csrfile=$3
	shift 3
	expect "$name" "$code" "$url/simpleenroll" -H 'Content-Type: application/pkcs10' \
		--data-binary "@$csrfile" "$@"
}

# /cacerts: the CA certificate.
expect cacerts 200 "$url/cacerts"
header cacerts 'Content-Type: application/pkcs7-mime'
header cacerts 'Content-Transfer-Encoding: base64'
certs cacerts >"$T/cacerts.pem"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/cacerts.pem")" = 1 ] || t_fail "cacerts: not one certificate"
[ "$(fp -in "$T/cacerts.pem")" = "$(fp -in "$T/ca/ca.pem")" ] || t_fail "cacerts: not the CA"

# simpleenroll: a client certificate for the CSR's subject.
csr "$T/cli.key" /CN=est-client >"$T/cli.csr"
[ "$(wc -l <"$T/cli.csr")" -gt 1 ] || t_fail "the CSR's base64 has no line breaks"
enroll enroll 200 "$T/cli.csr" -u est:est-secret
header enroll 'Content-Type: application/pkcs7-mime; smime-type=certs-only'
header enroll 'Content-Transfer-Encoding: base64'
certs enroll >"$T/cli.pem"
info=$(openssl x509 -in "$T/cli.pem" -noout -subject -ext extendedKeyUsage)
t_assert_contains "$info" '^subject=CN = est-client$'
t_assert_contains "$info" 'TLS Web Client Authentication'
openssl verify -CAfile "$T/ca/ca.pem" -purpose sslclient "$T/cli.pem" >/dev/null ||
	t_fail "the enrolled certificate does not verify"
[ "$(openssl x509 -in "$T/cli.pem" -noout -pubkey)" = "$(openssl pkey -in "$T/cli.key" -pubout)" ] ||
	t_fail "the enrolled certificate is not for the CSR's key"
[ "$(fp -in "$T/cli.pem")" = "$(fp -in "$E/last.pem")" ] || t_fail "last.pem is not the last certificate"
end=$(date -d "$(openssl x509 -in "$T/cli.pem" -noout -enddate | cut -d= -f2)" +%s)
days=$(((end - $(date +%s)) / 86400))
[ "$days" = 29 ] || [ "$days" = 30 ] || t_fail "default validity: $days days, expected 30"

# Refusals: authentication, CSR, method, path.
for cred in est:wrong nobody:est-secret; do
	enroll badpass 401 "$T/cli.csr" -u "$cred"
	header badpass 'WWW-Authenticate: Basic realm="est"'
done
enroll noauth 401 "$T/cli.csr"
header noauth 'WWW-Authenticate: Basic realm="est"'
echo 'not base64 at all!' >"$T/junk1"
head -c 300 /dev/urandom | base64 >"$T/junk2"
: >"$T/empty"
for f in junk1 junk2 empty; do
	enroll "bad-$f" 400 "$T/$f" -u est:est-secret
done
# A CSR whose signature does not match: one byte of the signature changed.
base64 -d "$T/cli.csr" >"$T/cli.der"
size=$(stat -c %s "$T/cli.der")
{ head -c $((size - 2)) "$T/cli.der"; printf '\x55\x55'; } | base64 >"$T/badsig"
enroll badsig 400 "$T/badsig" -u est:est-secret
expect badtype 415 "$url/simpleenroll" -u est:est-secret -H 'Content-Type: text/plain' \
	--data-binary "@$T/cli.csr"
expect badmethod 405 "$url/simpleenroll" -u est:est-secret
expect nothere 404 "$url/csrattrs"
expect nothere2 404 "https://localhost:$port/"
head -c 70000 /dev/zero | base64 >"$T/big"
enroll big 413 "$T/big" -u est:est-secret
# Answers carry Content-Length, unless DIR/chunked exists.
grep -qi '^Content-Length: [1-9]' "$T/enroll.hdr" || t_fail "enroll: no Content-Length"
touch "$E/chunked"
expect chunkedcacerts 200 "$url/cacerts"
header chunkedcacerts 'Transfer-Encoding: chunked'
certs chunkedcacerts | openssl x509 -noout >/dev/null
rm "$E/chunked"
# Chunked upload (no Content-Length) and a label segment.
expect chunked 200 "$url/lab1/simpleenroll" -u est:est-secret -H 'Content-Type: application/pkcs10' \
	-H 'Transfer-Encoding: chunked' --data-binary "@$T/cli.csr"
t_assert_contains "$(certs chunked | openssl x509 -noout -subject)" '^subject=CN = est-client$'

# pending=1: 202 with Retry-After once, then the certificate.
echo 1 >"$E/pending"
enroll pend1 202 "$T/cli.csr" -u est:est-secret
header pend1 'Retry-After: 1'
enroll pend2 200 "$T/cli.csr" -u est:est-secret
certs pend2 | openssl x509 -noout >/dev/null
[ "$(cat "$E/pending")" = 0 ] || t_fail "pending counter: $(cat "$E/pending")"
echo 2 >"$E/pending"
enroll pend3 202 "$T/cli.csr" -u est:est-secret
enroll pend4 202 "$T/cli.csr" -u est:est-secret
enroll pend5 200 "$T/cli.csr" -u est:est-secret

# down: 503 everywhere, Retry-After if the file holds a number.
touch "$E/down"
enroll down1 503 "$T/cli.csr" -u est:est-secret
expect down2 503 "$url/cacerts"
! grep -qi '^Retry-After' "$T/down2.hdr" || t_fail "down: unexpected Retry-After"
echo 7 >"$E/down"
expect down3 503 "$url/cacerts"
header down3 'Retry-After: 7'
rm "$E/down"

# Validity switches: days, then minutes (which win).
echo 2 >"$E/days"
enroll days 200 "$T/cli.csr" -u est:est-secret
end=$(date -d "$(certs days | openssl x509 -noout -enddate | cut -d= -f2)" +%s)
left=$((end - $(date +%s)))
((left > 2 * 86400 - 120 && left <= 2 * 86400)) || t_fail "days=2: $left s left"
echo 5 >"$E/minutes"
enroll minutes 200 "$T/cli.csr" -u est:est-secret
end=$(date -d "$(certs minutes | openssl x509 -noout -enddate | cut -d= -f2)" +%s)
left=$((end - $(date +%s)))
((left > 240 && left <= 300)) || t_fail "minutes=5: $left s left"
rm "$E/days" "$E/minutes"

# simplereenroll: the client certificate authenticates; same subject only.
reenroll() { # NAME CODE CSRFILE [curl args...]
	local name=$1 code=$2 csrfile=$3
	shift 3
	expect "$name" "$code" "$url/simplereenroll" -H 'Content-Type: application/pkcs10' \
		--data-binary "@$csrfile" "$@"
}
mtls=(--cert "$T/cli.pem" --key "$T/cli.key")
csr "$T/cli2.key" /CN=est-client >"$T/cli2.csr"
reenroll reenroll 200 "$T/cli2.csr" "${mtls[@]}"
header reenroll 'Content-Type: application/pkcs7-mime; smime-type=certs-only'
header reenroll 'Content-Transfer-Encoding: base64'
certs reenroll >"$T/cli2.pem"
t_assert_contains "$(openssl x509 -in "$T/cli2.pem" -noout -subject)" '^subject=CN = est-client$'
openssl verify -CAfile "$T/ca/ca.pem" -purpose sslclient "$T/cli2.pem" >/dev/null ||
	t_fail "the re-enrolled certificate does not verify"
[ "$(openssl x509 -in "$T/cli2.pem" -noout -pubkey)" = "$(openssl pkey -in "$T/cli2.key" -pubout)" ] ||
	t_fail "the re-enrolled certificate is not for the new key"
csr "$T/cli3.key" /CN=someone-else >"$T/cli3.csr"
reenroll resubject 400 "$T/cli3.csr" "${mtls[@]}"
csr "$T/cli4.key" /CN=est-client/O=Extra >"$T/cli4.csr"
reenroll resubject2 400 "$T/cli4.csr" "${mtls[@]}"
reenroll nocert 403 "$T/cli2.csr"
reenroll nocert-basic 403 "$T/cli2.csr" -u est:est-secret
# A certificate of another CA (same subject): nginx's verification fails,
# the CGI answers 403; the same client may still use simpleenroll and cacerts.
reenroll stranger 403 "$T/cli2.csr" --cert "$T/stranger.pem" --key "$T/stranger.key"
t_assert_contains "$T/stranger.body" 'verify=FAILED'
enroll stranger-enroll 200 "$T/cli2.csr" -u est:est-secret --cert "$T/stranger.pem" --key "$T/stranger.key"
echo 1 >"$E/pending"
reenroll repend1 202 "$T/cli2.csr" "${mtls[@]}"
header repend1 'Retry-After: 1'
reenroll repend2 200 "$T/cli2.csr" "${mtls[@]}"

# Bootstrap (RFC 7030 3.3.2): the manufacturer's certificate authenticates
# simpleenroll without HTTP Basic, or beside it...
idev=(--cert "$T/idev.pem" --key "$T/idev.key")
csr "$T/dev.key" /CN=est-device >"$T/dev.csr"
enroll boot 200 "$T/dev.csr" "${idev[@]}"
certs boot >"$T/dev.pem"
t_assert_contains "$(openssl x509 -in "$T/dev.pem" -noout -subject -issuer)" \
	'^subject=CN = est-device$'
openssl verify -CAfile "$T/ca/ca.pem" -purpose sslclient "$T/dev.pem" >/dev/null ||
	t_fail "the certificate enrolled with a bootstrap certificate is not the EST CA's"
enroll boot-basic 200 "$T/dev.csr" "${idev[@]}" -u est:est-secret
# ...but never renews: simplereenroll takes what the EST CA issued only.
csr "$T/idev2.key" /CN=mfg-device-1 >"$T/idev2.csr"
reenroll boot-reenroll 403 "$T/idev2.csr" "${idev[@]}"
t_assert_contains "$T/boot-reenroll.body" 'not issued by this CA'
# A certificate of a third CA, or the EST CA's own, is no bootstrap one:
# 403 without Basic (401 where no certificate came at all, above).
enroll stranger-noauth 403 "$T/dev.csr" --cert "$T/stranger.pem" --key "$T/stranger.key"
t_assert_contains "$T/stranger-noauth.body" 'verify=FAILED'
enroll estcert-noauth 403 "$T/dev.csr" "${mtls[@]}"
t_assert_contains "$T/estcert-noauth.body" 'no bootstrap certificate'
# The enrolled device certificate renews like any other.
reenroll dev-reenroll 200 "$T/dev.csr" --cert "$T/dev.pem" --key "$T/dev.key"

# The request log: time, endpoint, status, subject, what authenticated,
# the client certificate presented.
t_assert_contains "$E/est.log" '^[0-9T:-]+Z cacerts 200 - auth=none$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 200 CN=est-client auth=basic$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 401 - auth=none$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 202 CN=est-client auth=basic$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 503 - auth=none$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 200 CN=est-client auth=basic client=CN=est-client$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simplereenroll 200 CN=est-client auth=cert client=CN=est-client$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simplereenroll 400 CN=someone-else auth=cert client=CN=est-client$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simplereenroll 403 - auth=none$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simplereenroll 403 CN=est-client auth=none client=CN=est-client$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 200 CN=est-device auth=cert client=CN=mfg-device-1$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 200 CN=est-device auth=cert\+basic client=CN=mfg-device-1$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simplereenroll 403 CN=mfg-device-1 auth=none client=CN=mfg-device-1$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simpleenroll 403 - auth=none client=CN=est-client$'
t_assert_contains "$E/est.log" '^[0-9T:-]+Z simplereenroll 200 CN=est-device auth=cert client=CN=est-device$'
[ -z "$(find "$E" -maxdepth 1 -name 'req.*')" ] || t_fail "request temp dirs left in $E"

# Other credentials; est_stop frees the port and ends fcgiwrap; restart.
echo 'est:other' >"$E/credentials"
enroll cred1 401 "$T/cli.csr" -u est:est-secret
enroll cred2 200 "$T/cli.csr" -u est:other
fcgi=$(cat "$E/fcgiwrap.pid")
est_stop "$E"
! ss -Htln "sport = :$port" | grep -q . || t_fail "port $port still listens after est_stop"
! kill -0 "$fcgi" 2>/dev/null || t_fail "fcgiwrap $fcgi still runs after est_stop"
est_stop "$E"
# Without DIR/bootstrap-ca.pem at start, nginx trusts the EST CA only.
rm "$E/bootstrap-ca.pem"
port2=$(t_free_port)
est_start "$E" "$port2" "$T/ca" "$T/srv.pem" "$T/srv.key" 'user2:pa:ss word'
expect restart 200 "https://localhost:$port2/.well-known/est/simpleenroll" \
	-H 'Content-Type: application/pkcs10' --data-binary "@$T/cli.csr" -u 'user2:pa:ss word'
expect restart-boot 403 "https://localhost:$port2/.well-known/est/simpleenroll" \
	-H 'Content-Type: application/pkcs10' --data-binary "@$T/dev.csr" "${idev[@]}"
t_assert_contains "$T/restart-boot.body" 'verify=FAILED'

t_pass "EST responder: cacerts, simpleenroll (Basic, bootstrap certificate), simplereenroll, pending, down, validity, log, stop"
