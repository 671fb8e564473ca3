#!/bin/bash
# Makes the revocation tests' certificates, OCSP requests and responses and
# CRLs with openssl, into a fresh folder ($1). Run by ctest as a fixture
# (FIXTURES_SETUP revocation); test_ocsp_msg and test_crl_msg read the
# folder named by REV_FIXTURES.
#   ca1      EC P-256 CA; leaf (RSA, AIA+CDP), revoked (keyCompromise),
#            revoked2 (no reason), sibling (no OCSPSigning), ocsp (the
#            delegated responder), ocsp_old (an expired responder), unknown
#            (signed by ca1's key, never entered in its index)
#   ca2      RSA CA with its own responder ocsp2
#   evil     a CA with ca1's subject Name and another key
#   self     a self-signed certificate with OCSPSigning
#   p384 p521 rsa4096 rsa1024 k256: self-signed, one per key kind
set -euo pipefail
D=$1
rm -rf "$D"
mkdir -p "$D"
cd "$D"
exec 3>&2 2>"$D/openssl.log"
# openssl's chatter goes to the log; on a failure its end is shown.
trap 'st=$?; [ $st -eq 0 ] || tail -20 "$D/openssl.log" >&3; exit $st' EXIT

cat >ext.cnf <<'X'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, serverAuth
authorityInfoAccess = OCSP;URI:http://ocsp.example.test/ca1, OCSP;URI:http://ocsp2.example.test:8080/, caIssuers;URI:http://example.test/ca1.crt
crlDistributionPoints = URI:http://crl.example.test/ca1.crl, URI:ldap://ldap.example.test/cn=ca1
[sibling]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
[responder]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
X

mkca() { # name, key options, subject, digest
	mkdir -p "$1.db"
	: >"$1.db/index.txt"
	echo 1000 >"$1.db/serial"
	echo 01 >"$1.db/crlnumber"
	cat >"$1.cnf" <<X
[ca]
default_ca = d
[d]
dir = $D/$1.db
database = \$dir/index.txt
serial = \$dir/serial
crlnumber = \$dir/crlnumber
new_certs_dir = \$dir
certificate = $D/$1.pem
private_key = $D/$1.key
default_md = $4
default_days = 30
default_crl_days = 7
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
X
	openssl req -x509 -newkey "$2" $5 -nodes -keyout "$1.key" -out "$1.pem" \
		-subj "$3" -days 365 -"$4" -extensions ca -config ext.cnf
}
mkca ca1 ec "/CN=Test CA 1/O=mtls-agent" sha256 "-pkeyopt ec_paramgen_curve:P-256"
mkca ca2 rsa:2048 "/CN=Test CA 2/O=mtls-agent" sha384 ""
# openssl ca reads -crlexts sections from its own configuration.
cat >>ca1.cnf <<'X'
[crl_idp_plain]
issuingDistributionPoint = critical, @idp_plain
[idp_plain]
fullname = URI:http://crl.example.test/ca1.crl
onlyuser = TRUE
[crl_idp_ca]
issuingDistributionPoint = critical, @idp_ca
[idp_ca]
fullname = URI:http://crl.example.test/ca1-arl.crl
onlyCA = TRUE
[crl_idp_indirect]
issuingDistributionPoint = critical, @idp_indirect
[idp_indirect]
fullname = URI:http://crl.example.test/ca1.crl
indirectCRL = TRUE
[crl_delta]
2.5.29.27 = critical, DER:02:01:01
[crl_unknown_crit]
1.3.6.1.4.1.55555.1 = critical, DER:05:00
X
mkca evil ec "/CN=Test CA 1/O=mtls-agent" sha256 "-pkeyopt ec_paramgen_curve:P-256"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout self.key -out self.pem -subj "/CN=self responder" -days 30 \
	-addext extendedKeyUsage=OCSPSigning

# Self-signed, for the signature algorithms: P-384 and P-521 with SHA-384
# and SHA-512 (taken), RSA-1024 and secp256k1 (refused).
selfsigned() { # name, key options, digest
	openssl req -x509 -newkey $2 -nodes -keyout "$1.key" -out "$1.pem" \
		-subj "/CN=$1" -days 30 -"$3"
}
selfsigned p384 "ec -pkeyopt ec_paramgen_curve:P-384" sha384
selfsigned p521 "ec -pkeyopt ec_paramgen_curve:P-521" sha512
selfsigned rsa4096 rsa:4096 sha512
selfsigned rsa1024 rsa:1024 sha256
selfsigned k256 "ec -pkeyopt ec_paramgen_curve:secp256k1" sha256

