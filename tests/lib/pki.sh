# A development CA made with the openssl command line only: it issues,
# revokes and publishes CRLs. Server and client certificates for the tests.
# openssl's chatter goes to CADIR/pki.log (shown by t_cleanup on failure).

# pki_ca DIR NAME: DIR/ca.key (EC P-256), DIR/ca.pem, DIR/ca.cnf + database.
pki_ca() {
	local dir=$1 name=$2
	mkdir -p "$dir/certs"
	dir=$(cd "$dir" && pwd)
	: >"$dir/index.txt"
	echo 1000 >"$dir/serial"
	echo 1000 >"$dir/crlnumber"
	# Self-contained: nothing is read from the system's openssl.cnf.
	# An all-optional policy + _pki_issue's -preserveDN: subjects are the
	# CSR's, fields and order as they are ("preserve = yes" in this file had
	# no effect with openssl 3.0.19: fields were reordered and dropped).
	# copy_extensions = copy keeps the CSR's SANs; where the CSR asks for an
	# extension that an *_ext section sets (CA:true, key usages), ours wins.
	cat >"$dir/ca.cnf" <<-EOF
	[ ca ]
	default_ca = test_ca
	[ test_ca ]
	dir = $dir
	database = $dir/index.txt
	new_certs_dir = $dir/certs
	serial = $dir/serial
	crlnumber = $dir/crlnumber
	certificate = $dir/ca.pem
	private_key = $dir/ca.key
	default_md = sha256
	default_days = 30
	default_crl_days = 30
	policy = policy_any
	unique_subject = no
	copy_extensions = copy
	[ policy_any ]
	countryName = optional
	organizationName = optional
	organizationalUnitName = optional
	commonName = optional
	[ req ]
	distinguished_name = req_dn
	prompt = no
	[ req_dn ]
	CN = unused
	[ v3_ca ]
	basicConstraints = critical, CA:true
	keyUsage = critical, keyCertSign, cRLSign
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid:always
	[ server_ext ]
	basicConstraints = critical, CA:false
	keyUsage = critical, digitalSignature, keyEncipherment
	extendedKeyUsage = serverAuth
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid
	[ client_ext ]
	basicConstraints = critical, CA:false
	keyUsage = critical, digitalSignature
	extendedKeyUsage = clientAuth
	subjectKeyIdentifier = hash
	authorityKeyIdentifier = keyid
	EOF
	openssl req -config "$dir/ca.cnf" -x509 -new -extensions v3_ca \
		-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 \
		-subj "/CN=$name" 2>>"$dir/pki.log" ||
		t_fail "pki_ca $name: see $dir/pki.log"
}

# _pki_issue CADIR EXT CSR OUT DATES...: one `openssl ca` issuance.
_pki_issue() {
	local ca=$1 ext=$2 csr=$3 out=$4
	shift 4
	openssl ca -batch -preserveDN -config "$ca/ca.cnf" -extensions "$ext" "$@" \
		-in "$csr" -out "$out" -notext 2>>"$ca/pki.log" ||
		t_fail "openssl ca could not sign $csr: see $ca/pki.log"
}

# pki_server_cert CADIR OUTPREFIX CN SAN [DAYS|expired|"START END"]:
# OUTPREFIX.key/.pem with EKU serverAuth; SAN like "DNS:localhost,IP:127.0.0.1".
# expired = valid only on 2020-01-01; START/END as YYYYMMDDHHMMSSZ.
pki_server_cert() {
	pki_server_cert_as "$1" "$2" "/CN=$3" "$4" ec "${5:-30}"
}

# pki_server_cert_as CADIR OUTPREFIX SUBJECT SAN KEY [DAYS|expired|"START END"]:
# the same with a subject like "/O=Corp/CN=x" and KEY "ec" (P-256) or
# "rsa:BITS". CADIR may be an intermediate (pki_intermediate).
pki_server_cert_as() {
	local ca=$1 out=$2 subj=$3 san=$4 key=$5 when=${6:-30} dates newkey
	case $when in
	expired) dates=(-startdate 20200101000000Z -enddate 20200102000000Z) ;;
	*\ *) dates=(-startdate "${when% *}" -enddate "${when#* }") ;;
	*) dates=(-days "$when") ;;
	esac
	case $key in
	ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
	*) newkey=(-newkey "$key") ;;
	esac
	openssl req -config "$ca/ca.cnf" -new "${newkey[@]}" -nodes \
		-keyout "$out.key" -out "$out.csr" -subj "$subj" \
		-addext "subjectAltName=$san" \
		2>>"$ca/pki.log" || t_fail "pki_server_cert $subj: see $ca/pki.log"
	_pki_issue "$ca" server_ext "$out.csr" "$out.pem" "${dates[@]}"
	openssl verify -partial_chain -CAfile "$ca/ca.pem" -no_check_time \
		-purpose sslserver "$out.pem" >/dev/null ||
		t_fail "$out.pem does not verify"
}

# pki_intermediate PARENTDIR DIR NAME: a CA like pki_ca's in DIR, whose
# DIR/ca.pem PARENTDIR's CA signed (a server sends it as its chain).
pki_intermediate() {
	local parent=$1 dir=$2 name=$3
	pki_ca "$dir" "$name"
	dir=$(cd "$dir" && pwd)
	openssl req -config "$dir/ca.cnf" -new -key "$dir/ca.key" \
		-subj "/CN=$name" -out "$dir/ca.csr" 2>>"$dir/pki.log" ||
		t_fail "pki_intermediate $name: see $dir/pki.log"
	_pki_issue "$parent" v3_ca "$dir/ca.csr" "$dir/ca.pem" -days 3650
	openssl verify -CAfile "$parent/ca.pem" "$dir/ca.pem" >/dev/null ||
		t_fail "$dir/ca.pem does not verify"
}

# pki_sign_csr CADIR CSR OUT [DAYS]: a client certificate (clientAuth,
# digitalSignature) with the CSR's subject and SANs; EC or RSA keys alike.
pki_sign_csr() {
	local ca=$1 csr=$2 out=$3 days=${4:-30}
	openssl req -in "$csr" -verify -noout 2>>"$ca/pki.log" ||
		t_fail "$csr: bad CSR signature"
	_pki_issue "$ca" client_ext "$csr" "$out" -days "$days"
	openssl verify -CAfile "$ca/ca.pem" -purpose sslclient "$out" >/dev/null ||
		t_fail "$out does not verify"
}

# pki_client_file_cert CADIR OUTPREFIX CN: OUTPREFIX.key (EC P-256, in a
# file) and OUTPREFIX.pem: the reference client without a token.
pki_client_file_cert() {
	local ca=$1 out=$2 cn=$3
	openssl req -config "$ca/ca.cnf" -new -newkey ec \
		-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$out.key" \
		-out "$out.csr" -subj "/CN=$cn" 2>>"$ca/pki.log" ||
		t_fail "pki_client_file_cert $cn: see $ca/pki.log"
	pki_sign_csr "$ca" "$out.csr" "$out.pem"
}

# pki_revoke CADIR CERT; pki_crl CADIR -> CADIR/crl.pem
pki_revoke() {
	openssl ca -batch -config "$1/ca.cnf" -revoke "$2" 2>>"$1/pki.log" ||
		t_fail "could not revoke $2: see $1/pki.log"
}
pki_crl() {
	openssl ca -batch -config "$1/ca.cnf" -gencrl -out "$1/crl.pem" \
		2>>"$1/pki.log" || t_fail "could not make $1/crl.pem"
}
