# An EST (RFC 7030) test responder made of real parts: nginx (TLS, client
# certificate check) + fcgiwrap + tests/lib/est/est.cgi (bash and the
# openssl command line, issuing from a pki.sh CA). Loopback only, all files
# under the given directory, stopped by the test's cleanup.
# Needs the Debian package fcgiwrap besides nginx and openssl (scripts/deps.sh:
# add fcgiwrap to PACKAGES).
#
# Endpoints under https://127.0.0.1:PORT/.well-known/est/ (an optional
# label segment, /.well-known/est/LABEL/OP, is accepted and ignored):
#   GET  cacerts        200, Content-Type: application/pkcs7-mime,
#                       Content-Transfer-Encoding: base64; certs-only PKCS#7
#                       of CADIR/ca.pem.
#   POST simpleenroll   HTTP Basic USER:PASS, or a bootstrap client
#                       certificate (below) that nginx verified, or both
#                       (RFC 7030 3.3.2); another client certificate and no
#                       Basic: 403; neither: 401 + WWW-Authenticate: Basic
#                       realm="est". Body base64 DER PKCS#10 (line
#                       breaks allowed), Content-Type application/pkcs10
#                       (else 415); bad CSR 400; 200 with Content-Type:
#                       application/pkcs7-mime; smime-type=certs-only,
#                       Content-Transfer-Encoding: base64, a certs-only PKCS#7
#                       of a new client certificate (client_ext, subject and
#                       SANs from the CSR).
#   POST simplereenroll a client certificate that nginx verified against
#                       CADIR/ca.pem (and CADIR/crl.pem if it existed at
#                       est_start) and that CADIR's CA issued (never a
#                       bootstrap certificate), else 403; CSR subject must
#                       equal the client certificate's, else 400; answer as
#                       above.
#   other paths 404, wrong methods 405, bodies over 64 KiB 413.
# Switches (files in DIR, read at each request; numbers only):
#   DIR/down        every request 503 (with Retry-After: N if it holds N)
#   DIR/pending K   enroll requests answer 202 + Retry-After: 1 while K > 0,
#                   and count K down: the (K+1)-th attempt gets the certificate
#   DIR/days N      validity of issued certificates (default 30)
#   DIR/minutes N   validity N minutes from now (wins over DIR/days)
# Bootstrap certificates (a manufacturer's, IDevID-like): if
# DIR/bootstrap-ca.pem exists at est_start, nginx trusts it besides CADIR/ca.pem for client
# certificates, and simpleenroll accepts a certificate that CA issued
# instead of HTTP Basic. With CADIR/crl.pem, nginx checks a CRL for every
# CA of a chain: then DIR/bootstrap-crl.pem (that CA's CRL) must exist too.
# Records: DIR/est.log, one line a request:
#   "TIME ENDPOINT STATUS SUBJECT auth=METHOD[ client=DN]"
# SUBJECT: the CSR's (simplereenroll refusals: the client certificate's),
# RFC 2253, "-" if none; METHOD: what authenticated the request: basic,
# cert, cert+basic or none; DN: the client certificate's subject (RFC 2253,
# blanks as %20, % as %25) when one was presented, verified or not.
# DIR/last.pem, the last certificate
# issued; DIR/cgi.log, openssl's messages; DIR/error.log, nginx's.
# The CGI runs `openssl ca` on CADIR's database: do not sign with pki.sh on
# the same CA while a request may be running.

EST_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
declare -F server_stop >/dev/null || . "$EST_LIB/servers.sh"

