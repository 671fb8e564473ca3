#!/bin/bash
# A network attacker between the agent and the server flips one byte of
# a record the server sent (tests/tools/tamper_proxy.py), once with
# AES-GCM (the record in OpenSSL's libcrypto through the crypto callback)
# and once with ChaCha20-Poly1305 (bulk_crypto = wolfssl): the agent refuses
# the record, logs a relay error, and the program receives only bytes the
# server really sent, a true prefix of the file, never the forged record.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_tamper
softhsm_init ttoken 87654321 tPIN-5813qq
printf 'tPIN-5813qq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Tamper CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
ngx=$(t_free_port)
nginx_start "$T/ngx" "$ngx" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
head -c 8M /dev/urandom >"$T/ngx/www/big.bin"
mitm=$(t_free_port)
# Record 40: well past the handshake (TLS 1.3 sends it as records of type
# 23 too), inside the file's bytes.
python3 "$(dirname "$0")/../tools/tamper_proxy.py" "$mitm" "$ngx" 40 >"$T/mitm.log" 2>&1 &
t_on_exit "kill $!"
t_wait_port "$mitm" 30 $!

conf=$T/agent.conf
agent_conf_token "$conf" ttoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=tamper-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$mitm" dev

one() { # BULK CIPHER
	local bulk=$1 cipher=$2 got
	sed -i "/^bulk_crypto = /d; s/^\[agent\]\$/[agent]\nbulk_crypto = $bulk/" "$conf"
	agent_log_mark
	if [ -n "${AGENT_PID:-}" ]; then
		kill -HUP "$AGENT_PID"
		agent_log_wait 'event=reload result=ok' 60
	else
		agent_start "$conf"
	fi
	agent_log_mark
	rm -f "$T/got.bin"
	if curl -sS --max-time 120 --unix-socket "$T/web.sock" -o "$T/got.bin" \
		http://localhost/files/big.bin 2>"$T/curl.err"; then
		t_fail "$bulk: the download completed through a forged record"
	fi
	agent_log_wait "event=handshake conn=[0-9]+ tunnel=web result=ok .*cipher=$cipher" 60
	agent_log_wait 'event=relay_error conn=[0-9]+ tunnel=web reason=tls_error' 60
	got=$(stat -c %s "$T/got.bin" 2>/dev/null || echo 0)
	[ "$got" -lt $((8 * 1024 * 1024)) ] || t_fail "$bulk: all $got bytes arrived"
	[ "$got" -gt 0 ] || t_fail "$bulk: nothing arrived before the forged record"
	# What arrived (curl keeps the body) is the server's own bytes: a
	# prefix of the file.
	cmp -n "$got" "$T/got.bin" "$T/ngx/www/big.bin" ||
		t_fail "$bulk: bytes of the forged record reached the program"
	echo "ok: $bulk ($cipher): forged record refused after $got good bytes"
}
one openssl TLS13-AES128-GCM-SHA256
one wolfssl TLS13-CHACHA20-POLY1305-SHA256
grep -c 'tampered record' "$T/mitm.log" | grep -qx 2 || t_fail "the proxy did not tamper twice: $(cat "$T/mitm.log")"
t_pass "tampered records refused with both bulk ciphers"
