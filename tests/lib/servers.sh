# Real mTLS servers on loopback, stopped by the test's cleanup.

# nginx_start DIR PORT CAFILE CERT KEY [CRL]: answers
# "dn=<client DN> verify=<result> proto=<protocol>" on /, and serves files
# from DIR/www under /files/.
nginx_start() {
	local dir=$1 port=$2 ca=$3 cert=$4 key=$5 crl=${6:-}
	mkdir -p "$dir/www"
	# As root, workers would drop to nobody and lose access to $T (0700).
	local user=
	[ "$(id -u)" = 0 ] && user="user root;"
	cat >"$dir/nginx.conf" <<-EOF
	$user
	daemon on;
	worker_processes 1;
	pid $dir/nginx.pid;
	error_log $dir/error.log;
	events { worker_connections 1024; }
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
	        ssl_client_certificate $ca;
	        ssl_verify_client on;
	        ssl_verify_depth 3;
	        ${crl:+ssl_crl $crl;}
	        location / {
	            default_type text/plain;
	            return 200 "dn=\$ssl_client_s_dn verify=\$ssl_client_verify proto=\$ssl_protocol\n";
	        }
	        location /files/ { alias $dir/www/; }
	    }
	}
	EOF
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
	t_on_exit "kill \$(cat '$dir/nginx.pid') 2>/dev/null"
	t_wait_port "$port"
}

# s_server_start DIR PORT CAFILE CERT KEY [extra openssl args]: -www answers
# GET / with a page whose "Peer signature type:" line names the client's
# signature and which lists the client certificate's "Subject:".
s_server_start() {
	local dir=$1 port=$2 ca=$3 cert=$4 key=$5
	shift 5
	mkdir -p "$dir"
	openssl s_server -accept "127.0.0.1:$port" -cert "$cert" -key "$key" \
		-CAfile "$ca" -Verify 1 -verify_return_error -www "$@" \
		</dev/null >"$dir/s_server.log" 2>&1 &
	t_on_exit "kill $!"
	t_wait_port "$port"
}
