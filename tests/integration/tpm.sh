#!/bin/bash
# The agent with its keys in a TPM 2.0 (swtpm) through tpm2-pkcs11:
#  a. EC P-256: key made on the TPM, CSR and certificate by mtlsctl,
#     key-info sensitive / never extractable; handshakes with openssl
#     s_server over TLS 1.3 and 1.2 sign ECDSA in the TPM.
#  b. RSA-2048: the same; TLS 1.3 signs RSA-PSS, TLS 1.2 RSA PKCS#1 v1.5.
#  c. Renewal by the exec enroller with the new key made in the TPM.
# Every process that used the TPM and ended normally left no transient
# object in it (there is no resource manager in front of swtpm).
#
# Known limitation, reported and checked, not hidden: tpm2-pkcs11 1.9
# refuses the agent's key template with CKR_GENERAL_ERROR ("User specified
# and TPM specified attr mismatch: 0x10a"): it maps a public CKA_VERIFY to
# the TPM's decrypt attribute and CKA_ENCRYPT to its sign attribute, so
# VERIFY=TRUE with a private DECRYPT=FALSE (or a public ENCRYPT=FALSE with
# SIGN=TRUE) contradicts itself; and it leaks two transient objects doing
# so. While `mtlsctl keygen` fails that way, the keys of a and b are made in
# the TPM by pkcs11-tool (--usage-sign, same labels; tpm2-pkcs11 gives them
# decrypt too, and its RSA signatures need that: it signs with
# TPM2_RSA_Decrypt) and c checks how the failed renewal is handled. Once
# keygen works, the test takes the full path (tried with a shim module that
# drops the public CKA_VERIFY/CKA_ENCRYPT and, for RSA, the private
# CKA_DECRYPT=FALSE: it passes).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/tpm.sh"

PIN=tpmPIN-4711xq
t_init tpm
tpm_start "$T/tpm"
tpm_token_init tpmtoken tpmSO-87654321 "$PIN"
printf '%s\n' "$PIN" >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "TPM Test CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
exec_ca=$(cd "$(dirname "$0")/../lib" && pwd)/exec_ca.sh

p13=$(t_free_port)
s_server_start "$T/s13" "$p13" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_3
p12=$(t_free_port)
s_server_start "$T/s12" "$p12" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_2

# conf_tpm FILE [agent lines...]: [agent] and [token tpm] on TPM_MODULE;
# renewal state in $T/state (never the machine's /var/lib/mtls-agent).
conf_tpm() {
	local file=$1
	shift
	{
		printf '[agent]\nlog_level = debug\nstate_dir = %s\nhandshake_timeout = 10s\nshutdown_grace = 3s\n' \
			"$T/state"
		for kv in "$@"; do printf '%s\n' "$kv"; done
		printf '\n[token tpm]\nmodule = %s\nuri = pkcs11:token=%s\npin_source = file:%s\n' \
			"$TPM_MODULE" "$TPM_LABEL" "$T/pin"
	} >"$file"
}
# conf_identity FILE NAME [key=value...]: key NAME-key, cert NAME-cert.
conf_identity() {
	local file=$1 name=$2
	shift 2
	{
		printf '\n[identity %s]\ntoken = tpm\n' "$name"
		printf 'key = pkcs11:object=%s-key;type=private\n' "$name"
		printf 'cert = pkcs11:object=%s-cert;type=cert\nca = %s\n' "$name" "$T/ca/ca.pem"
		for kv in "$@"; do printf '%s\n' "$kv"; done
	} >>"$file"
}
# since START: seconds elapsed, with milliseconds.
since() {
	local now
	now=$(date +%s%N)
	printf '%d.%03d' $(((now - $1) / 1000000000)) $(((now - $1) / 1000000 % 1000))
}
# no_transient WHEN: the TPM holds no transient object.
no_transient() {
	local left
	left=$(tpm_transient | tr '\n' ' ')
	[ -z "$left" ] || t_fail "transient objects left in the TPM $1: $left"
}

# keygen_known_failure OUT ERR WHAT: mtlsctl's or the agent's
# C_GenerateKeyPair failed; it must be the known tpm2-pkcs11 refusal.
keygen_known_failure() {
	grep -q 'C_GenerateKeyPair: CKR_GENERAL_ERROR' "$1" ||
		t_fail "$3 failed otherwise: $(tail -3 "$1")"
	grep -q 'User specified and TPM specified attr mismatch: 0x10a' "$2" ||
		t_fail "$3: not tpm2-pkcs11's CKA_VERIFY mismatch: $(tail -3 "$2")"
}

