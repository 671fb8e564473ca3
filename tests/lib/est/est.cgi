#!/bin/bash
# EST (RFC 7030) test responder: a CGI run by fcgiwrap behind nginx, set up
# by tests/lib/est.sh (est_start), which passes EST_DIR and EST_CADIR and,
# from nginx, SSL_CLIENT_VERIFY, SSL_CLIENT_S_DN and SSL_CLIENT_I_DN (RFC 2253).
#
#   GET  /.well-known/est/[LABEL/]cacerts          CA certificate
#   POST /.well-known/est/[LABEL/]simpleenroll     HTTP Basic, $EST_DIR/credentials,
#                                                  or a certificate that
#                                                  $EST_DIR/bootstrap-ca.pem issued
#   POST /.well-known/est/[LABEL/]simplereenroll   certificate $EST_CADIR issued, same subject
#
# Switches, read at each request: $EST_DIR/down (503, Retry-After: its number
# if it holds one), $EST_DIR/pending (number K: K answers 202 first),
# $EST_DIR/days (validity in days, default 30), $EST_DIR/minutes (validity in
# minutes; wins over days), $EST_DIR/chunked (answers without Content-Length).
# One line per request to $EST_DIR/est.log: TIME ENDPOINT STATUS SUBJECT
# auth=basic|cert|cert+basic|none[ client=DN] (DN: the client
# certificate's subject, presented if not verified, blanks as %20);
# openssl's chatter to $EST_DIR/cgi.log. The last issued certificate is
# also kept as $EST_DIR/last.pem.
# Input is only ever data: decoded by base64 and parsed by openssl, never
# eval'ed or used as a path.
set -euo pipefail
umask 077
dir=${EST_DIR:?EST_DIR not set}
ca=${EST_CADIR:?EST_CADIR not set}
exec 2>>"$dir/cgi.log"

MAX=65536 # request body bound (bytes); nginx has the same client_max_body_size
endpoint=- subject='' replied=0 tmp='' auth=none

