# Network revocation fixtures: a root and an intermediate CA whose
# certificates point (AIA OCSP, CRL distribution point) at loopback ports
# the test chose, OCSP responders (openssl ocsp) good, down, slow and
# signed with the wrong key, and a plain-HTTP CRL server (nginx) that logs
# every fetch. Sourced after common.sh, pki.sh and servers.sh. Checked
# without the agent by tests/integration/selftest_revocation.sh.
#
# rev_pki DIR [ROOT_OCSP_URL [ROOT_CRL_URL]]
#   DIR/root: root CA (EC P-256). DIR/int: intermediate CA issued by the
#   root; its certificate carries AIA OCSP = ROOT_OCSP_URL and a CRL
#   distribution point ROOT_CRL_URL (each left out when ""). DIR/other: an
#   unrelated root ("signed by the wrong key"). In DIR/root and DIR/int:
#   responder.pem/.key (EKU OCSPSigning, issued by that CA: a delegated
#   responder) and noeku.pem/.key (a sibling issued by the same CA, EKU
#   serverAuth only: not allowed to sign OCSP answers). DIR/int/chain.pem
#   is the intermediate's certificate (what a server sends after its leaf);
#   DIR/roots.pem the root (the trust anchor), DIR/ca-chain.pem int + root.
#
# rev_leaf DIR NAME SAN OCSP_URL CRL_URL [KEY]
#   DIR/NAME.key, DIR/NAME.pem (server leaf issued by the intermediate,
#   serverAuth, SAN like "DNS:localhost"), DIR/NAME.chain.pem (leaf +
#   intermediate, for nginx's ssl_certificate). OCSP_URL / CRL_URL like
#   http://127.0.0.1:P/ and http://127.0.0.1:Q/ca.crl; "" leaves the
#   extension out. KEY: ec (default, P-256) or rsa:2048.
#
# rev_revoke DIR CERT [REASON]
#   Marks CERT revoked in the database of the CA that issued it (root for
#   the intermediate, intermediate for leaves). REASON: an openssl
#   -crl_reason (keyCompromise, superseded, cessationOfOperation, ...);
#   default unspecified (no reason code in CRL or OCSP answer).
#
# rev_crl DIR [CA [openssl ca options...]]
#   A CRL of CA (int, default, or root) from its database: DIR/CA/crl.pem
#   and DIR/CA/crl.der. Options pass to `openssl ca -gencrl`, e.g.
#   -crlsec 60, -crlhours 1, -crldays 2 (default: 30 days), or a backdated
#   -crl_lastupdate YYYYMMDDHHMMSSZ (rev_utc -25 for 25 s ago).
#
# rev_crl_publish DIR CA FILE
#   Copies DIR/CA/crl.der to FILE atomically (a temporary beside it, then
#   mv): a server serving FILE sends the old or the new one, never half.
#
# rev_utc SECONDS: the UTC time SECONDS from now (negative: ago) as
#   YYYYMMDDHHMMSSZ.
#
# rev_ocsp_start DIR PORT CA [SIGNER [NMIN]]
#   openssl ocsp as the responder for CA (int or root: its index.txt),
#   reachable on 127.0.0.1:PORT. SIGNER: responder (default; delegated,
#   EKU OCSPSigning), ca (the CA's own key), noeku (the sibling without
#   the EKU), other (the unrelated CA's key: "wrong key"). NMIN: minutes
#   until nextUpdate (-nmin); "" = -ndays 1; none = no nextUpdate.
#   REV_OCSP_ARGS (words) adds options, e.g. -resp_no_certs, -resp_key_id,
#   or -multi N (N responder processes: without it, openssl answers one
#   connection at a time, and one client that sends half a request stalls
#   every other until it closes: measured 7.5 s behind a stalled one).
#   openssl 3.0's responder binds the wildcard address (its -port takes a
#   number only), so it runs in a network namespace of its own (unshare -n)
#   behind a Unix socket, and rev_fwd.py relays 127.0.0.1:PORT to it,
#   counting connections in DIR/fwd-PORT.count. Waits until it listens;
#   stopped at exit. Log: DIR/ocsp-PORT/ocsp.log.
# rev_ocsp_stop DIR PORT: stops it; PORT stays claimed and unbound (the
#   "down" responder: connections are refused). Safe twice.
# rev_ocsp_restart DIR PORT: stop, then start with the same arguments
#   (for "down, then back").
# rev_ocsp_refresh DIR PORT: after rev_revoke, makes the responder answer
#   from the new index.txt from the next request on. openssl 3.0.19's
#   responder re-reads a changed index (mtime/inode) by itself, but at the
#   top of its loop, before it waits for a connection: the first request
#   after a change still gets the old status (measured: good, then
#   revoked). This sends one throwaway request straight to the Unix socket
#   (not counted in DIR/fwd-PORT.count); a restart does the same.
#
# rev_fwd_start DIR PORT TARGET DELAY
#   rev_fwd.py on 127.0.0.1:PORT relaying to TARGET (HOST:PORT or a Unix
#   socket path) after waiting DELAY seconds (the "slow" responder, e.g.
#   in front of rev_ocsp_start's port). Every connection that sent a byte
#   is counted at once in DIR/fwd-PORT.count. Stopped at exit.
# rev_fwd_stop DIR PORT
# rev_fetches DIR PORT: connections counted so far by the forwarder on PORT.
#
# rev_crl_server_start DIR PORT
#   nginx serving DIR/www over plain HTTP on 127.0.0.1:PORT (CRL
#   distribution points are http), every request logged to
#   DIR/access.log at once ("GET /ca.crl 200 <bytes>"). *.crl answer
#   application/pkix-crl. No open_file_cache: a file replaced by mv is
#   served from the next request on. Stopped at exit.
# rev_crl_server_stop DIR: stops it (the CRL "down"; PORT stays claimed).
# rev_crl_fetches DIR [PATH]: GETs of PATH (default /ca.crl) logged so far.