# keygen NAME TYPE: the key pair NAME-key on the TPM, by mtlsctl if it can.
KEYGEN_WORKS=1
keygen() {
	local name=$1 type=$2 ptype id
	if [ $KEYGEN_WORKS = 0 ]; then
		: # known to fail, see above
	elif "$MTLSCTL" -c "$conf" keygen "$name" --type "$type" \
		>"$T/$name.keygen.out" 2>"$T/$name.keygen.err"; then
		echo "ok: $name: $type key generated in the TPM by mtlsctl keygen"
		return 0
	fi
	if [ $KEYGEN_WORKS = 1 ]; then
		keygen_known_failure "$T/$name.keygen.err" "$T/$name.keygen.err" \
			"mtlsctl keygen $name"
		KEYGEN_WORKS=0
		echo "LIMITATION: mtlsctl keygen $name --type $type:" \
			"$(grep -h 'mtlsctl:' "$T/$name.keygen.err");" \
			"tpm2-pkcs11: $(grep -h 'attr mismatch' "$T/$name.keygen.err");" \
			"transient objects left: $(tpm_transient | tr '\n' ' ')"
		tpm_flush
	fi
	case $type in
	ec-p256) ptype=EC:prime256v1 ;;
	rsa-2048) ptype=rsa:2048 ;;
	esac
	id=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	pkcs11-tool --module "$TPM_MODULE" --token-label "$TPM_LABEL" --login \
		--pin "$PIN" --keypairgen --key-type "$ptype" --usage-sign \
		--id "$id" --label "$name-key" >>"$T/tpm2-pkcs11.log" 2>&1 ||
		t_fail "pkcs11-tool could not make $type key $name-key on the TPM"
	echo "ok: $name: $type key generated in the TPM by pkcs11-tool instead"
}

# provision NAME TYPE SUBJECT: key, CSR (signed in the TPM), certificate
# from the test CA, stored on the token; key-info as the tooling reads it.
provision() {
	local name=$1 type=$2 subject=$3 info want
	keygen "$name" "$type"
	no_transient "after keygen $name"
	"$MTLSCTL" -c "$conf" csr "$name" --subject "$subject" -o "$T/$name.csr" \
		>"$T/$name.csr.out" 2>"$T/$name.csr.err" ||
		t_fail "mtlsctl csr $name: $(cat "$T/$name.csr.err")"
	pki_sign_csr "$T/ca" "$T/$name.csr" "$T/$name.pem" >/dev/null
	"$MTLSCTL" -c "$conf" import-cert "$name" "$T/$name.pem" \
		>"$T/$name.import.out" 2>"$T/$name.import.err" ||
		t_fail "mtlsctl import-cert $name: $(cat "$T/$name.import.err")"
	info=$("$MTLSCTL" -c "$conf" key-info "$name" 2>"$T/$name.info.err") ||
		t_fail "mtlsctl key-info $name: $(cat "$T/$name.info.err")"
	for want in "token: yes" "private: yes" "sensitive: yes" "extractable: no" \
		"always_sensitive: yes" "never_extractable: yes"; do
		grep -qx "$want" <<<"$info" || t_fail "key-info $name lacks '$want': $info"
	done
	# tpm2-pkcs11 signs RSA through TPM2_RSA_Decrypt: only there does an
	# RSA key keep CKA_DECRYPT.
	case $type in rsa-*) want="decrypt: yes" ;; *) want="decrypt: no" ;; esac
	grep -qx "$want" <<<"$info" || t_fail "key-info $name lacks '$want': $info"
	no_transient "after mtlsctl csr, import-cert and key-info of $name"
	echo "ok: $name: CSR signed in the TPM, certificate stored, key sensitive and never extractable"
}

# check SOCKET CN PROTOCOL SIGTYPE: s_server's page through the tunnel.
check() {
	local page detail
	page=$(curl -sS --max-time 60 --unix-socket "$1" http://localhost/ 2>&1) || {
		detail=$(grep 'result=fail' "$T/agent.log" | tail -1)
		t_fail "$1: no page ($page); agent: $detail"
	}
	grep -qE "Subject: CN ?= ?$2\$" <<<"$page" ||
		t_fail "$1: s_server did not report client CN $2"
	grep -q "Protocol *: *$3" <<<"$page" || t_fail "$1: not $3"
	grep -q "^Peer signature type: $4\$" <<<"$page" ||
		t_fail "$1: signature type $(grep 'Peer signature type' <<<"$page"), want $4"
	echo "ok: $1 $2 $3 $4"
}

