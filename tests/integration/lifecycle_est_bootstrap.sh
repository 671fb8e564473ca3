#!/bin/bash
# EST bootstrap with a certificate already on the token (RFC 7030 3.3.2,
# 2.2: a manufacturer's, IDevID-like): a "Manufacturer CA" certified a key
# that pkcs11-tool made on the token (CSR through libp11, certificate
# written back by pkcs11-tool under the key's CKA_ID). With
# est_bootstrap_key/est_bootstrap_cert and no est_user, the first
# /simpleenroll authenticates by TLS client certificate, for a NEW key made
# on the token; the tunnel then shows the enrolled identity, the renewal
# uses /simplereenroll with it, and the bootstrap key and certificate stay
# on the token. Refusals: a bootstrap certificate of an unknown CA (403,
# named), a certificate that is not the key's (refused before any request),
# half of the pair (config error with file:line), key_ids holding the
# bootstrap key's CKA_ID (refused before any key is made).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/est.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init lifecycle_est_bootstrap
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "EST CA"
pki_ca "$T/mfg" "Manufacturer CA"
pki_ca "$T/rogue" "Rogue CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"

# mfg_provision NAME ID CADIR SUBJECT: what a factory does: a key made on
# the token (pkcs11-tool), its CSR signed there (libp11), the certificate
# from CADIR written to the token under the same CKA_ID. Leaves $T/NAME.pem.
mfg_provision() {
	local name=$1 id=$2 ca=$3 subj=$4
	softhsm_keygen_tool EC:prime256v1 "$id" "$name-key"
	PKCS11_MODULE_PATH=$SOFTHSM_MODULE openssl req -new -engine pkcs11 \
		-keyform engine -subj "$subj" \
		-key "pkcs11:token=itoken;object=$name-key;type=private;pin-value=tPIN-4711xq" \
		-out "$T/$name.csr" >>"$T/req.log" 2>&1 || t_fail "CSR of $name: see $T/req.log"
	pki_sign_csr "$ca" "$T/$name.csr" "$T/$name.pem" >/dev/null
	openssl x509 -in "$T/$name.pem" -outform DER -out "$T/$name.der"
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label itoken --login \
		--pin tPIN-4711xq --write-object "$T/$name.der" --type cert \
		--id "$id" --label "$name-cert" >>"$T/pkcs11-tool.log" 2>&1 ||
		t_fail "pkcs11-tool could not write the certificate of $name"
}
mfg_provision mfg b007 "$T/mfg" "/O=Acme Devices/CN=mfg-device-0042"
mfg_provision rogue b00f "$T/rogue" "/CN=rogue-device"

objects() { # the token's objects, as pkcs11-tool lists them
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label itoken --login \
		--pin tPIN-4711xq --list-objects 2>/dev/null
}
# has_object LISTING TYPE LABEL [ID]: an object of that type and label (and
# CKA_ID, in hex).
has_object() {
	awk -v t="$2" -v l="$3" -v id="${4:-}" '
		/Object;/ { type = $0; label = ""; next }
		/label:/ { sub(/^[ \t]*label:[ \t]*/, ""); label = $0; next }
		/ID:/ { if (index(type, t) && label == l && (id == "" || $2 == id)) found = 1 }
		END { exit !found }' <<<"$1"
}
before=$(objects)
has_object "$before" "Private Key Object" mfg-key b007 || t_fail "no manufacturer key: $before"
has_object "$before" "Certificate Object" mfg-cert b007 || t_fail "no manufacturer certificate: $before"

# The EST responder trusts the Manufacturer CA for simpleenroll only; the
# mTLS server trusts the EST CA only.
mkdir -p "$T/est"
cp "$T/mfg/ca.pem" "$T/est/bootstrap-ca.pem"
est_port=$(t_free_port)
est_start "$T/est" "$est_port" "$T/ca" "$T/server.pem" "$T/server.key"
# Ten-minute certificates renewed 10 s after issue (lifecycle_est.sh).
echo 10 >"$T/est/minutes"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"

