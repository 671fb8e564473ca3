# Real mTLS servers on 127.0.0.1, stopped by the test's cleanup, and curl
# with libp11's engine as an independent token-backed client.

# server_stop PID: SIGTERM, then waits until PID is gone (SIGKILL after
# 30 s), so that its port is free and it writes no more into $T. A daemon
# (nginx) is not our child: it counts as gone once a zombie, as PID 1 may
# take a second or two to reap it. (A loop, not common.sh's t_until:
# scripts/demo.sh uses this file without common.sh.)
server_stop() {
	local pid=${1:-} rc=0 st
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	wait "$pid" 2>/dev/null || rc=$?
	[ $rc -ne 127 ] && return 0 # it was our child, now reaped
	for _ in $(seq 1 600); do
		st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
		[[ $st == *") Z "* ]] && return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
}

# nginx_start DIR PORT CAFILE CERT KEY [CRL [OCSP_RESPONSE]]: staples the
# DER OCSP response when given (CRL may be ""); TLS 1.2 and 1.3 unless
# NGINX_SSL_PROTOCOLS says otherwise (e.g. TLSv1.2); idle keep-alive
# connections are closed after NGINX_KEEPALIVE_TIMEOUT (75s); on /, answers
# "dn=<client DN> verify=<result> proto=<protocol>"; /echo answers with the
# POSTed body (up to 1 MiB); /files/ serves DIR/www.
nginx_start() {
	local dir=$1 port=$2 ca=$3 cert=$4 key=$5 crl=${6:-} staple=${7:-}
	mkdir -p "$dir/www"
	dir=$(cd "$dir" && pwd)
	# As root the workers would run as nobody, who cannot enter $T (0700).
	local user=
	[ "$(id -u)" = 0 ] && user="user root;"
	# /echo: nginx-light has no echo module and `return` runs before the
	# body is read. mirror_request_body reads it first; the static module
	# then 404s on the missing file, and @echo can return $request_body.
	cat >"$dir/nginx.conf" <<-EOF
	$user
	daemon on;
	worker_processes 1;
	pid $dir/nginx.pid;
	error_log $dir/error.log;
	worker_rlimit_nofile ${NGINX_RLIMIT_NOFILE:-8192};
	events { worker_connections ${NGINX_WORKER_CONNECTIONS:-1024}; }
	http {
	    access_log off;
	    keepalive_timeout ${NGINX_KEEPALIVE_TIMEOUT:-75s};
	    default_type application/octet-stream;
	    client_body_temp_path $dir/body;
	    proxy_temp_path $dir/proxy;
	    fastcgi_temp_path $dir/fastcgi;
	    uwsgi_temp_path $dir/uwsgi;
	    scgi_temp_path $dir/scgi;
	    server {
	        listen 127.0.0.1:$port ssl;
	        ssl_protocols ${NGINX_SSL_PROTOCOLS:-TLSv1.2 TLSv1.3};
	        ssl_certificate $cert;
	        ssl_certificate_key $key;
	        ssl_client_certificate $ca;
	        ssl_verify_client on;
	        ssl_verify_depth 3;
	        ${crl:+ssl_crl $crl;}
	        ${staple:+ssl_stapling on; ssl_stapling_file $staple;}
	        location / {
	            default_type text/plain;
	            return 200 "dn=\$ssl_client_s_dn verify=\$ssl_client_verify proto=\$ssl_protocol\n";
	        }
	        location = /req {
	            default_type text/plain;
	            return 200 "method=\$request_method uri=\$request_uri host=\$http_host pc=\$http_proxy_connection pa=\$http_proxy_authorization dn=\$ssl_client_s_dn port=\$server_port\n";
	        }
	        location /files/ { alias $dir/www/; }
	        location = /echo {
	            client_max_body_size 1m;
	            client_body_buffer_size 1m;
	            client_body_in_single_buffer on;
	            mirror /.mirror;
	            mirror_request_body on;
	            root $dir/empty;
	            error_page 404 = @echo;
	        }
	        location = /.mirror { internal; return 204; }
	        location @echo { default_type text/plain; return 200 \$request_body; }
	    }
	}
	EOF
	t_on_exit "server_stop \$(cat '$dir/nginx.pid')"
	# It binds before it daemonizes (and fails if it cannot); the daemon
	# writes the pid file after.
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" ||
		t_fail "nginx did not start: see $dir/error.log"
	# (No t_wait_file: scripts/demo.sh uses this file without common.sh.)
	for _ in $(seq 1 600); do
		[ -s "$dir/nginx.pid" ] && break
		sleep 0.05
	done
	[ -s "$dir/nginx.pid" ] || t_fail "nginx wrote no $dir/nginx.pid"
	# The listener on PORT must be this nginx, not whatever else has it.
	t_wait_port "$port" 30 "$(cat "$dir/nginx.pid")"
}

# s_server_start DIR PORT CAFILE CERT KEY [extra openssl args, e.g. -tls1_3,
# -crl_check -CRL crl.pem]: a client certificate is required and verified
# during the handshake. With -www, GET / answers a page with the protocol
# and cipher ("Protocol  : TLSv1.3", "Cipher    : ..."), the client's
# signature ("Peer signature type: ...") and the client certificate's
# subject on the line "        Subject: CN=name, O=org" (X509_print, in the
# order of the certificate; the "Issuer:" line above it names the CA).
# S_SERVER_HOST=::1 listens there instead of 127.0.0.1.
s_server_start() {
	local dir=$1 port=$2 ca=$3 cert=$4 key=$5 host=${S_SERVER_HOST:-127.0.0.1}
	shift 5
	mkdir -p "$dir"
	[[ $host == *:* ]] && host="[$host]"
	openssl s_server -accept "$host:$port" -cert "$cert" -key "$key" \
		-CAfile "$ca" -Verify 1 -verify_return_error -www "$@" \
		</dev/null >>"$dir/s_server.log" 2>&1 &
	t_on_exit "server_stop $!"
	# This s_server must hold the port (one that could not bind exits;
	# t_cleanup shows its log).
	t_wait_port "$port" 30 $!
}

# s_server_check SOCKET CN PROTOCOL SIGTYPE: through the agent's tunnel at
# SOCKET, s_server's -www page names client CN, PROTOCOL (TLSv1.3) and the
# client's signature type (ECDSA, RSA-PSS, RSA).
s_server_check() {
	local page
	page=$(curl -sS --max-time 60 --unix-socket "$1" http://localhost/) ||
		t_fail "$1: no answer"
	grep -qE "Subject: CN ?= ?$2\$" <<<"$page" ||
		t_fail "$1: s_server did not report client CN $2"
	grep -q "Protocol *: *$3" <<<"$page" || t_fail "$1: not $3"
	grep -q "^Peer signature type: $4\$" <<<"$page" ||
		t_fail "$1: signature type $(grep 'Peer signature type' <<<"$page"), want $4"
}

# curl_p11 TOKEN OBJECT PIN CERT CAFILE URL [curl args...]: curl with
# libp11's engine and the private key OBJECT on the SoftHSM token TOKEN
# (URI values as-is: labels must need no %-encoding).
curl_p11() {
	local token=$1 obj=$2 pin=$3 cert=$4 ca=$5 url=$6
	shift 6
	PKCS11_MODULE_PATH=$SOFTHSM_MODULE curl -sS --max-time 60 \
		--engine pkcs11 --key-type ENG \
		--key "pkcs11:token=$token;object=$obj;type=private;pin-value=$pin" \
		--cert "$cert" --cacert "$ca" "$@" "$url"
}
