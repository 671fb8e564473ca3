#!/bin/bash
# EC P-256 and RSA-2048 keys generated on a SoftHSM2 token by mtlsctl, client
# certificates from a test CA, nginx with ssl_verify_client on; curl talks
# plain HTTP into the agent's tunnel sockets. nginx must see our DN, over
# TLS 1.3 and TLS 1.2.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_nginx
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Test CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost,IP:127.0.0.1"

port13=$(t_free_port)
nginx_start "$T/ngx13" "$port13" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
# The second nginx speaks TLS 1.2 only, so that the agent falls back.
port12=$(t_free_port)
NGINX_SSL_PROTOCOLS=TLSv1.2 nginx_start "$T/ngx12" "$port12" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" ec "$T/ca/ca.pem"
agent_conf_identity "$conf" rsa "$T/ca/ca.pem"
identity_provision "$conf" ec ec-p256 "$T/ca" "CN=device-ec,O=Integration"
identity_provision "$conf" rsa rsa-2048 "$T/ca" "CN=device-rsa,O=Integration"
agent_conf_tunnel "$conf" ec13 "$T/ec13.sock" "localhost:$port13" ec "min_tls = 1.3"
agent_conf_tunnel "$conf" ec12 "$T/ec12.sock" "localhost:$port12" ec
agent_conf_tunnel "$conf" rsa13 "$T/rsa13.sock" "localhost:$port13" rsa
agent_conf_tunnel "$conf" rsa12 "$T/rsa12.sock" "localhost:$port12" rsa
tcp=$(t_free_port)
agent_conf_tunnel "$conf" tcp "127.0.0.1:$tcp" "localhost:$port13" ec
agent_start "$conf"

# nginx prints the DN in RFC 2253 order (last RDN first).
check() { # SOCKET|URL EXPECTED_DN EXPECTED_PROTO
	local out
	if [[ $1 == /* ]]; then
		out=$(curl -sS --max-time 30 --unix-socket "$1" http://localhost/)
	else
		out=$(curl -sS --max-time 30 "$1")
	fi
	[[ $out == *"dn=$2 "* ]] || t_fail "$1: nginx saw '$out', expected dn=$2"
	[[ $out == *"verify=SUCCESS"* ]] || t_fail "$1: verify failed: $out"
	[[ $out == *"proto=$3"* ]] || t_fail "$1: expected $3: $out"
	echo "ok: $1 -> $out"
}
check "$T/ec13.sock" "CN=device-ec,O=Integration" TLSv1.3
check "$T/ec12.sock" "CN=device-ec,O=Integration" TLSv1.2
check "$T/rsa13.sock" "CN=device-rsa,O=Integration" TLSv1.3
check "$T/rsa12.sock" "CN=device-rsa,O=Integration" TLSv1.2
check "http://127.0.0.1:$tcp/" "CN=device-ec,O=Integration" TLSv1.3

# Concurrent signing through the session pool: 200 requests, 32 at a time,
# on both keys.
seq 1 200 | xargs -P 32 -I{} sh -c '
	s=$([ $(({} % 2)) -eq 0 ] && echo ec13 || echo rsa12)
	curl -sS --max-time 60 --unix-socket "$T/$s.sock" http://localhost/ ||
		echo "curl failed"' >"$T/concurrent.out"
ok=$(grep -c 'verify=SUCCESS' "$T/concurrent.out" || true)
[ "$ok" -eq 200 ] || t_fail "only $ok of 200 concurrent requests verified"
echo "ok: 200 concurrent requests, 32 in flight, all verified"

# The Unix socket has the default mode 0600.
[ "$(stat -c %a "$T/ec13.sock")" = 600 ] || t_fail "socket mode $(stat -c %a "$T/ec13.sock")"
# Every handshake signed on the token, and was counted.
[ "$(grep -c 'event=handshake .*result=ok.*token_signs=1' "$T/agent.log")" -eq 205 ] ||
	t_fail "expected 205 handshakes with one token signature each"
agent_stop
grep -q 'event=stats .*handshakes_ok=205 ' "$T/agent.log" || t_fail "stats line"
t_pass "nginx saw the token identities over TLS 1.3 and 1.2 (EC and RSA)"
