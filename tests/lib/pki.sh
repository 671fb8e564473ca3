# A development CA made with the openssl command line, able to issue, revoke
# and publish CRLs; server and client certificates for the tests.

# pki_ca DIR NAME
pki_ca() {
	local dir=$1 name=$2
	mkdir -p "$dir/certs"
	: >"$dir/index.txt"
	echo 1000 >"$dir/serial"
	echo 1000 >"$dir/crlnumber"
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
	commonName = supplied
	organizationName = optional
	organizationalUnitName = optional
	countryName = optional
	[ server_ext ]
	basicConstraints = CA:false
	keyUsage = critical, digitalSignature, keyEncipherment
	extendedKeyUsage = serverAuth
	[ client_ext ]
	basicConstraints = CA:false
	keyUsage = critical, digitalSignature
	extendedKeyUsage = clientAuth
	EOF
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 365 \
		-subj "/CN=$name" \
		-addext "basicConstraints=critical,CA:true" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# pki_server_cert CADIR OUTPREFIX CN SAN [expired]
pki_server_cert() {
	local ca=$1 out=$2 cn=$3 san=$4 when=${5:-}
	local dates=(-days 30)
	[ "$when" = expired ] && dates=(-startdate 20200101000000Z -enddate 20200102000000Z)
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$out.key" -out "$out.csr" -subj "/CN=$cn" \
		-addext "subjectAltName=$san" 2>/dev/null
	openssl ca -batch -config "$ca/ca.cnf" -extensions server_ext \
		"${dates[@]}" -in "$out.csr" -out "$out.pem" -notext 2>/dev/null
	openssl verify -CAfile "$ca/ca.pem" -no_check_time "$out.pem" >/dev/null
}

# pki_sign_csr CADIR CSR OUT [DAYS]: a client certificate (clientAuth) with
# the CSR's subject and SANs.
pki_sign_csr() {
	local ca=$1 csr=$2 out=$3 days=${4:-30}
	openssl ca -batch -config "$ca/ca.cnf" -extensions client_ext \
		-days "$days" -in "$csr" -out "$out" -notext 2>/dev/null
	openssl verify -CAfile "$ca/ca.pem" "$out" >/dev/null
}

# pki_revoke CADIR CERT; pki_crl CADIR -> CADIR/crl.pem
pki_revoke() {
	openssl ca -batch -config "$1/ca.cnf" -revoke "$2" 2>/dev/null
}
pki_crl() {
	openssl ca -batch -config "$1/ca.cnf" -gencrl -out "$1/crl.pem" 2>/dev/null
}
