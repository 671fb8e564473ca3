#!/bin/bash
# The fixtures themselves, without the agent: CA, server certificates (good,
# expired, wrong name, unknown CA), SoftHSM keys made by pkcs11-tool, curl
# with libp11's engine against nginx and s_server, revocation with a CRL,
# and t_cleanup stopping servers and removing $T.
set -euo pipefail
LIB=$(dirname "$0")/../lib
. "$LIB/common.sh"
. "$LIB/softhsm.sh"
. "$LIB/pki.sh"
. "$LIB/servers.sh"

t_init selftest_fixtures
softhsm_init ftok 87654321 tPIN-4711xq
softhsm_keygen_tool EC:prime256v1 01 eckey
softhsm_keygen_tool rsa:2048 02 rsakey

pki_ca "$T/ca" "Fixture CA"
pki_ca "$T/other" "Other CA"
pki_server_cert "$T/ca" "$T/good" localhost "DNS:localhost,IP:127.0.0.1"
pki_server_cert "$T/ca" "$T/expired" localhost "DNS:localhost" expired
pki_server_cert "$T/ca" "$T/wrongname" other.example "DNS:other.example"
pki_server_cert "$T/other" "$T/foreign" localhost "DNS:localhost"
ca=$T/ca/ca.pem
openssl verify -CAfile "$ca" -purpose sslserver "$T/good.pem" >/dev/null
t_expect_fail openssl verify -CAfile "$ca" "$T/expired.pem" >/dev/null 2>&1
t_expect_fail openssl verify -CAfile "$ca" "$T/foreign.pem" >/dev/null 2>&1
t_assert_contains "$(openssl x509 -in "$T/expired.pem" -noout -enddate)" \
	'notAfter=Jan  2 00:00:00 2020 GMT'

# Client certificates for keys made on the token by pkcs11-tool: the CSRs
# are signed through libp11 (self-check only; the agent has mtlsctl csr).
for k in eckey rsakey; do
	PKCS11_MODULE_PATH=$SOFTHSM_MODULE openssl req -new -engine pkcs11 \
		-keyform engine -subj "/CN=fx-$k/O=Fixtures" \
		-key "pkcs11:token=ftok;object=$k;type=private;pin-value=tPIN-4711xq" \
		-addext "subjectAltName=DNS:$k.example" -out "$T/$k.csr" \
		>>"$T/req.log" 2>&1
	pki_sign_csr "$T/ca" "$T/$k.csr" "$T/$k.pem"
done
info=$(openssl x509 -in "$T/eckey.pem" -noout -subject -ext subjectAltName,extendedKeyUsage)
t_assert_contains "$info" 'subject=CN = fx-eckey, O = Fixtures'
t_assert_contains "$info" 'DNS:eckey.example'
t_assert_contains "$info" 'TLS Web Client Authentication'
pki_client_file_cert "$T/ca" "$T/filecli" filecli
pki_client_file_cert "$T/other" "$T/stranger" stranger
file_curl() { curl -sS --max-time 30 --cacert "$ca" --cert "$T/filecli.pem" --key "$T/filecli.key" "$@"; }

# nginx: the DN that it verified (RFC 2253: last RDN first), for the token
# keys and the file key.
ngx=$(t_free_port)
nginx_start "$T/ngx" "$ngx" "$ca" "$T/good.pem" "$T/good.key"
t_wait_file "$T/ngx/nginx.pid" 1
listening=$(ss -Htln | awk -v p=":$ngx" '$4 ~ p"$" {print $4}')
[ "$listening" = "127.0.0.1:$ngx" ] || t_fail "nginx listens on: $listening"
out=$(curl_p11 ftok eckey tPIN-4711xq "$T/eckey.pem" "$ca" "https://localhost:$ngx/")
t_assert_contains "$out" '^dn=O=Fixtures,CN=fx-eckey verify=SUCCESS proto=TLSv1.3$'
echo "nginx, curl+libp11 EC: $out"
out=$(curl_p11 ftok rsakey tPIN-4711xq "$T/rsakey.pem" "$ca" "https://127.0.0.1:$ngx/" --tls-max 1.2)
t_assert_contains "$out" '^dn=O=Fixtures,CN=fx-rsakey verify=SUCCESS proto=TLSv1.2$'
t_assert_contains "$(file_curl "https://localhost:$ngx/")" '^dn=CN=filecli verify=SUCCESS'
t_assert_contains "$(file_curl --data-binary 'echo me' "https://localhost:$ngx/echo")" '^echo me$'
code=$(curl -sS --cacert "$ca" -o /dev/null -w '%{http_code}' "https://localhost:$ngx/")
[ "$code" = 400 ] || t_fail "nginx without a client certificate answered $code"
code=$(curl -sS --cacert "$ca" --cert "$T/stranger.pem" --key "$T/stranger.key" \
	-o /dev/null -w '%{http_code}' "https://localhost:$ngx/")
[ "$code" = 400 ] || t_fail "nginx with an unknown client CA answered $code"