# est_start DIR PORT CADIR SERVER_CERT SERVER_KEY [USER:PASS]: the responder
# on 127.0.0.1:PORT; USER:PASS defaults to est:est-secret (kept in
# DIR/credentials, which a test may rewrite). Registers est_stop DIR.
est_start() {
	local dir=$1 port=$2 ca=$3 cert=$4 key=$5 cred=${6:-est:est-secret}
	command -v fcgiwrap >/dev/null ||
		t_fail "fcgiwrap is not installed (apt-get install fcgiwrap; scripts/deps.sh)"
	mkdir -p "$dir/empty"
	dir=$(cd "$dir" && pwd)
	ca=$(cd "$ca" && pwd)
	[[ $cert == /* ]] || cert=$PWD/$cert
	[[ $key == /* ]] || key=$PWD/$key
	local sock=$dir/fcgiwrap.sock
	[ ${#sock} -lt 100 ] || t_fail "socket path too long for a Unix socket: $sock"
	# A copy, so that the executable bit does not depend on the checkout.
	install -m 0700 "$EST_LIB/est/est.cgi" "$dir/est.cgi"
	(umask 077 && printf '%s\n' "$cred" >"$dir/credentials")
	# As root the workers would run as nobody, who cannot enter $T (0700)
	# nor connect to fcgiwrap's socket (root's, 0755).
	local user=
	[ "$(id -u)" = 0 ] && user="user root;"
	# The CAs nginx verifies client certificates against (and their CRLs).
	local crl= clientcas=$ca/ca.pem
	if [ -f "$dir/bootstrap-ca.pem" ]; then
		clientcas=$dir/client-cas.pem
		cat "$ca/ca.pem" "$dir/bootstrap-ca.pem" >"$clientcas"
	fi
	if [ -f "$ca/crl.pem" ]; then
		crl="ssl_crl $ca/crl.pem;"
		if [ -f "$dir/bootstrap-ca.pem" ]; then
			[ -f "$dir/bootstrap-crl.pem" ] ||
				t_fail "est_start: $ca/crl.pem needs $dir/bootstrap-crl.pem beside $dir/bootstrap-ca.pem (nginx checks a CRL for each CA)"
			cat "$ca/crl.pem" "$dir/bootstrap-crl.pem" >"$dir/crls.pem"
			crl="ssl_crl $dir/crls.pem;"
		fi
	fi
	# ssl_verify_client optional: nginx answers a certificate that fails
	# verification (unknown CA, expired, revoked) with its internal code
	# 495 before any location; error_page hands that to the CGI, which sees
	# SSL_CLIENT_VERIFY=FAILED:reason (403 on simplereenroll).
	cat >"$dir/nginx.conf" <<-EOF
	$user
	daemon on;
	worker_processes 1;
	pid $dir/nginx.pid;
	error_log $dir/error.log;
	events { worker_connections 256; }
	http {
	    access_log off;
	    client_body_temp_path $dir/body;
	    proxy_temp_path $dir/proxy;
	    fastcgi_temp_path $dir/fastcgi;
	    uwsgi_temp_path $dir/uwsgi;
	    scgi_temp_path $dir/scgi;
	    server {
	        listen 127.0.0.1:$port ssl;
	        ssl_protocols TLSv1.2 TLSv1.3;
	        ssl_certificate $cert;
	        ssl_certificate_key $key;
	        ssl_client_certificate $clientcas;
	        ssl_verify_client optional;
	        ssl_verify_depth 3;
	        $crl
	        root $dir/empty;
	        client_max_body_size 64k;
	        client_body_buffer_size 64k;
	        fastcgi_param SCRIPT_FILENAME $dir/est.cgi;
	        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
	        fastcgi_param SERVER_PROTOCOL \$server_protocol;
	        fastcgi_param REQUEST_METHOD \$request_method;
	        fastcgi_param REQUEST_URI \$request_uri;
	        fastcgi_param DOCUMENT_URI \$uri;
	        fastcgi_param QUERY_STRING \$query_string;
	        fastcgi_param CONTENT_TYPE \$content_type;
	        fastcgi_param CONTENT_LENGTH \$content_length;
	        fastcgi_param REMOTE_ADDR \$remote_addr;
	        fastcgi_param HTTPS on;
	        fastcgi_param SSL_CLIENT_VERIFY \$ssl_client_verify;
	        fastcgi_param SSL_CLIENT_S_DN \$ssl_client_s_dn;
	        fastcgi_param SSL_CLIENT_I_DN \$ssl_client_i_dn;
	        fastcgi_param EST_DIR $dir;
	        fastcgi_param EST_CADIR $ca;
	        error_page 495 = @est;
	        location /.well-known/est/ { fastcgi_pass unix:$sock; }
	        location @est { fastcgi_pass unix:$sock; }
	        location / { return 404; }
	    }
	}
	EOF
	t_on_exit "est_stop $(printf '%q' "$dir")"
	# fcgiwrap neither removes its socket at exit nor binds over an old one.
	rm -f "$sock"
	# One process (no -c: a preforking parent leaves its children behind
	# when killed), serving one request at a time; a clean environment for
	# the CGI (fcgiwrap passes its own on).
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin fcgiwrap -s "unix:$sock" \
		-p "$dir/est.cgi" </dev/null >>"$dir/fcgiwrap.log" 2>&1 &
	echo $! >"$dir/fcgiwrap.pid"
	t_until 30 _est_fcgiwrap_up "$sock" "$dir" ||
		t_fail "fcgiwrap made no socket $sock in 30 s"
	# nginx binds before it daemonizes (and fails if it cannot); the
	# listener on PORT must then be this nginx.
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" ||
		t_fail "nginx (EST) did not start: see $dir/error.log"
	t_until 30 test -s "$dir/nginx.pid" || t_fail "nginx wrote no $dir/nginx.pid"
	t_wait_port "$port" 30 "$(cat "$dir/nginx.pid")"
}

_est_fcgiwrap_up() { # SOCK DIR: the socket is there; fails the test if fcgiwrap died
	[ -S "$1" ] && return 0
	kill -0 "$(cat "$2/fcgiwrap.pid")" 2>/dev/null ||
		t_fail "fcgiwrap exited: see $2/fcgiwrap.log"
	return 1
}

# est_stop DIR: nginx, then fcgiwrap; safe to call twice.
est_stop() {
	local dir=$1 p
	for p in nginx fcgiwrap; do
		[ -s "$dir/$p.pid" ] || continue
		server_stop "$(cat "$dir/$p.pid")"
		rm -f "$dir/$p.pid"
	done
	rm -f "$dir/fcgiwrap.sock"
}