REV_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
declare -F server_stop >/dev/null || . "$REV_LIB/servers.sh"
declare -F pki_ca >/dev/null || . "$REV_LIB/pki.sh"
: "${REV_START_SECS:=60}"
REV_PY=/usr/bin/python3

rev_utc() {
	date -u -d "@$(($(date +%s) + $1))" +%Y%m%d%H%M%SZ
}

# _rev_issue CADIR CSR OUT EXTENSIONS DAYS: openssl ca with the extension
# lines EXTENSIONS (one string, newline separated) as its only section.
_rev_issue() {
	local ca=$1 csr=$2 out=$3 ext=$4 days=$5
	printf '[ ext ]\n%s\n' "$ext" >"$out.ext"
	openssl ca -batch -preserveDN -config "$ca/ca.cnf" -extfile "$out.ext" \
		-extensions ext -days "$days" -in "$csr" -out "$out" -notext \
		2>>"$ca/pki.log" || t_fail "openssl ca could not sign $csr: see $ca/pki.log"
}

# _rev_key KEY OUTPREFIX SUBJECT CADIR: a key and a CSR.
_rev_csr() {
	local key=$1 out=$2 subj=$3 ca=$4 newkey
	case $key in
	ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
	rsa:*) newkey=(-newkey "$key") ;;
	*) t_fail "rev: key type '$key': ec or rsa:BITS" ;;
	esac
	openssl req -config "$ca/ca.cnf" -new "${newkey[@]}" -nodes \
		-keyout "$out.key" -out "$out.csr" -subj "$subj" 2>>"$ca/pki.log" ||
		t_fail "rev: CSR for $subj: see $ca/pki.log"
}

# _rev_urls OCSP_URL CRL_URL: the AIA/CDP extension lines.
_rev_urls() {
	[ -n "$1" ] && printf 'authorityInfoAccess = OCSP;URI:%s\n' "$1"
	[ -n "$2" ] && printf 'crlDistributionPoints = URI:%s\n' "$2"
	return 0
}

# _rev_signers CADIR NAME: responder.* and noeku.* issued by CADIR.
_rev_signers() {
	local ca=$1 name=$2
	_rev_csr ec "$ca/responder" "/CN=$name OCSP responder" "$ca"
	_rev_issue "$ca" "$ca/responder.csr" "$ca/responder.pem" "basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid" 30
	_rev_csr ec "$ca/noeku" "/CN=$name not a responder" "$ca"
	_rev_issue "$ca" "$ca/noeku.csr" "$ca/noeku.pem" "basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid" 30
}

