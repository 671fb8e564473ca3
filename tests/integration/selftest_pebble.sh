#!/bin/bash
# The ACME test CA (tests/lib/pebble.sh: pebble + pebble-challtestsrv)
# without the agent, checked with independent tools: curl, openssl, lego
# (an ACME client of its own), tests/lib/acme/acme-curl.sh (curl and
# openssl) and a DNS query made with python3's socket.
# Loopback only; the directory with its CA; the mock DNS and the dns-01
# hook (present, cleanup of one value, switches, failures); lego with
# external account binding over dns-01 (exec provider, the hook) and
# http-01 (real validation: it fails when nothing answers on the port);
# accounts without or with a wrong binding refused; revocation seen in
# pebble_cert_status; chains that verify against pebble_roots' root;
# alternate roots, longer chains and a short validity; pebble_stop.
set -euo pipefail
LIB=$(dirname "$0")/../lib
. "$LIB/common.sh"
. "$LIB/pki.sh"
. "$LIB/servers.sh"
. "$LIB/pebble.sh"
. "$LIB/acme/acme-curl.sh"

t_init selftest_pebble
command -v lego >/dev/null || t_fail "lego is not installed (scripts/deps.sh)"

b64url() { head -c "$1" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
KID=kid-1 HMAC=$(b64url 32)
KID2=kid-2 HMAC2=$(b64url 32)
pebble_start "$T/p" "eab=$KID:$HMAC" "eab=$KID2:$HMAC2"
P=$T/p

# Loopback only: every socket of pebble (ACME, management) and of
# challtestsrv (DNS on TCP and UDP, management).
for srv in pebble:2 challtestsrv:3; do
	name=${srv%:*} want=${srv#*:}
	pid=$(cat "$P/$name.pid")
	socks=$(ss -Htulnp | grep "pid=$pid," | awk '{print $1, $5}')
	[ "$(wc -l <<<"$socks")" = "$want" ] || t_fail "$name: sockets: $socks (want $want)"
	while read -r proto addr; do
		[[ $addr == 127.0.0.1:* ]] || t_fail "$name listens on $proto $addr"
	done <<<"$socks"
done
t_assert_contains "$(ss -Hulnp | grep "pid=$(cat "$P/challtestsrv.pid"),")" "127.0.0.1:${CHALLTEST_DNS#*:} "

# The directory, trusted through PEBBLE_CA only, by address and by name.
dir=$(curl -sS --max-time 30 --cacert "$PEBBLE_CA" "$PEBBLE_DIR_URL")
t_assert_contains "$dir" "\"newAccount\": \"https://127.0.0.1:$PEBBLE_PORT/"
t_assert_contains "$dir" '"externalAccountRequired": true'
curl -sS --max-time 30 --cacert "$PEBBLE_CA" -o /dev/null "https://localhost:$PEBBLE_PORT/dir"
t_expect_fail curl -sS --max-time 30 -o /dev/null "$PEBBLE_DIR_URL" 2>/dev/null
for f in acme-ca.pem roots.pem root-0.pem roots-all.pem intermediate-0.pem env dns-hook.sh dns-hook.conf; do
	[ -s "$P/$f" ] || t_fail "pebble_start made no $P/$f"
done
[ ! -e "$P/root-1.pem" ] || t_fail "root-1.pem without alternate roots"
curl -sS --max-time 30 --cacert "$PEBBLE_CA" "$PEBBLE_MGMT/roots/0" | cmp -s - "$P/roots.pem" ||
	t_fail "roots.pem is not /roots/0"
openssl verify -CAfile "$P/roots.pem" "$P/intermediate-0.pem" >/dev/null ||
	t_fail "intermediate-0.pem does not verify against roots.pem"
[ "$(. "$P/env" && echo "$PEBBLE_DIR_URL $CHALLTEST_MGMT")" = "$PEBBLE_DIR_URL $CHALLTEST_MGMT" ] ||
	t_fail "$P/env does not match the exported variables"

# dnsq TYPE NAME: the mock DNS's answers, one a line (a query of our own).
dnsq() {
	python3 - "$CHALLTEST_DNS" "$1" "$2" <<-'EOF'
	import random, socket, struct, sys
	addr, qtype, name = sys.argv[1], sys.argv[2], sys.argv[3].rstrip(".")
	host, port = addr.rsplit(":", 1)
	t = {"A": 1, "AAAA": 28, "TXT": 16}[qtype]
	q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
	for label in name.split("."):
	    q += bytes([len(label)]) + label.encode()
	q += b"\0" + struct.pack(">HH", t, 1)
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(10)
	s.sendto(q, (host, int(port)))
	r = s.recv(65535)
	def skip(o):
	    while r[o] and r[o] < 0xC0:
	        o += r[o] + 1
	    return o + (2 if r[o] else 1)
	_, flags, qd, an = struct.unpack(">HHHH", r[:8])
	o = 12
	for _ in range(qd):
	    o = skip(o) + 4
	for _ in range(an):
	    o = skip(o)
	    typ, _, _, n = struct.unpack(">HHIH", r[o:o + 10])
	    rd, o = r[o + 10:o + 10 + n], o + 10 + n
	    if typ != t:
	        continue
	    if t == 1:
	        print(socket.inet_ntop(socket.AF_INET, rd))
	    elif t == 28:
	        print(socket.inet_ntop(socket.AF_INET6, rd))
	    else:
	        i = 0
	        while i < len(rd):
	            print(rd[i + 1:i + 1 + rd[i]].decode())
	            i += 1 + rd[i]
	sys.exit(flags & 0xF)
	EOF
}
[ "$(dnsq A some.host.acme.test)" = 127.0.0.1 ] || t_fail "mock DNS: A of some.host.acme.test: $(dnsq A some.host.acme.test)"
[ -z "$(dnsq AAAA some.host.acme.test)" ] || t_fail "mock DNS answers AAAA"

# The hook, run as an agent runs it: the installed copy, PATH alone.
hook() { env -i PATH=/usr/bin:/bin "$PEBBLE_HOOK" "$@"; }
txt() { dnsq TXT "$1" | sort | tr '\n' ' '; }
N=_acme-challenge.direct.acme.test
hook present "$N" val-one
[ "$(txt $N)" = "val-one " ] || t_fail "hook present: TXT $N: $(txt $N)"
# The mock DNS matches names case-sensitively; the hook keeps the case.
hook present _acme-challenge.Mixed.acme.test val-mixed
[ "$(txt _acme-challenge.Mixed.acme.test)" = "val-mixed " ] || t_fail "hook present (mixed case)"
[ -z "$(txt _acme-challenge.mixed.acme.test)" ] || t_fail "the mock DNS now folds case: NOTES-pebble.txt"
hook cleanup _acme-challenge.Mixed.acme.test. val-mixed
[ -z "$(txt _acme-challenge.Mixed.acme.test)" ] || t_fail "hook cleanup (mixed case)"
hook present "$N." val-two
[ "$(txt $N)" = "val-one val-two " ] || t_fail "hook present (2): TXT $N: $(txt $N)"
hook cleanup "$N" val-one
[ "$(txt $N)" = "val-two " ] || t_fail "hook cleanup removed more or less than val-one: $(txt $N)"
hook cleanup "$N." val-two
[ -z "$(txt $N)" ] || t_fail "hook cleanup: TXT $N left: $(txt $N)"
[ ! -s "$P/dns-hook.state" ] || t_fail "hook state not empty: $(cat "$P/dns-hook.state")"
# The copy in the source tree, configured through DNS_HOOK_CONF.
bash "$LIB/acme/dns-hook.sh" present "$N" val-three
[ "$(txt $N)" = "val-three " ] || t_fail "source hook present: TXT $N: $(txt $N)"
bash "$LIB/acme/dns-hook.sh" cleanup "$N" val-three
diff - "$P/dns-hook.log" <<-EOF || t_fail "dns-hook.log differs (above)"
present $N val-one
present _acme-challenge.Mixed.acme.test val-mixed
cleanup _acme-challenge.Mixed.acme.test. val-mixed
present $N. val-two
cleanup $N val-one
cleanup $N. val-two
present $N val-three
cleanup $N val-three
EOF
: >"$P/dns-hook.log"
# Failures: non-zero, a message, a FAILED line, no change.
hookfail() { # PATTERN ARGS...: the hook fails with PATTERN on stderr
	local pat=$1 err
	shift
	if err=$("$@" 2>&1 >/dev/null); then t_fail "hook succeeded: ${*: -3}"; fi
	grep -qE -- "$pat" <<<"$err" || t_fail "hook's message '$err' lacks /$pat/"
}
hookfail usage hook present "$N"
hookfail "unknown action" hook remove "$N" v
hookfail "not a TXT value" hook present "$N" 'a"b'
hookfail "not a DNS name" hook present 'a b.test' v
hookfail "no configuration" env -i PATH=/usr/bin:/bin bash "$LIB/acme/dns-hook.sh" present "$N" v
echo present >"$P/dns-hook.fail"
hookfail "on purpose" hook present "$N" v
hook cleanup "$N" v
rm "$P/dns-hook.fail"
[ -z "$(txt $N)" ] || t_fail "a failed present changed TXT $N"
t_assert_contains "$P/dns-hook.log" "^present $N v FAILED\$"
t_assert_contains "$P/dns-hook.log" "^cleanup $N v\$"
# A challtestsrv that does not answer: the hook fails and says so.
mkdir "$T/deadhook"
cp "$PEBBLE_HOOK" "$T/deadhook/"
printf 'mgmt=http://127.0.0.1:%s\ndir=%s\n' "$(t_free_port)" "$T/deadhook" >"$T/deadhook/dns-hook.conf"
hookfail "unreachable" env -i PATH=/usr/bin:/bin "$T/deadhook/dns-hook.sh" present "$N" v
t_assert_contains "$T/deadhook/dns-hook.log" "^present $N v FAILED\$"
: >"$P/dns-hook.log"

# lego: PEBBLE_CA trusted, the account registered with EAB.
export LEGO_CA_CERTIFICATES=$PEBBLE_CA
lego_() { # PATH NAME ARGS...: lego with its own --path; output in $T/NAME.out
	local path=$1 name=$2
	shift 2
	lego --server "$PEBBLE_DIR_URL" --path "$path" --accept-tos \
		--email "test@example.com" --key-type ec256 "$@" >"$T/$name.out" 2>&1
}
dns01=(--dns exec --dns.resolvers "$CHALLTEST_DNS" --dns.disable-cp)
export EXEC_PATH=$PEBBLE_HOOK EXEC_POLLING_INTERVAL=1 EXEC_PROPAGATION_TIMEOUT=60 \
	EXEC_SEQUENCE_INTERVAL=1
L=$T/lego
eab=(--eab --kid "$KID" --hmac "$HMAC")
lego_ "$L" dns1 "${eab[@]}" "${dns01[@]}" \
	-d dns1.acme.test -d '*.dns1.acme.test' run ||
	t_fail "lego dns-01 with EAB failed: $(tail -n 20 "$T/dns1.out")"
crt=$L/certificates/dns1.acme.test
openssl x509 -in "$crt.crt" -out "$T/dns1.pem"
info=$(openssl x509 -in "$T/dns1.pem" -noout -ext subjectAltName,extendedKeyUsage)
t_assert_contains "$info" 'DNS:\*\.dns1\.acme\.test'
t_assert_contains "$info" 'DNS:dns1\.acme\.test'
t_assert_contains "$info" 'TLS Web Server Authentication, TLS Web Client Authentication'
openssl verify -CAfile "$P/roots.pem" -untrusted "$crt.issuer.crt" "$T/dns1.pem" >/dev/null ||
	t_fail "the dns-01 certificate does not verify against roots.pem"
# The hook's calls: both authorizations share one TXT name; each value
# was presented and cleaned up, nothing left.
name=_acme-challenge.dns1.acme.test.
[ "$(grep -c "^present $name [A-Za-z0-9_-]\{43\}\$" "$P/dns-hook.log")" = 2 ] ||
	t_fail "dns-hook.log: not two presents for $name: $(cat "$P/dns-hook.log")"
[ "$(grep -c "^cleanup $name [A-Za-z0-9_-]\{43\}\$" "$P/dns-hook.log")" = 2 ] ||
	t_fail "dns-hook.log: not two cleanups for $name: $(cat "$P/dns-hook.log")"
[ ! -s "$P/dns-hook.state" ] || t_fail "records left: $(cat "$P/dns-hook.state")"
grep -q 'DNS-01 TXT challenge' "$P/challtestsrv.log" || t_fail "challtestsrv saw no TXT record"

# dns-01 when the hook sets nothing: pebble's check fails.
touch "$P/dns-hook.noop"
t_expect_fail lego_ "$L" dnsnoop "${eab[@]}" "${dns01[@]}" -d noop.acme.test run
rm "$P/dns-hook.noop"
t_assert_contains "$T/dnsnoop.out" 'No TXT records found|Correct value not found'

# http-01 with a real validation: lego answers on PEBBLE_HTTP_PORT.
lego_ "$L" http1 "${eab[@]}" --http --http.port "127.0.0.1:$PEBBLE_HTTP_PORT" -d http1.acme.test run ||
	t_fail "lego http-01 failed: $(tail -n 20 "$T/http1.out")"
t_assert_contains "$P/pebble.log" "Attempting to validate w/ HTTP: http://http1.acme.test:$PEBBLE_HTTP_PORT/\.well-known/acme-challenge/"
openssl x509 -in "$L/certificates/http1.acme.test.crt" -out "$T/http1.pem"
openssl verify -CAfile "$P/roots.pem" -untrusted "$L/certificates/http1.acme.test.issuer.crt" \
	"$T/http1.pem" >/dev/null || t_fail "the http-01 certificate does not verify"
# Listening elsewhere: pebble finds nobody on PEBBLE_HTTP_PORT.
t_expect_fail lego_ "$L" httpelse "${eab[@]}" --http --http.port "127.0.0.1:$(t_free_port)" -d else.acme.test run
t_assert_contains "$T/httpelse.out" 'connection refused|Connection refused'

# Accounts: without EAB refused by the server (curl: lego would not even
# ask); with a wrong MAC key or an unknown key id (lego) refused too.
W=$T/curl-acme
acme_curl_init "$W" "$PEBBLE_DIR_URL" "$PEBBLE_CA"
code=$(acme_curl_post "$W" "$(acme_curl_url "$W" newAccount)" '{"termsOfServiceAgreed":true}')
[ "$code" = 403 ] || t_fail "newAccount without EAB: HTTP $code ($(cat "$W/resp.body"))"
[ "$(acme_curl_field "$W" type)" = urn:ietf:params:acme:error:externalAccountRequired ] ||
	t_fail "newAccount without EAB: $(cat "$W/resp.body")"
code=$(acme_curl_post "$W" "$(acme_curl_url "$W" newAccount)" '{"termsOfServiceAgreed":true}' "$KID" "$HMAC")
[ "$code" = 201 ] || t_fail "newAccount with EAB (curl): HTTP $code ($(cat "$W/resp.body"))"
t_expect_fail lego_ "$T/lego-badmac" badmac --eab --kid "$KID" --hmac "$HMAC2" \
	--http --http.port "127.0.0.1:$PEBBLE_HTTP_PORT" -d badmac.acme.test run
t_assert_contains "$T/badmac.out" "unauthorized :: external account binding JWS verification error"
t_expect_fail lego_ "$T/lego-badkid" badkid --eab --kid kid-9 --hmac "$HMAC" \
	--http --http.port "127.0.0.1:$PEBBLE_HTTP_PORT" -d badkid.acme.test run
t_assert_contains "$T/badkid.out" "unauthorized :: the field .kid. references a key that is not known"
# The second key id registers an account of its own.
lego_ "$T/lego-kid2" kid2 --eab --kid "$KID2" --hmac "$HMAC2" \
	--http --http.port "127.0.0.1:$PEBBLE_HTTP_PORT" -d kid2.acme.test run ||
	t_fail "lego with $KID2 failed: $(tail -n 20 "$T/kid2.out")"

# Revocation: Valid, then Revoked; an unknown serial has no status.
serial=$(openssl x509 -in "$T/http1.pem" -noout -serial)
[ "$(pebble_cert_status "$P" "$serial")" = Valid ] ||
	t_fail "status of $serial before revoke: $(pebble_cert_status "$P" "$serial")"
lego_ "$L" revoke "${eab[@]}" -d http1.acme.test revoke || t_fail "lego revoke failed: $(tail "$T/revoke.out")"
[ "$(pebble_cert_status "$P" "$serial")" = Revoked ] ||
	t_fail "status of $serial after revoke: $(pebble_cert_status "$P" "$serial")"
[ "$(pebble_cert_status "$P" "$(openssl x509 -in "$T/dns1.pem" -noout -serial)")" = Valid ] ||
	t_fail "the dns-01 certificate is not Valid"
[ -z "$(pebble_cert_status "$P" 0123456789ABCDEF)" ] || t_fail "an unknown serial has a status"

# pebble_stop: both gone, ports free; safe twice.
pids="$(cat "$P/pebble.pid") $(cat "$P/challtestsrv.pid")"
pebble_stop "$P"
for pid in $pids; do t_gone "$pid" || t_fail "process $pid still runs after pebble_stop"; done
for p in "$PEBBLE_PORT" "$PEBBLE_MGMT_PORT" "${CHALLTEST_DNS#*:}" "${CHALLTEST_MGMT##*:}"; do
	! ss -Htuln "sport = :$p" | grep -q . || t_fail "port $p still in use after pebble_stop"
done
pebble_stop "$P"

# Another start: alternate roots, two intermediates, a 300 s validity, no
# EAB; lego's chain verifies against root 0, and /roots/1 is another root.
old_root=$T/old-root.pem
cp "$P/roots.pem" "$old_root"
pebble_start "$T/p2" alternate_roots=1 chain_length=2 validity=300
P2=$T/p2
export LEGO_CA_CERTIFICATES=$PEBBLE_CA # this start's own TLS CA
[ -s "$P2/root-1.pem" ] || t_fail "alternate_roots=1: no root-1.pem"
[ -s "$P2/intermediate-1.pem" ] || t_fail "alternate_roots=1: no intermediate-1.pem"
[ ! -e "$P2/root-2.pem" ] || t_fail "alternate_roots=1: a root-2.pem"
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
[ "$(fp "$P2/root-1.pem")" != "$(fp "$P2/roots.pem")" ] || t_fail "root 1 is root 0"
[ "$(fp "$P2/roots.pem")" != "$(fp "$old_root")" ] || t_fail "a new start kept the root"
[ "$(grep -c 'BEGIN CERTIFICATE' "$P2/roots-all.pem")" = 2 ] || t_fail "roots-all.pem: not 2 roots"
t_assert_contains "$(curl -sS --max-time 30 --cacert "$PEBBLE_CA" "$PEBBLE_DIR_URL")" '"externalAccountRequired": false'
lego_ "$T/lego2" alt --http --http.port "127.0.0.1:$PEBBLE_HTTP_PORT" -d alt.acme.test run ||
	t_fail "lego on the second pebble failed: $(tail -n 20 "$T/alt.out")"
crt=$T/lego2/certificates/alt.acme.test
[ "$(grep -c 'BEGIN CERTIFICATE' "$crt.crt")" = 3 ] || t_fail "chain_length=2: not leaf + 2 intermediates"
openssl x509 -in "$crt.crt" -out "$T/alt.pem"
openssl verify -CAfile "$P2/roots.pem" -untrusted "$crt.issuer.crt" "$T/alt.pem" >/dev/null ||
	t_fail "the chain does not verify against root 0"
t_expect_fail openssl verify -CAfile "$P2/root-1.pem" -untrusted "$crt.issuer.crt" \
	"$T/alt.pem" >/dev/null 2>&1
start=$(date -d "$(openssl x509 -in "$T/alt.pem" -noout -startdate | cut -d= -f2)" +%s)
end=$(date -d "$(openssl x509 -in "$T/alt.pem" -noout -enddate | cut -d= -f2)" +%s)
[ $((end - start)) = 299 ] || t_fail "validity=300: notAfter - notBefore = $((end - start)) s"

# A start that cannot bind (the ACME port taken): the test fails at once,
# with pebble's own words.
if out=$( (pebble_start "$T/p3" "port=$PEBBLE_PORT") 2>&1); then
	t_fail "pebble_start on a taken port succeeded"
fi
t_assert_contains "$out" '^FAIL: pebble exited: '
t_assert_contains "$out" "listen tcp 127.0.0.1:$PEBBLE_PORT: bind: address already in use"
# ... and leaves nothing running: its challtestsrv was stopped.
cts=$(. "$T/p3/env" && echo "${CHALLTEST_MGMT##*:}")
! ss -Htln "sport = :$cts" | grep -q . || t_fail "a failed pebble_start left challtestsrv on $cts"

t_pass "pebble: loopback, directory, mock DNS and hook, lego with EAB over dns-01 and http-01, refusals, revocation, roots, alternate roots, validity, stop, start failure"
