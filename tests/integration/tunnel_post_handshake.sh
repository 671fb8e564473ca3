#!/bin/bash
# A hostile server asks for our certificate after the handshake (a TLS 1.3
# CertificateRequest the agent never offered post_handshake_auth for;
# tests/tools/hostile_tls.py), once after a handshake that asked for none
# and once after one that did. wolfSSL 5.5.4 answers it from inside
# wolfSSL_read, on the relay's event loop: before the fix the token signed
# a CertificateVerify there, outside the handshake limits, as often as the
# server asked. Now the token signs in the first handshake only: the agent
# refuses, and the server receives no CertificateVerify.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_post_handshake
softhsm_init phtoken 87654321 phPIN-2291xx
printf 'phPIN-2291xx\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Post-handshake CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
python3 "$(dirname "$0")/../tools/hostile_tls.py" "$port" "$T/server.pem" \
	"$T/server.key" "$T/ca/ca.pem" "$T" >"$T/hostile.log" 2>&1 &
t_on_exit "kill $!"
t_wait_port "$port" 30 $!

conf=$T/agent.conf
agent_conf_token "$conf" phtoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=post-handshake-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_start "$conf"

answered() { [ "$(grep -c '^client answered:' "$T/hostile.log")" -ge "$1" ]; }
for i in 1 2; do
	agent_log_mark
	if curl -sS --max-time 60 --unix-socket "$T/web.sock" -o /dev/null \
		http://localhost/ 2>"$T/curl.err"; then
		t_fail "a request went through a server that asked to sign again"
	fi
	agent_log_wait "conn=[0-9]+ tunnel=web .*asked for our signature again after the handshake" 60
	t_until 60 answered "$i" ||
		t_fail "the server did not report connection $i: $(cat "$T/hostile.log")"
done
# What the client sent after the CertificateRequest: wolfSSL's Certificate
# may go out before the signature is asked for; a CertificateVerify never.
if grep '^client answered:' "$T/hostile.log" | grep -q certificate_verify; then
	t_fail "the token signed for a post-handshake request: $(cat "$T/hostile.log")"
fi
# Both kinds of handshake happened: one signed nothing, one signed once.
grep -q 'token_signs=0 ' "$T/agent.log" || t_fail "no handshake without a signature"
grep -q 'token_signs=1 ' "$T/agent.log" || t_fail "no handshake signed once"
echo "ok: $(grep -c '^client answered:' "$T/hostile.log") post-handshake requests refused, none signed:"
grep '^client answered:' "$T/hostile.log" | sed 's/^/    /'
t_pass "the token signs once per handshake"