log() { # STATUS
	local client=${SSL_CLIENT_S_DN:-}
	client=${client//%/%25}
	client=${client// /%20}
	printf '%s %s %s %s auth=%s%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		"$endpoint" "$1" "${subject:--}" "$auth" \
		"${client:+ client=$client}" >>"$dir/est.log"
}

# reply CODE REASON [HEADER...]: the body is read from stdin, which must be
# a redirection, not a pipe: in a pipeline, replied=1 would be lost.
# With Content-Length, unless $dir/chunked exists: then nginx sends the
# answer chunked (Transfer-Encoding: chunked).
reply() {
	local code=$1 reason=$2 h
	shift 2
	replied=1
	cat >"$tmp/answer"
	printf 'Status: %s %s\r\n' "$code" "$reason"
	for h; do printf '%s\r\n' "$h"; done
	[ -f "$dir/chunked" ] ||
		printf 'Content-Length: %s\r\n' "$(stat -c %s "$tmp/answer")"
	printf '\r\n'
	cat "$tmp/answer"
	log "$code"
}

# fail CODE REASON MESSAGE [HEADER...]: a text/plain answer, then exit.
# Never call it in a subshell: its exit would not end the request.
fail() {
	local code=$1 reason=$2 msg=$3
	shift 3
	echo "est.cgi: $endpoint: $code $msg" >&2
	reply "$code" "$reason" "Content-Type: text/plain" "$@" <<<"$msg"
	exit 0
}

finish() {
	local rc=$?
	if [ "$replied" = 0 ]; then
		echo "est.cgi: $endpoint: failed (exit $rc) before answering" >&2
		if [ -d "$tmp" ]; then
			reply 500 "Internal Server Error" "Content-Type: text/plain" <<<"internal error"
		else
			printf 'Status: 500 Internal Server Error\r\n\r\n'
			log 500
		fi
	fi
	[ -z "$tmp" ] || rm -rf "$tmp"
}
trap finish EXIT

# number FILE: the digits in FILE (empty if none).
number() { tr -dc 0-9 <"$1" | head -c 9; }

# p7_reply FILE.pem HEADER...: base64 of a certs-only PKCS#7 (DER) of FILE.
p7_reply() {
	local pem=$1
	shift
	openssl crl2pkcs7 -nocrl -certfile "$pem" -outform DER -out "$tmp/p7.der"
	base64 "$tmp/p7.der" >"$tmp/p7.b64"
	reply 200 OK "$@" "Content-Transfer-Encoding: base64" <"$tmp/p7.b64"
}

# basic_ok: the request carries the HTTP Basic credentials of $dir/credentials.
basic_ok() {
	local want got=
	want=$(cat "$dir/credentials")
	if [[ ${HTTP_AUTHORIZATION:-} =~ ^[Bb][Aa][Ss][Ii][Cc]\ +([A-Za-z0-9+/]+=*)\ *$ ]]; then
		got=$(printf '%s' "${BASH_REMATCH[1]}" | base64 -d 2>/dev/null) || got=
	fi
	[ -n "$got" ] && [ "$got" = "$want" ]
}

# dn_of PEM: the certificate's subject, RFC 2253 (as nginx gives DNs).
dn_of() {
	local dn
	dn=$(openssl x509 -in "$1" -noout -subject -nameopt RFC2253) || return 1
	printf '%s' "${dn#subject=}"
}

# cert_from PEM: nginx verified the client certificate (against every CA
# it trusts: CADIR's and the bootstrap CA) and the CA of PEM issued it.
cert_from() {
	local issuer
	[ "${SSL_CLIENT_VERIFY:-NONE}" = SUCCESS ] && [ -f "$1" ] || return 1
	issuer=$(dn_of "$1") || return 1
	[ -n "${SSL_CLIENT_I_DN:-}" ] && [ "$SSL_CLIENT_I_DN" = "$issuer" ]
}

# check_enroll_auth: RFC 7030 3.3.2: HTTP Basic, a bootstrap certificate
# (a manufacturer's, issued by $dir/bootstrap-ca.pem), or both. Sets auth.
check_enroll_auth() {
	local cert=0 basic=0
	cert_from "$dir/bootstrap-ca.pem" && cert=1
	basic_ok && basic=1
	case $cert$basic in
	11) auth=cert+basic ;;
	10) auth=cert ;;
	01) auth=basic ;;
	*)
		# A certificate was presented, and it is no bootstrap one.
		if [ -n "${SSL_CLIENT_S_DN:-}" ] && [ -z "${HTTP_AUTHORIZATION:-}" ]; then
			fail 403 Forbidden "the client certificate is no bootstrap certificate (verify=${SSL_CLIENT_VERIFY:-NONE}, issuer ${SSL_CLIENT_I_DN:--})"
		fi
		fail 401 Unauthorized "HTTP Basic authentication required" \
			'WWW-Authenticate: Basic realm="est"'
		;;
	esac
}