# s_server: the client subject and protocol on the -www page; TLS 1.2 only.
s13=$(t_free_port)
s_server_start "$T/s13" "$s13" "$ca" "$T/good.pem" "$T/good.key"
page=$(curl_p11 ftok eckey tPIN-4711xq "$T/eckey.pem" "$ca" "https://localhost:$s13/")
t_assert_contains "$page" '^ +Subject: CN=fx-eckey, O=Fixtures$'
t_assert_contains "$page" '^ +Protocol +: TLSv1.3$'
t_assert_contains "$page" '^Peer signature type: ECDSA$'
echo "s_server, curl+libp11 EC: $(grep -E '^ +(Subject|Protocol) *:' <<<"$page" | tr -s ' ' | tr '\n' ';')"
s12=$(t_free_port)
s_server_start "$T/s12" "$s12" "$ca" "$T/good.pem" "$T/good.key" -tls1_2
page=$(curl_p11 ftok rsakey tPIN-4711xq "$T/rsakey.pem" "$ca" "https://localhost:$s12/")
t_assert_contains "$page" '^ +Subject: CN=fx-rsakey, O=Fixtures$'
t_assert_contains "$page" '^ +Protocol +: TLSv1.2$'
t_expect_fail curl -sS --max-time 30 --cacert "$ca" "https://localhost:$s13/" -o /dev/null 2>/dev/null

# Bad server certificates, as an ordinary client sees them.
bad_server() { # NAME CURL_ERROR_PATTERN
	local p
	p=$(t_free_port)
	s_server_start "$T/s-$1" "$p" "$ca" "$T/$1.pem" "$T/$1.key"
	t_expect_fail file_curl -o /dev/null "https://localhost:$p/" 2>"$T/curl-$1.err"
	t_assert_contains "$T/curl-$1.err" "$2"
}
bad_server expired 'certificate has expired'
bad_server wrongname 'no alternative certificate subject name matches'
bad_server foreign 'unable to get local issuer certificate'

# Revocation: nginx with the CRL answers 400 to the revoked EC client, 200
# to the others; s_server with -crl_check refuses it in the handshake.
pki_revoke "$T/ca" "$T/eckey.pem"
pki_crl "$T/ca"
t_assert_contains "$(openssl crl -in "$T/ca/crl.pem" -noout -text)" 'Serial Number: '"$(openssl x509 -in "$T/eckey.pem" -noout -serial | cut -d= -f2)"
crl=$(t_free_port)
nginx_start "$T/ngx-crl" "$crl" "$ca" "$T/good.pem" "$T/good.key" "$T/ca/crl.pem"
code=$(curl_p11 ftok eckey tPIN-4711xq "$T/eckey.pem" "$ca" "https://localhost:$crl/" -o /dev/null -w '%{http_code}')
[ "$code" = 400 ] || t_fail "nginx with the CRL answered $code to a revoked client"
t_assert_contains "$(curl_p11 ftok rsakey tPIN-4711xq "$T/rsakey.pem" "$ca" "https://localhost:$crl/")" 'verify=SUCCESS'
t_assert_contains "$(file_curl "https://localhost:$crl/")" 'verify=SUCCESS'
scrl=$(t_free_port)
s_server_start "$T/s-crl" "$scrl" "$ca" "$T/good.pem" "$T/good.key" -crl_check -CRL "$T/ca/crl.pem"
t_expect_fail curl_p11 ftok eckey tPIN-4711xq "$T/eckey.pem" "$ca" "https://localhost:$scrl/" -o /dev/null 2>/dev/null
t_assert_contains "$(file_curl "https://localhost:$scrl/")" 'Subject: CN=filecli'
t_assert_contains "$T/s-crl/s_server.log" 'certificate revoked'

# t_cleanup in a child test: servers stopped (also one started inside
# $(...)), $T removed, or kept on failure with MTLS_KEEP=1 (and the logs'
# tails printed).
child() { # EXIT_CODE: prints the child's $T and its two ports
	bash -c 'set -euo pipefail; . "$1/common.sh"; . "$1/pki.sh"; . "$1/servers.sh"
		t_init selftest_child
		pki_server_cert "$2" "$T/srv" localhost DNS:localhost
		p=$(t_free_port)
		s_server_start "$T/s" "$p" "$2/ca.pem" "$T/srv.pem" "$T/srv.key"
		q=$(p=$(t_free_port); s_server_start "$T/q" "$p" "$2/ca.pem" \
			"$T/srv.pem" "$T/srv.key"; echo "$p")
		t_on_exit "false \$UNSET_VAR" # runs first; must not stop the rest
		echo "$T $p $q"
		exit "$3"' child "$LIB" "$T/ca" "$1"
}
stopped() { # PORT...
	local p
	for p; do
		! ss -Htln "sport = :$p" | grep -q . || t_fail "port $p still listens"
	done
}
child 0 >"$T/child0.out"
read -r cdir cport cport2 <"$T/child0.out"
[ -n "$cport2" ] && [ ! -e "$cdir" ] || t_fail "child's \$T left behind: $cdir"
stopped "$cport" "$cport2"
MTLS_KEEP=1 t_expect_fail child 1 >"$T/child1.out" 2>"$T/child.err"
read -r cdir cport cport2 <"$T/child1.out"
[ -d "$cdir" ] || t_fail "MTLS_KEEP=1 did not keep $cdir"
rm -rf "$cdir"
t_assert_contains "$T/child.err" "kept $cdir"
t_assert_contains "$T/child.err" "tail of $cdir/s/s_server.log"
stopped "$cport" "$cport2"

t_pass "fixtures: CA, server certificates, SoftHSM keys, nginx, s_server, CRL, cleanup"