issue() { # ca, name, extensions, key options, more ca options...
	local ca=$1 name=$2 ext=$3 key=$4
	shift 4
	openssl req -new -newkey $key -nodes -keyout "$name.key" \
		-out "$name.csr" -subj "/CN=$name.example.test"
	openssl ca -batch -notext -config "$ca.cnf" -extfile ext.cnf \
		-extensions "$ext" -in "$name.csr" -out "$name.pem" "$@"
}
EC="ec -pkeyopt ec_paramgen_curve:P-256"
issue ca1 leaf leaf rsa:2048
issue ca1 revoked leaf "$EC"
issue ca1 revoked2 leaf "$EC"
issue ca1 sibling sibling "$EC" -md sha384
issue ca1 ocsp responder "$EC"
issue ca1 ocsp_old responder "$EC" -startdate 200101000000Z -enddate 200201000000Z
issue ca2 leaf2 leaf "$EC"
issue ca2 ocsp2 responder rsa:2048
issue evil ocsp_evil responder "$EC"
# Signed by ca1 but not in its index: its responder answers "unknown".
openssl req -new -newkey $EC -nodes -keyout unknown.key -out unknown.csr \
	-subj "/CN=unknown.example.test"
openssl x509 -req -in unknown.csr -CA ca1.pem -CAkey ca1.key \
	-set_serial 0x00ab7777 -days 30 -out unknown.pem

# CRLs: ca1 before and after revocations, PEM and DER.
openssl ca -config ca1.cnf -gencrl -out crl_empty.pem
openssl ca -config ca1.cnf -revoke revoked.pem -crl_reason keyCompromise
openssl ca -config ca1.cnf -revoke revoked2.pem
openssl ca -config ca1.cnf -gencrl -out crl.pem
openssl ca -config ca1.cnf -gencrl -crlexts crl_idp_plain \
	-out crl_idp_plain.pem
openssl ca -config ca1.cnf -gencrl -crlexts crl_idp_ca \
	-out crl_idp_ca.pem
openssl ca -config ca1.cnf -gencrl \
	-crlexts crl_idp_indirect -out crl_idp_indirect.pem
openssl ca -config ca1.cnf -gencrl -crlexts crl_delta \
	-out crl_delta.pem
openssl ca -config ca1.cnf -gencrl -crlexts crl_unknown_crit \
	-out crl_unknown_crit.pem
openssl ca -config ca2.cnf -gencrl -md sha512 -out crl_ca2.pem
openssl ca -config evil.cnf -gencrl -out crl_evil.pem
for c in crl_empty crl crl_ca2 crl_evil crl_idp_plain crl_idp_ca crl_idp_indirect crl_delta \
	crl_unknown_crit; do
	openssl crl -in $c.pem -outform DER -out $c.der
done
for c in ca1 ca2 evil self leaf revoked revoked2 sibling ocsp ocsp_old \
	leaf2 ocsp2 ocsp_evil unknown p384 p521 rsa4096 rsa1024 k256; do
	openssl x509 -in $c.pem -outform DER -out $c.der
done

# OCSP requests, with and without a nonce.
openssl ocsp -issuer ca1.pem -cert leaf.pem -reqout req_leaf_nonce.der
openssl ocsp -issuer ca1.pem -cert leaf.pem -no_nonce -reqout req_leaf.der
openssl ocsp -issuer ca1.pem -cert revoked.pem -no_nonce -reqout req_revoked.der
openssl ocsp -issuer ca1.pem -cert unknown.pem -no_nonce -reqout req_unknown.der
openssl ocsp -issuer ca1.pem -sha256 -cert leaf.pem -no_nonce \
	-reqout req_leaf_sha256.der

respond() { # request, response, signer, more options...
	local req=$1 out=$2 signer=$3
	shift 3
	openssl ocsp -index ca1.db/index.txt -CA ca1.pem -rsigner "$signer.pem" \
		-rkey "$signer.key" -reqin "$req" -respout "$out" "$@"
}
respond req_leaf.der resp_issuer.der ca1 -resp_no_certs -ndays 1
respond req_leaf.der resp_issuer_nonext.der ca1 -resp_no_certs
respond req_leaf_nonce.der resp_issuer_nonce.der ca1 -nmin 5
respond req_leaf.der resp_delegated.der ocsp -nmin 5
respond req_leaf.der resp_delegated_bykey.der ocsp -resp_key_id -nmin 5
respond req_leaf.der resp_delegated_nocerts.der ocsp -resp_no_certs -nmin 5
respond req_leaf.der resp_sibling.der sibling -nmin 5
respond req_leaf.der resp_other_ca.der ocsp2 -nmin 5
respond req_leaf.der resp_evil.der ocsp_evil -nmin 5
respond req_leaf.der resp_self.der self -nmin 5
respond req_leaf.der resp_old.der ocsp_old -nmin 5
respond req_revoked.der resp_revoked.der ca1 -resp_no_certs -ndays 1
respond req_unknown.der resp_unknown.der ca1 -resp_no_certs -ndays 1
respond req_leaf_sha256.der resp_sha256.der ca1 -resp_no_certs -ndays 1
# A response for another certificate (ca1's revoked) checked against leaf.
cp resp_revoked.der resp_wrong_cert.der
echo ok >done