# read_csr: the request body (base64 of a DER PKCS#10, line breaks allowed)
# to $tmp/csr.der, its signature checked; sets subject (RFC 2253).
read_csr() {
	local len=${CONTENT_LENGTH:-} ct=${CONTENT_TYPE:-}
	ct=${ct%%;*}
	ct=${ct//[[:space:]]/}
	[ "${ct,,}" = application/pkcs10 ] ||
		fail 415 "Unsupported Media Type" "Content-Type must be application/pkcs10"
	if [ -n "$len" ]; then
		[[ $len =~ ^[0-9]{1,9}$ ]] || fail 400 "Bad Request" "bad Content-Length"
		((10#$len <= MAX)) || fail 413 "Payload Too Large" "body over $MAX bytes"
		head -c "$((10#$len))" >"$tmp/body"
	else # chunked: nginx should have counted it, but do not rely on it
		head -c "$((MAX + 1))" >"$tmp/body"
		[ "$(stat -c %s "$tmp/body")" -le "$MAX" ] ||
			fail 413 "Payload Too Large" "body over $MAX bytes"
	fi
	tr -d ' \t\r\n' <"$tmp/body" >"$tmp/body.b64"
	base64 -d "$tmp/body.b64" >"$tmp/csr.der" 2>/dev/null ||
		fail 400 "Bad Request" "body is not base64"
	# openssl 3.0 `req -verify` exits 0 on a bad signature: read its verdict.
	openssl req -inform DER -in "$tmp/csr.der" -noout -verify >"$tmp/verify" 2>&1 || true
	cat "$tmp/verify" >&2
	grep -qx 'Certificate request self-signature verify OK' "$tmp/verify" ||
		fail 400 "Bad Request" "not a DER PKCS#10 with a valid signature"
	subject=$(openssl req -inform DER -in "$tmp/csr.der" -noout -subject \
		-nameopt RFC2253) || fail 400 "Bad Request" "unreadable CSR subject"
	subject=${subject#subject=}
	[ -n "$subject" ] || fail 400 "Bad Request" "empty CSR subject"
}

# pending: true (and one less) while $dir/pending holds a number > 0.
pending() {
	local k
	[ -f "$dir/pending" ] || return 1
	k=$(number "$dir/pending")
	[ -n "$k" ] && ((10#$k > 0)) || return 1
	echo "$((10#$k - 1))" >"$dir/pending"
}

# issue: a client certificate for $tmp/csr.der from the CA, as the answer.
issue() {
	local n dates=(-days 30)
	if [ -f "$dir/minutes" ]; then
		n=$(number "$dir/minutes")
		[ -n "$n" ] || fail 500 "Internal Server Error" "$dir/minutes holds no number"
		dates=(-enddate "$(date -u -d "+$((10#$n)) min" +%Y%m%d%H%M%SZ)")
	elif [ -f "$dir/days" ]; then
		n=$(number "$dir/days")
		[ -n "$n" ] || fail 500 "Internal Server Error" "$dir/days holds no number"
		dates=(-days "$((10#$n))")
	fi
	openssl ca -batch -preserveDN -config "$ca/ca.cnf" -extensions client_ext \
		"${dates[@]}" -inform DER -in "$tmp/csr.der" -out "$tmp/cert.pem" \
		-notext >&2 || true
	# `openssl ca` also exits 0 when it refuses to certify: look for the file.
	[ -s "$tmp/cert.pem" ] || fail 500 "Internal Server Error" "openssl ca issued nothing"
	cp "$tmp/cert.pem" "$dir/last.pem"
	p7_reply "$tmp/cert.pem" "Content-Type: application/pkcs7-mime; smime-type=certs-only"
}

# enroll: the common tail of both enroll endpoints, once the client is
# authenticated and the CSR accepted. One request at a time from here on
# (the pending counter, the CA database).
enroll() {
	exec 9>>"$dir/lock"
	flock 9
	if pending; then
		reply 202 Accepted "Retry-After: 1" "Content-Type: text/plain" <<<"request queued"
		return
	fi
	issue
}

uri=${DOCUMENT_URI:-${REQUEST_URI:-}}
uri=${uri%%\?*}
op=${uri#/.well-known/est/}
[ "$op" != "$uri" ] || op=
[[ $op == ?*/* ]] && op=${op#*/} # /.well-known/est/LABEL/op
[[ $op =~ ^[a-z]+$ ]] && endpoint=$op || endpoint=${uri:--}
endpoint=${endpoint//[^[:graph:]]/_} # one word in est.log
method=${REQUEST_METHOD:-GET}

tmp=$(mktemp -d "$dir/req.XXXXXX")
if [ -f "$dir/down" ]; then
	n=$(number "$dir/down")
	fail 503 "Service Unavailable" "EST server down" ${n:+"Retry-After: $((10#$n))"}
fi

case $op in
cacerts)
	[ "$method" = GET ] || [ "$method" = HEAD ] ||
		fail 405 "Method Not Allowed" "GET only" "Allow: GET, HEAD"
	p7_reply "$ca/ca.pem" "Content-Type: application/pkcs7-mime"
	;;
simpleenroll)
	[ "$method" = POST ] || fail 405 "Method Not Allowed" "POST only" "Allow: POST"
	check_enroll_auth
	read_csr
	enroll
	;;
simplereenroll)
	[ "$method" = POST ] || fail 405 "Method Not Allowed" "POST only" "Allow: POST"
	verify=${SSL_CLIENT_VERIFY:-NONE}
	if [ "$verify" != SUCCESS ]; then
		subject=${SSL_CLIENT_S_DN:-}
		fail 403 Forbidden "a valid client certificate is required (verify=$verify)"
	fi
	# nginx trusts the bootstrap CA too: only what this CA issued renews.
	if ! cert_from "$ca/ca.pem"; then
		subject=${SSL_CLIENT_S_DN:-}
		fail 403 Forbidden "the client certificate was not issued by this CA (issuer ${SSL_CLIENT_I_DN:--})"
	fi
	auth=cert
	read_csr
	[ "$subject" = "${SSL_CLIENT_S_DN:-}" ] ||
		fail 400 "Bad Request" "CSR subject '$subject' differs from the client certificate's '${SSL_CLIENT_S_DN:-}'"
	enroll
	;;
*)
	fail 404 "Not Found" "no such EST operation"
	;;
esac