# est_identity FILE NAME BOOTSTRAP_KEY BOOTSTRAP_CERT ISSUER_CA [key=value...]
est_identity() {
	local file=$1 name=$2 bkey=$3 bcert=$4 issuer=$5
	shift 5
	cat >>"$file" <<-EOF

	[identity $name]
	token = soft
	key = pkcs11:object=$name-key;type=private
	cert = pkcs11:object=$name-cert;type=cert
	ca = $T/ca/ca.pem
	enroll = est
	est_url = https://localhost:$est_port/.well-known/est
	est_ca = $T/ca/ca.pem
	est_bootstrap_key = $bkey
	est_bootstrap_cert = $bcert
	issuer_ca = $issuer
	subject = CN=est-$name
	renew_before = 590s
	renew_jitter = 0
	retry_min = 2s
	retry_max = 4s
	EOF
	for kv in "$@"; do printf '%s\n' "$kv" >>"$file"; done
}

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
est_identity "$conf" device "pkcs11:object=mfg-key;type=private" \
	"pkcs11:object=mfg-cert;type=cert" "$T/state/issuers.pem" \
	"sans = DNS:est-device.example"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" device
! grep -q '^est_user' "$conf" || t_fail "the test config has HTTP Basic"

# The first enrollment: /cacerts, then simpleenroll with the
# manufacturer's certificate as TLS client certificate.
"$MTLSCTL" -c "$conf" enroll device >"$T/enroll.out" 2>"$T/enroll.err" ||
	t_fail "enroll with the bootstrap certificate: $(cat "$T/enroll.err")"
t_assert_contains "$T/enroll.out" 'generation 1 in service'
t_assert_contains "$T/est/est.log" ' cacerts 200 - auth=none$'
t_assert_contains "$T/est/est.log" \
	' simpleenroll 200 CN=est-device auth=cert client=CN=mfg-device-0042,O=Acme%20Devices$'
! grep -q 'auth=basic' "$T/est/est.log" || t_fail "HTTP Basic was used: $(cat "$T/est/est.log")"
# A new key, made on the token, not the manufacturer's.
openssl x509 -in "$T/est/last.pem" -noout -pubkey >"$T/g1.pub"
openssl x509 -in "$T/mfg.pem" -noout -pubkey >"$T/mfg.pub"
! cmp -s "$T/g1.pub" "$T/mfg.pub" || t_fail "the bootstrap key was enrolled"
g1_id=$(sed -n 's/^key_id=//p' "$T/state/device.state")
[ -n "$g1_id" ] && [ "$g1_id" != b007 ] || t_fail "generation 1 key id: '$g1_id'"
has_object "$(objects)" "Private Key Object" device-g1 "$g1_id" ||
	t_fail "no generation 1 key on the token: $(objects)"
echo "ok: first enrollment authenticated by the manufacturer's certificate (auth=cert), new key $g1_id"

# The agent uses the enrolled identity: nginx (EST CA only) sees its DN.
agent_start "$conf"
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=est-device verify=SUCCESS"* ]] || t_fail "generation 1: $out"
echo "ok: the tunnel shows the enrolled identity: $out"

# The renewal (due 10 s after issue): simplereenroll with the identity in
# service, not the bootstrap certificate.
agent_log_wait 'event=renewed identity=device generation=2' 90
t_assert_contains "$T/est/est.log" \
	' simplereenroll 200 CN=est-device auth=cert client=CN=est-device$'
! grep -q 'simplereenroll .*client=CN=mfg-device' "$T/est/est.log" ||
	t_fail "the bootstrap certificate was used to renew"
out=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out == *"dn=CN=est-device verify=SUCCESS"* ]] || t_fail "generation 2: $out"
agent_stop
after=$(objects)
has_object "$after" "Private Key Object" mfg-key b007 || t_fail "manufacturer key gone: $after"
has_object "$after" "Certificate Object" mfg-cert b007 || t_fail "manufacturer certificate gone: $after"
echo "ok: renewed by simplereenroll; the bootstrap key and certificate are still on the token"