# a and b: one agent, both identities: two keys loaded in the TPM at once.
# That is swtpm's limit without a resource manager: with two loaded, a
# third key's Esys_Load fails "out of memory for object contexts" (the
# handshake: C_Sign: CKR_GENERAL_ERROR).
conf=$T/agent.conf
conf_tpm "$conf" "resume = no"
conf_identity "$conf" ec
conf_identity "$conf" rsa
for id in ec rsa; do
	agent_conf_tunnel "$conf" ${id}13 "$T/${id}13.sock" "localhost:$p13" $id
	agent_conf_tunnel "$conf" ${id}12 "$T/${id}12.sock" "localhost:$p12" $id
done
start=$(date +%s%N)
provision ec ec-p256 CN=tpm-ec
provision rsa rsa-2048 CN=tpm-rsa
agent_start "$conf"
check "$T/ec13.sock" tpm-ec TLSv1.3 ECDSA
check "$T/ec12.sock" tpm-ec TLSv1.2 ECDSA
check "$T/rsa13.sock" tpm-rsa TLSv1.3 RSA-PSS
check "$T/rsa12.sock" tpm-rsa TLSv1.2 RSA
n=$(grep -c 'event=handshake .*result=ok .*resumed=0 token_signs=1' "$T/agent.log" || true)
[ "$n" -eq 4 ] || t_fail "expected 4 full handshakes signed in the TPM, saw $n"
agent_stop || t_fail "mtls-agent did not stop cleanly"
no_transient "after the agent stopped (SIGTERM)"
echo "ok: a+b in $(since "$start") s; the agent left no transient object"

# c. Renewal: 600 s certificates renewed 597 s before expiry, i.e. 3 s
# after issue (exec_ca.sh back-dates notBefore by a minute).
conf=$T/agent-renew.conf
# Resumption on: after a failed renewal, a resumed session needs no key.
conf_tpm "$conf" "resume = yes"
conf_identity "$conf" dev "enroll = exec" "exec = $exec_ca $T/ca 600" \
	"issuer_ca = $T/ca/ca.pem" "subject = CN=tpm-device" "key_type = ec-p256" \
	"renew_before = 597s" "renew_jitter = 0" "retry_min = 1s" "retry_max = 2s"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$p13" dev
agent_conf_tunnel "$conf" late "$T/late.sock" "localhost:$p12" dev
start=$(date +%s%N)

if [ $KEYGEN_WORKS = 1 ]; then
	"$MTLSCTL" -c "$conf" enroll dev >"$T/enroll.out" 2>"$T/enroll.err" ||
		t_fail "mtlsctl enroll dev: $(cat "$T/enroll.err")"
	t_assert_contains "$T/enroll.out" 'generation 1 in service'
	no_transient "after mtlsctl enroll"
	agent_start "$conf"
	check "$T/web.sock" tpm-device TLSv1.3 ECDSA
	agent_log_wait 'event=renewed identity=dev generation=2' 90
	check "$T/late.sock" tpm-device TLSv1.2 ECDSA
	echo "transient objects in the TPM while the renewed agent runs: $(tpm_transient | tr '\n' ' ')"
	agent_stop || t_fail "mtls-agent did not stop cleanly"
	no_transient "after the renewing agent stopped"
	# Listed once the agent is gone: it may hold all of swtpm's object
	# slots, and pkcs11-tool's login needs some.
	keys=$(tpm_privkeys | sort | tr '\n' ' ')
	[[ " $keys" == *" dev-g2 "* ]] || t_fail "no key dev-g2 on the TPM token: $keys"
	echo "ok: private keys on the token: $keys"
	t_pass "TPM: EC and RSA keys made, used (ECDSA, RSA-PSS, RSA) and renewed in the TPM in $(since "$start") s"
	exit 0
fi

# The agent's renewal makes its key with the same template: it fails the
# same way. Check that it is reported with the CK_RV, that nothing is left
# half-made, and what it does to the identity in service.
"$MTLSCTL" -c "$conf" enroll dev >"$T/enroll.out" 2>"$T/enroll.err" &&
	t_fail "mtlsctl enroll dev worked although keygen did not"