rev_pki() {
	local dir=$1 rocsp=${2:-} rcrl=${3:-} c
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	pki_ca "$dir/root" "Rev Root CA"
	pki_ca "$dir/other" "Rev Unrelated CA"
	pki_ca "$dir/int" "Rev Intermediate CA" # self-signed for now: replaced below
	for c in root int other; do
		# Every CRL names its issuer's key (authorityKeyIdentifier).
		printf '[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n' >>"$dir/$c/ca.cnf"
		sed -i 's/^default_crl_days = .*/&\ncrl_extensions = crl_ext/' "$dir/$c/ca.cnf"
	done
	openssl req -config "$dir/int/ca.cnf" -new -key "$dir/int/ca.key" \
		-subj "/CN=Rev Intermediate CA" -out "$dir/int/ca.csr" 2>>"$dir/int/pki.log" ||
		t_fail "rev_pki: intermediate CSR: see $dir/int/pki.log"
	_rev_issue "$dir/root" "$dir/int/ca.csr" "$dir/int/ca.pem" "basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
$(_rev_urls "$rocsp" "$rcrl")" 3650
	openssl verify -CAfile "$dir/root/ca.pem" "$dir/int/ca.pem" >/dev/null ||
		t_fail "rev_pki: the intermediate does not verify"
	_rev_signers "$dir/root" "Rev Root"
	_rev_signers "$dir/int" "Rev Intermediate"
	cp "$dir/int/ca.pem" "$dir/int/chain.pem"
	cp "$dir/root/ca.pem" "$dir/roots.pem"
	cat "$dir/int/ca.pem" "$dir/root/ca.pem" >"$dir/ca-chain.pem"
}

rev_leaf() {
	local dir=$1 name=$2 san=$3 ocsp=$4 crl=$5 key=${6:-ec}
	_rev_csr "$key" "$dir/$name" "/CN=$name" "$dir/int"
	_rev_issue "$dir/int" "$dir/$name.csr" "$dir/$name.pem" "basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature$([[ $key == rsa:* ]] && echo ', keyEncipherment')
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
$(_rev_urls "$ocsp" "$crl")" 30
	cat "$dir/$name.pem" "$dir/int/ca.pem" >"$dir/$name.chain.pem"
	openssl verify -CAfile "$dir/root/ca.pem" -untrusted "$dir/int/ca.pem" \
		-purpose sslserver "$dir/$name.pem" >/dev/null || t_fail "rev_leaf: $name does not verify"
}

# _rev_ca_of DIR CERT: root or int, whichever issued CERT.
_rev_ca_of() {
	local h c
	h=$(openssl x509 -in "$2" -noout -issuer_hash) || t_fail "rev: cannot read $2"
	for c in int root other; do
		[ "$(openssl x509 -in "$1/$c/ca.pem" -noout -subject_hash)" = "$h" ] && echo "$c" && return 0
	done
	t_fail "rev: no CA of $1 issued $2"
}

rev_revoke() {
	local dir=$1 cert=$2 reason=${3:-} ca
	ca=$(_rev_ca_of "$dir" "$cert")
	openssl ca -batch -config "$dir/$ca/ca.cnf" -revoke "$cert" ${reason:+-crl_reason "$reason"} \
		2>>"$dir/$ca/pki.log" || t_fail "rev_revoke: $cert: see $dir/$ca/pki.log"
}

rev_crl() {
	local dir=$1 ca=${2:-int}
	shift 2 || shift $#
	openssl ca -batch -config "$dir/$ca/ca.cnf" -gencrl -out "$dir/$ca/crl.pem" "$@" \
		2>>"$dir/$ca/pki.log" || t_fail "rev_crl $ca $*: see $dir/$ca/pki.log"
	openssl crl -in "$dir/$ca/crl.pem" -outform DER -out "$dir/$ca/crl.der" ||
		t_fail "rev_crl: DER"
}

rev_crl_publish() {
	local dir=$1 ca=$2 dest=$3
	cp "$dir/$ca/crl.der" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest" ||
		t_fail "rev_crl_publish: $dest"
}

# ---- OCSP responders

