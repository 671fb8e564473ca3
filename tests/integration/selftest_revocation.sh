#!/bin/bash
# The network revocation fixtures (tests/lib/revocation.sh) without the
# agent, checked with independent clients only (openssl ocsp, curl,
# openssl crl): certificates carry the AIA/CDP URLs asked for; the
# responders answer good, revoked (with the reason), for the intermediate
# too, and a revocation counts from the next request after
# rev_ocsp_refresh; answers of the wrong-key and no-EKU responders fail
# openssl's verification; nextUpdate follows -nmin; POST and GET, nonce
# echoed; loopback only; down and back; the slow forwarder waits its
# delay and counts every connection at once; the CRL server serves DER
# CRLs listing the revoked serial, logs each fetch, and serves a CRL
# replaced by mv from the next request on; short and backdated CRLs.
set -euo pipefail
LIB=$(dirname "$0")/../lib
. "$LIB/common.sh"
. "$LIB/pki.sh"
. "$LIB/servers.sh"
. "$LIB/revocation.sh"

# Exit 77 = skipped (tests/CMakeLists.txt: SKIP_RETURN_CODE).
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (unshare for openssl's responder)"; exit 77; }
t_init selftest_revocation
for b in openssl nginx curl socat unshare nsenter ip; do
	command -v "$b" >/dev/null || t_fail "$b is not installed"
done
START=${EPOCHREALTIME/./}
P=$T/pki
po=$(t_free_port)   # the intermediate's responder (delegated signer)
pr=$(t_free_port)   # the root's responder (the root's own key)
pw=$(t_free_port)   # wrong key: the unrelated CA's
pn=$(t_free_port)   # signed by the sibling without EKU OCSPSigning
ps=$(t_free_port)   # slow, in front of $po
pc=$(t_free_port)   # CRL server
rev_pki "$P" "http://127.0.0.1:$pr/" "http://127.0.0.1:$pc/root.crl"
for n in good bad later; do
	rev_leaf "$P" "$n" "DNS:localhost,IP:127.0.0.1" "http://127.0.0.1:$po/" "http://127.0.0.1:$pc/ca.crl"
done
rev_leaf "$P" rsa "DNS:localhost" "http://127.0.0.1:$po/" "http://127.0.0.1:$pc/ca.crl" rsa:2048
rev_leaf "$P" bare "DNS:localhost" "" ""

# ---- certificates
ext() { openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null; }
t_assert_contains "$(ext "$P/good.pem" authorityInfoAccess)" "OCSP - URI:http://127.0.0.1:$po/\$"
t_assert_contains "$(ext "$P/good.pem" crlDistributionPoints)" "URI:http://127.0.0.1:$pc/ca.crl\$"
t_assert_contains "$(ext "$P/int/ca.pem" authorityInfoAccess)" "OCSP - URI:http://127.0.0.1:$pr/\$"
t_assert_contains "$(ext "$P/int/ca.pem" crlDistributionPoints)" "URI:http://127.0.0.1:$pc/root.crl\$"
[ -z "$(ext "$P/bare.pem" authorityInfoAccess)$(ext "$P/bare.pem" crlDistributionPoints)" ] ||
	t_fail "bare.pem has AIA or CDP"
t_assert_contains "$(openssl x509 -in "$P/rsa.pem" -noout -text)" "Public-Key: \(2048 bit\)"
for c in int root; do
	t_assert_contains "$(ext "$P/$c/responder.pem" extendedKeyUsage)" "OCSP Signing"
	! ext "$P/$c/noeku.pem" extendedKeyUsage | grep -q "OCSP Signing" || t_fail "$c/noeku has OCSPSigning"
	openssl verify -CAfile "$P/roots.pem" -untrusted "$P/int/ca.pem" "$P/$c/responder.pem" >/dev/null ||
		t_fail "$c/responder.pem does not verify"
done
openssl verify -CAfile "$P/roots.pem" -untrusted "$P/int/chain.pem" "$P/good.pem" >/dev/null ||
	t_fail "good.pem does not verify with chain.pem"
[ "$(grep -c 'BEGIN CERTIFICATE' "$P/good.chain.pem")" = 2 ] || t_fail "good.chain.pem: not leaf + intermediate"
t_expect_fail openssl verify -CAfile "$P/other/ca.pem" -untrusted "$P/int/ca.pem" "$P/good.pem" >/dev/null 2>&1
echo "ok: leaves and the intermediate carry the AIA/CDP URLs; delegated responders have EKU OCSPSigning, their siblings not"

rev_revoke "$P" "$P/bad.pem" keyCompromise
rev_ocsp_start "$P" "$po" int responder 1
rev_ocsp_start "$P" "$pr" root ca
rev_ocsp_start "$P" "$pw" int other
rev_ocsp_start "$P" "$pn" int noeku

# Loopback only: the forwarders listen on 127.0.0.1; openssl's own
# wildcard listener lives in a namespace of its own.
for p in "$po" "$pr" "$pw" "$pn"; do
	l=$(ss -Htlnp "sport = :$p")
	[ "$(wc -l <<<"$l")" = 1 ] && [[ $l == *" 127.0.0.1:$p "* ]] || t_fail "port $p: $l"
done
! ss -Htln | grep -qE '(\*|\[::\]|0\.0\.0\.0):8080 ' || t_fail "openssl ocsp listens on the host"

fetches_are() { [ "$(rev_fetches "$P" "$2")" = "$1" ]; } # N PORT

# ocsp PORT CERT [ISSUER [args]]: openssl ocsp's verdict ("...: good") and
# its verification line; status kept in $T/ocsp.rc.
ocsp() {
	local port=$1 cert=$2 issuer=${3:-$P/int/ca.pem} rc=0
	shift 3 2>/dev/null || shift $#
	openssl ocsp -issuer "$issuer" -cert "$cert" -url "http://127.0.0.1:$port/" \
		-CAfile "$P/roots.pem" -timeout 30 -resp_text "$@" >"$T/ocsp.out" 2>&1 || rc=$?
	echo "$rc" >"$T/ocsp.rc"
	cat "$T/ocsp.out"
}
out=$(ocsp "$po" "$P/good.pem")
t_assert_contains "$out" "^Response verify OK"
t_assert_contains "$out" "good.pem: good"
t_assert_contains "$out" "OCSP Nonce"
tu=$(sed -n 's/^ *This Update: //p' <<<"$out" | head -n1)
nu=$(sed -n 's/^ *Next Update: //p' <<<"$out" | head -n1)
[ $(($(date -d "$nu" +%s) - $(date -d "$tu" +%s))) = 60 ] || t_fail "-nmin 1: thisUpdate $tu, nextUpdate $nu"
out=$(ocsp "$po" "$P/bad.pem")
t_assert_contains "$out" "^Response verify OK"
t_assert_contains "$out" "bad.pem: revoked"
t_assert_contains "$out" "Reason: keyCompromise"
t_assert_contains "$(ocsp "$po" "$P/rsa.pem")" "rsa.pem: good"
out=$(ocsp "$po" "$P/good.pem" "$P/int/ca.pem" -no_nonce)
t_assert_contains "$out" "good.pem: good"
! grep -q "OCSP Nonce" <<<"$out" || t_fail "a nonce without one asked"
echo "ok: the delegated responder: good, revoked (keyCompromise), nextUpdate = thisUpdate + 1 min, nonce only when asked"

# GET (RFC 6960 A.1: the base64 DER request, URL-encoded, in the path).
openssl ocsp -issuer "$P/int/ca.pem" -cert "$P/bad.pem" -no_nonce -reqout "$T/bad.req" 2>/dev/null
enc=$(base64 -w0 "$T/bad.req" | sed 's/+/%2B/g; s#/#%2F#g; s/=/%3D/g')
curl -sS --max-time 30 -D "$T/get.h" -o "$T/get.der" "http://127.0.0.1:$po/$enc"
t_assert_contains "$(tr -d '\r' <"$T/get.h")" "^Content-type: application/ocsp-response\$"
t_assert_contains "$(openssl ocsp -respin "$T/get.der" -resp_text -noverify 2>&1)" "Cert Status: revoked"
curl -sS --max-time 30 -D "$T/post.h" -o "$T/post.der" -H 'Content-Type: application/ocsp-request' \
	--data-binary @"$T/bad.req" "http://127.0.0.1:$po/"
t_assert_contains "$(tr -d '\r' <"$T/post.h")" "^HTTP/1.0 200 OK\$"
t_assert_contains "$(openssl ocsp -respin "$T/post.der" -resp_text -noverify 2>&1)" "Cert Status: revoked"
echo "ok: GET and POST, answered HTTP/1.0 with Content-type application/ocsp-response"

# The intermediate at the root's responder (signed with the root's key).
out=$(ocsp "$pr" "$P/int/ca.pem" "$P/root/ca.pem")
t_assert_contains "$out" "^Response verify OK"
t_assert_contains "$out" "int/ca.pem: good"
echo "ok: the root's responder: the intermediate is good"

# Wrong key, and a sibling without the EKU: openssl refuses the answers.
for p in "$pw" "$pn"; do
	out=$(ocsp "$p" "$P/good.pem")
	t_assert_contains "$out" "Response Verify Failure"
	! grep -q "^Response verify OK" <<<"$out" || t_fail "port $p: verified"
done
t_assert_contains "$(ocsp "$pw" "$P/good.pem" "$P/int/ca.pem" -noverify)" "good.pem: good"
echo "ok: answers signed by the unrelated CA's key or the sibling without EKU OCSPSigning fail verification"

# A revocation: the index is re-read, from the request after the next one;
# rev_ocsp_refresh spends that one.
t_assert_contains "$(ocsp "$po" "$P/later.pem")" "later.pem: good"
n0=$(rev_fetches "$P" "$po")
rev_revoke "$P" "$P/later.pem" superseded
rev_ocsp_refresh "$P" "$po"
out=$(ocsp "$po" "$P/later.pem")
t_assert_contains "$out" "later.pem: revoked"
t_assert_contains "$out" "Reason: superseded"
[ "$(rev_fetches "$P" "$po")" = $((n0 + 1)) ] || t_fail "fetch count: $n0 -> $(rev_fetches "$P" "$po"), the refresh counted"
echo "ok: a revocation is answered from the next request after rev_ocsp_refresh (not counted at the forwarder)"

# Down: refused at once, the port unbound; back with the same arguments.
rev_ocsp_stop "$P" "$po"
! ss -Htln "sport = :$po" | grep -q . || t_fail "port $po still bound when down"
# (curl: openssl ocsp's client retries a refused connect until its -timeout.)
rc=0
curl -sS --max-time 30 -o /dev/null --data-binary @"$T/bad.req" "http://127.0.0.1:$po/" 2>"$T/down.err" || rc=$?
[ "$rc" = 7 ] || t_fail "a down responder: curl status $rc ($(cat "$T/down.err")), want 7 (refused)"
rev_ocsp_stop "$P" "$po"
rev_ocsp_restart "$P" "$po"
t_assert_contains "$(ocsp "$po" "$P/later.pem")" "later.pem: revoked"
t_assert_contains "$(ocsp "$po" "$P/good.pem")" "good.pem: good"
echo "ok: down (refused, port unbound) and restarted with the same responder"

# -multi: a client that sent half a request stalls no other; stopped with
# all its processes.
pm=$(t_free_port)
REV_OCSP_ARGS="-multi 2" rev_ocsp_start "$P" "$pm" int
exec {stall}<>"/dev/tcp/127.0.0.1/$pm"
printf 'POST / HTTP/1.0\r\n' >&$stall
t_until 30 fetches_are 1 "$pm" || t_fail "-multi: the stalled connection was not counted"
t0=${EPOCHREALTIME/./}
t_assert_contains "$(ocsp "$pm" "$P/good.pem")" "good.pem: good"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
((ms < 5000)) || t_fail "-multi 2: ${ms} ms behind a stalled client"
exec {stall}>&-
rev_ocsp_stop "$P" "$pm"
! pgrep -f -- "-index $P/int/index.txt -port 8080 .* -multi 2" >/dev/null ||
	t_fail "-multi responder processes left after rev_ocsp_stop"
echo "ok: -multi 2 answers beside a stalled client (${ms} ms) and stops with all its processes"

# Slow: 3 s before the first byte goes on; counted at once.
DELAY=3
rev_fwd_start "$P" "$ps" "127.0.0.1:$po" "$DELAY"
t0=${EPOCHREALTIME/./}
slowq() { # CERT OUT
	openssl ocsp -issuer "$P/int/ca.pem" -cert "$1" -url "http://127.0.0.1:$ps/" \
		-CAfile "$P/roots.pem" -timeout 60 >"$2" 2>&1
}
slowq "$P/good.pem" "$T/slow1.out" &
q1=$!
slowq "$P/bad.pem" "$T/slow2.out" &
q2=$!
t_until 30 fetches_are 2 "$ps" || t_fail "slow: count $(rev_fetches "$P" "$ps"), want 2"
kill -0 "$q1" 2>/dev/null && kill -0 "$q2" 2>/dev/null || t_fail "slow: an answer before the count"
wait "$q1" "$q2"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
((ms >= DELAY * 1000)) || t_fail "slow: answered after $ms ms, before the ${DELAY}s delay"
t_assert_contains "$T/slow1.out" "good.pem: good"
t_assert_contains "$T/slow2.out" "bad.pem: revoked"
t_assert_contains "$P/fwd-$ps.count" "^conn 2 POST / HTTP/1.0\$"
echo "ok: slow forwarder: 2 parallel queries counted at once, both answered after ${ms} ms (delay ${DELAY}s)"

# ---- CRLs
rev_crl "$P" int
rev_crl "$P" root -crlhours 2
rev_crl_server_start "$T/crl" "$pc"
l=$(ss -Htlnp "sport = :$pc")
[ "$(wc -l <<<"$l")" = 1 ] && [[ $l == *" 127.0.0.1:$pc "* ]] || t_fail "CRL server: $l"
rev_crl_publish "$P" int "$T/crl/www/ca.crl"
rev_crl_publish "$P" root "$T/crl/www/root.crl"
serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
crl_text() { curl -sS --max-time 30 "http://127.0.0.1:$pc/$1" | openssl crl -inform DER -noout -text; }
txt=$(crl_text ca.crl)
t_assert_contains "$txt" "Serial Number: $(serial "$P/bad.pem")"
t_assert_contains "$txt" "Serial Number: $(serial "$P/later.pem")"
t_assert_contains "$txt" "Key Compromise"
t_assert_contains "$txt" "Superseded"
t_assert_contains "$txt" "Issuer: CN = Rev Intermediate CA"
t_assert_contains "$txt" "X509v3 Authority Key Identifier"
! grep -q "Serial Number: $(serial "$P/good.pem")" <<<"$txt" || t_fail "the CRL lists good.pem"
curl -sS --max-time 30 -o "$T/ca.crl" "http://127.0.0.1:$pc/ca.crl"
openssl crl -inform DER -in "$T/ca.crl" -CAfile "$P/int/ca.pem" -noout 2>&1 | grep -q 'verify OK' ||
	t_fail "the CRL's signature does not verify with the intermediate"
t_assert_contains "$(curl -sS --max-time 30 -D - -o /dev/null "http://127.0.0.1:$pc/ca.crl" | tr -d '\r')" \
	"^Content-Type: application/pkix-crl\$"
rtxt=$(crl_text root.crl)
t_assert_contains "$rtxt" "Issuer: CN = Rev Root CA"
lu=$(sed -n 's/^ *Last Update: //p' <<<"$rtxt") nx=$(sed -n 's/^ *Next Update: //p' <<<"$rtxt")
[ $(($(date -d "$nx" +%s) - $(date -d "$lu" +%s))) = 7200 ] || t_fail "-crlhours 2: $lu .. $nx"
[ "$(rev_crl_fetches "$T/crl")" = 3 ] || t_fail "access log counts $(rev_crl_fetches "$T/crl") fetches of /ca.crl, want 3"
[ "$(rev_crl_fetches "$T/crl" /root.crl)" = 1 ] || t_fail "root.crl fetch count"
echo "ok: the CRL server serves DER CRLs (application/pkix-crl) listing the revoked serials with reasons; 3 fetches logged"

# Replaced by mv: the next fetch has the new CRL.
rev_revoke "$P" "$P/good.pem" cessationOfOperation
rev_crl "$P" int -crlsec 60
rev_crl_publish "$P" int "$T/crl/www/ca.crl"
txt=$(crl_text ca.crl)
t_assert_contains "$txt" "Serial Number: $(serial "$P/good.pem")"
lu=$(sed -n 's/^ *Last Update: //p' <<<"$txt") nx=$(sed -n 's/^ *Next Update: //p' <<<"$txt")
[ $(($(date -d "$nx" +%s) - $(date -d "$lu" +%s))) = 60 ] || t_fail "-crlsec 60: $lu .. $nx"
# Backdated: thisUpdate 25 s ago.
rev_crl "$P" int -crl_lastupdate "$(rev_utc -25)" -crlsec 3600
lu=$(openssl crl -in "$P/int/crl.pem" -noout -lastupdate | cut -d= -f2)
age=$(($(date +%s) - $(date -d "$lu" +%s)))
((age >= 25 && age < 60)) || t_fail "-crl_lastupdate: age $age s"
rev_crl_server_stop "$T/crl"
t_expect_fail curl -sS --max-time 30 -o /dev/null "http://127.0.0.1:$pc/ca.crl" 2>/dev/null
! ss -Htln "sport = :$pc" | grep -q . || t_fail "CRL port still bound when down"
echo "ok: a CRL replaced by mv is served at once; -crlsec and a backdated lastUpdate; the CRL server down"

t_pass "revocation fixtures in $(((${EPOCHREALTIME/./} - START) / 1000)) ms"