keygen_known_failure "$T/enroll.err" "$T/enroll.err" "mtlsctl enroll dev"
echo "LIMITATION: mtlsctl enroll dev: $(grep -h 'mtlsctl:' "$T/enroll.err")"
tpm_flush
# Generation 0 by hand instead: a 600 s certificate from the same enroller.
keygen dev ec-p256
"$MTLSCTL" -c "$conf" csr dev --subject CN=tpm-device -o "$T/dev.csr" \
	>"$T/dev.csr.out" 2>"$T/dev.csr.err" || t_fail "mtlsctl csr dev: $(cat "$T/dev.csr.err")"
"$exec_ca" "$T/ca" 600 <"$T/dev.csr" >"$T/dev.pem" || t_fail "exec_ca.sh did not issue"
"$MTLSCTL" -c "$conf" import-cert dev "$T/dev.pem" >"$T/dev.import.out" 2>&1 ||
	t_fail "mtlsctl import-cert dev: $(cat "$T/dev.import.out")"
no_transient "after provisioning dev"
agent_start "$conf"
check "$T/web.sock" tpm-device TLSv1.3 ECDSA
agent_log_wait 'event=renew_failed identity=dev reason=token_error failures=1 .*C_GenerateKeyPair: CKR_GENERAL_ERROR' 90
line=$(grep -m1 'event=renew_failed' "$T/agent.log")
echo "LIMITATION: agent renewal: level=${line#*level=}"
# The second attempt: the agent closed the session the first failure came
# back on, the last one open, which ends the login (and tpm2-pkcs11 flushes
# the loaded key); it keeps believing it is logged in.
agent_log_wait 'event=renew_failed identity=dev reason=token_error failures=2 ' 90
line=$(grep -m1 'event=renew_failed identity=dev .*failures=2 ' "$T/agent.log")
if grep -q 'C_GenerateKeyPair: CKR_USER_NOT_LOGGED_IN' <<<"$line"; then
	echo "AGENT BUG: stale login after the last session was closed: level=${line#*level=}"
else
	echo "second renewal attempt: level=${line#*level=}"
fi
grep -qx 'step=idle' "$T/state/dev.state" || t_fail "renewal state not idle"
grep -qx 'generation=0' "$T/state/dev.state" || t_fail "generation changed"
# The tunnel still answers over the session resumed from the first request
# (no signature needed).
agent_log_mark
page=$(curl -sS --max-time 60 --unix-socket "$T/web.sock" http://localhost/ 2>&1) ||
	t_fail "web.sock after the failed renewals: $page"
grep -qE 'Subject: CN ?= ?tpm-device$' <<<"$page" || t_fail "web.sock: no client CN"
agent_log_wait 'event=handshake conn=[0-9]+ tunnel=web result=ok .*resumed=1 token_signs=0'
echo "ok: the tunnel still answers after the failed renewals (resumed session, no signature)"
# A full handshake needs the key in the TPM again: report what happens.
agent_log_mark
if page=$(curl -sS --max-time 60 --unix-socket "$T/late.sock" http://localhost/ 2>&1) &&
	grep -qE 'Subject: CN ?= ?tpm-device$' <<<"$page"; then
	echo "ok: a full handshake after the failed renewals still signs in the TPM"
else
	agent_log_wait 'event=handshake conn=[0-9]+ tunnel=late result=fail'
	line=$(tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -m1 'tunnel=late result=fail')
	grep -q 'C_Login: CKR_GENERAL_ERROR' <<<"$line" ||
		t_fail "full handshake after the failed renewals: $line"
	echo "LIMITATION: full handshake after the failed renewals (no room in the TPM to log in again): level=${line#*level=}"
fi
agent_stop || t_fail "mtls-agent did not stop cleanly"
echo "transient objects left after the agent stopped: $(tpm_transient | tr '\n' ' ')(tpm2-pkcs11's failed C_GenerateKeyPair)"
tpm_flush
# Nothing half-made on the token (the listing needs a TPM with room: after
# the flush).
keys=$(tpm_privkeys | sort | tr '\n' ' ')
[ "$keys" = "dev-key ec-key rsa-key " ] ||
	t_fail "the failed renewals left keys behind: $keys"
echo "ok: private keys on the token: $keys"
t_pass "TPM: ECDSA, RSA-PSS and RSA signed in the TPM; key generation by the agent refused by tpm2-pkcs11 (CKR_GENERAL_ERROR), reported, nothing half-made ($(since "$start") s for c)"