# _rev_ns_listens PIDFILE PORT: in the namespace of PIDFILE's process,
# something listens on PORT; fails the test if that process died.
_rev_ns_listens() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null || t_fail "the OCSP responder's namespace ($pid) exited: $(tail -n 5 "${1%/*}/ocsp.log")"
	nsenter -t "$pid" -n ss -Htln "sport = :$2" 2>/dev/null | grep -q .
}

rev_ocsp_start() {
	local dir=$1 port=$2 ca=$3 signer=${4:-responder} nmin=${5:-}
	dir=$(cd "$dir" && pwd)
	local cadir=$dir/$ca rsigner rkey validity st=$dir/ocsp-$port
	[ -f "$cadir/index.txt" ] || t_fail "rev_ocsp_start: no CA '$ca' in $dir"
	case $signer in
	responder | noeku) rsigner=$cadir/$signer.pem rkey=$cadir/$signer.key ;;
	ca) rsigner=$cadir/ca.pem rkey=$cadir/ca.key ;;
	other) rsigner=$dir/other/ca.pem rkey=$dir/other/ca.key ;;
	*) t_fail "rev_ocsp_start: signer '$signer'" ;;
	esac
	case $nmin in
	'') validity="-ndays 1" ;;
	none) validity= ;;
	*) validity="-nmin $nmin" ;;
	esac
	mkdir -p "$st"
	printf '%q ' "$ca" "$signer" "$nmin" >"$st/args"
	printf '%s' "${REV_OCSP_ARGS:-}" >"$st/extra"
	rm -f "$st/ocsp.sock" "$st/ns.pid"
	# A request about the CA's own responder certificate, for rev_ocsp_refresh.
	openssl ocsp -issuer "$cadir/ca.pem" -cert "$cadir/responder.pem" -no_nonce \
		-reqout "$st/probe.req" >/dev/null 2>&1 || t_fail "rev_ocsp_start: probe request"
	# In a network namespace and a pid namespace of its own: loopback up,
	# the responder on 8080 (nobody else is there), socat from the Unix
	# socket to it. unshare itself is in the network namespace (nsenter
	# finds it by its pid); when it dies (TERM), --kill-child kills the
	# namespace's first process, and with it every process in it (openssl
	# -multi's parent does not exit on SIGTERM in 3.0.19 and its children
	# would outlive it).
	t_on_exit "rev_ocsp_stop $(printf '%q' "$dir") $port"
	# shellcheck disable=SC2016 # expanded by the inner bash
	unshare -n -p -f --kill-child bash -c '
		ip link set lo up || exit 1
		openssl ocsp -index "$2" -port 8080 -rsigner "$3" -rkey "$4" -CA "$5" \
			-ignore_err $6 $7 </dev/null >>"$1/ocsp.log" 2>&1 &
		socat UNIX-LISTEN:"$1/ocsp.sock",fork,unlink-early,mode=600 TCP:127.0.0.1:8080 \
			</dev/null >>"$1/socat.log" 2>&1 &
		wait -n' rev-ocsp "$st" "$cadir/index.txt" "$rsigner" "$rkey" "$cadir/ca.pem" \
		"$validity" "${REV_OCSP_ARGS:-}" </dev/null >>"$st/ns.log" 2>&1 &
	echo $! >"$st/ns.pid"
	t_until "$REV_START_SECS" _rev_ns_listens "$st/ns.pid" 8080 ||
		t_fail "the OCSP responder on $port does not listen: $(tail -n 5 "$st/ocsp.log")"
	t_wait_file "$st/ocsp.sock" "$REV_START_SECS"
	rev_fwd_start "$dir" "$port" "$st/ocsp.sock" 0 nocleanup
}

# _rev_ns_stop PID: PID is unshare --fork, which ignores SIGTERM and SIGINT
# while it waits for its child (util-linux 2.38): SIGKILL to the child, the
# pid namespace's first process, ends every process in the namespace, and
# then unshare. Not server_stop: its wait for a child of ours has no
# deadline.
_rev_ns_stop() {
	local pid=$1 kid
	kid=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null) || kid=
	[ -n "$kid" ] && kill -KILL $kid 2>/dev/null
	if ! t_until 30 t_gone "$pid"; then
		echo "unshare $pid still runs 30 s after its child's SIGKILL: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || true
}

rev_ocsp_stop() {
	local dir=$1 port=$2 st=$1/ocsp-$2
	rev_fwd_stop "$dir" "$port"
	[ -s "$st/ns.pid" ] && _rev_ns_stop "$(cat "$st/ns.pid")"
	rm -f "$st/ns.pid" "$st/ocsp.sock"
	return 0
}

rev_ocsp_restart() {
	local dir=$1 port=$2 st=$1/ocsp-$2 args
	[ -s "$st/args" ] || t_fail "rev_ocsp_restart: no responder on $port"
	rev_ocsp_stop "$dir" "$port"
	eval "args=($(cat "$st/args"))"
	REV_OCSP_ARGS=$(cat "$st/extra") rev_ocsp_start "$dir" "$port" "${args[@]}"
}

rev_ocsp_refresh() {
	local st=$1/ocsp-$2
	[ -S "$st/ocsp.sock" ] || t_fail "rev_ocsp_refresh: no responder on $2"
	curl -sS --max-time 30 --unix-socket "$st/ocsp.sock" -o /dev/null \
		-H 'Content-Type: application/ocsp-request' --data-binary @"$st/probe.req" \
		http://localhost/ || t_fail "rev_ocsp_refresh: no answer from the responder on $2"
}

# ---- forwarders (slow responders, and every responder's counter)

rev_fwd_start() {
	local dir=$1 port=$2 target=$3 delay=$4 pid
	rm -f "$dir/fwd-$port.pid"
	"$REV_PY" "$REV_LIB/rev_fwd.py" "$port" "$target" "$delay" "$dir/fwd-$port.count" \
		</dev/null >>"$dir/fwd-$port.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/fwd-$port.pid"
	[ "${5:-}" = nocleanup ] || t_on_exit "rev_fwd_stop $(printf '%q' "$dir") $port"
	t_wait_port "$port" "$REV_START_SECS" "$pid"
}

rev_fwd_stop() {
	[ -s "$1/fwd-$2.pid" ] || return 0
	server_stop "$(cat "$1/fwd-$2.pid")"
	rm -f "$1/fwd-$2.pid"
}

rev_fetches() {
	local n
	n=$(wc -l <"$1/fwd-$2.count" 2>/dev/null) || n=0
	echo "$n"
}

# ---- the CRL server

rev_crl_server_start() {
	local dir=$1 port=$2 user=
	mkdir -p "$dir/www"
	dir=$(cd "$dir" && pwd)
	[ "$(id -u)" = 0 ] && user="user root;"
	cat >"$dir/nginx.conf" <<-EOF
	$user
	daemon on;
	worker_processes 1;
	pid $dir/nginx.pid;
	error_log $dir/error.log;
	events { worker_connections 256; }
	http {
	    log_format rev '\$request_method \$uri \$status \$body_bytes_sent';
	    access_log $dir/access.log rev;
	    types { application/pkix-crl crl; application/pkix-cert cer; }
	    default_type application/octet-stream;
	    open_file_cache off;
	    keepalive_timeout 10s;
	    client_body_temp_path $dir/body;
	    proxy_temp_path $dir/proxy;
	    fastcgi_temp_path $dir/fastcgi;
	    uwsgi_temp_path $dir/uwsgi;
	    scgi_temp_path $dir/scgi;
	    server {
	        listen 127.0.0.1:$port;
	        root $dir/www;
	    }
	}
	EOF
	rm -f "$dir/nginx.pid"
	t_on_exit "rev_crl_server_stop $(printf '%q' "$dir")"
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" ||
		t_fail "nginx (CRL server) did not start: see $dir/error.log"
	t_wait_file "$dir/nginx.pid" "$REV_START_SECS"
	t_until "$REV_START_SECS" test -s "$dir/nginx.pid" || t_fail "nginx wrote no pid"
	t_wait_port "$port" "$REV_START_SECS" "$(cat "$dir/nginx.pid")"
}

rev_crl_server_stop() {
	[ -s "$1/nginx.pid" ] || return 0
	server_stop "$(cat "$1/nginx.pid")"
	rm -f "$1/nginx.pid"
}

rev_crl_fetches() {
	local n
	n=$(grep -c "^GET ${2:-/ca.crl} " "$1/access.log" 2>/dev/null) || n=0
	echo "$n"
}