# Refusals, each its own identity (a config of their own: the agent above
# must not load identities that never enrolled).
neg=$T/neg.conf
agent_conf_token "$neg" itoken "$T/pin"
est_identity "$neg" rogue "pkcs11:object=rogue-key;type=private" \
	"pkcs11:object=rogue-cert;type=cert" "$T/ca/ca.pem"
# The rogue key with the manufacturer's certificate (a PEM file).
est_identity "$neg" mismatch "pkcs11:object=rogue-key;type=private" \
	"$T/mfg.pem" "$T/ca/ca.pem"
est_identity "$neg" clash "pkcs11:object=mfg-key;type=private" \
	"pkcs11:object=mfg-cert;type=cert" "$T/ca/ca.pem" "key_ids = 0a, b007"

# A bootstrap certificate of an unknown CA: the server's 403, named.
t_expect_fail "$MTLSCTL" -c "$neg" enroll rogue >"$T/rogue.out" 2>"$T/rogue.err"
t_assert_contains "$T/rogue.err" 'simpleenroll answered 403'
t_assert_contains "$T/rogue.err" 'refused the bootstrap certificate \(subject /CN=rogue-device, issuer /CN=Rogue CA\)'
t_assert_contains "$T/est/est.log" ' simpleenroll 403 - auth=none client=CN=rogue-device$'
! grep -q 'CN=est-rogue' "$T/est/est.log" || t_fail "a certificate was issued for rogue"
! has_object "$(objects)" "Certificate Object" rogue-g1 || t_fail "a certificate for rogue is on the token"
t_assert_contains "$T/state/rogue.state" '^generation=0$'
echo "ok: a bootstrap certificate of an unknown CA: $(cat "$T/rogue.err")"

# A certificate that does not belong to the bootstrap key: refused here,
# before any request.
lines=$(wc -l <"$T/est/est.log")
t_expect_fail "$MTLSCTL" -c "$neg" enroll mismatch >"$T/mismatch.out" 2>"$T/mismatch.err"
t_assert_contains "$T/mismatch.err" 'bootstrap identity \(est_bootstrap_key, est_bootstrap_cert\)'
t_assert_contains "$T/mismatch.err" 'does not belong to key pkcs11:object=rogue-key'
[ "$(wc -l <"$T/est/est.log")" = "$lines" ] || t_fail "a request was sent: $(tail -n +$((lines + 1)) "$T/est/est.log")"
echo "ok: a certificate of another key: $(cat "$T/mismatch.err")"

# key_ids holding the bootstrap key's CKA_ID: refused before any key is made.
t_expect_fail "$MTLSCTL" -c "$neg" enroll clash >"$T/clash.out" 2>"$T/clash.err"
t_assert_contains "$T/clash.err" 'key_ids holds b007, the CKA_ID of est_bootstrap_key'
! objects | grep -q 'clash' || t_fail "a key was made for clash: $(objects)"
[ "$(wc -l <"$T/est/est.log")" = "$lines" ] || t_fail "a request was sent for clash"
echo "ok: key_ids with the bootstrap key's id: $(cat "$T/clash.err")"

# Half of the pair: a config error naming file and line.
grep -v '^est_bootstrap_cert' "$conf" >"$T/half.conf"
line=$(grep -n '^est_bootstrap_key' "$T/half.conf" | cut -d: -f1)
t_expect_fail "$MTLSCTL" -c "$T/half.conf" enroll device >"$T/half.out" 2>"$T/half.err"
t_assert_contains "$T/half.err" "$T/half.conf:$line: \[identity device\]: est_bootstrap_key= and est_bootstrap_cert= go together"
t_expect_fail timeout 60 "$MTLS_AGENT" -c "$T/half.conf" >"$T/half-agent.out" 2>"$T/half-agent.err"
t_assert_contains "$T/half-agent.err" "$T/half.conf:$line: \[identity device\]: est_bootstrap_key="
echo "ok: half of the pair: $(cat "$T/half.err")"

after=$(objects)
has_object "$after" "Private Key Object" mfg-key b007 || t_fail "manufacturer key gone: $after"
has_object "$after" "Certificate Object" mfg-cert b007 || t_fail "manufacturer certificate gone: $after"
t_pass "EST bootstrap with a manufacturer's certificate on the token"
