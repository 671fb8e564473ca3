#!/bin/bash
# openssl s_server -Verify -verify_return_error against token keys: EC and
# RSA, TLS 1.3 and TLS 1.2. s_server's page names the client's signature
# type, so this proves which token mechanism ran: ECDSA, RSA-PSS (TLS 1.3)
# and RSA PKCS#1 v1.5 (TLS 1.2).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_s_server
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Test CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"

p13=$(t_free_port)
s_server_start "$T/s13" "$p13" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_3
p12=$(t_free_port)
s_server_start "$T/s12" "$p12" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key" -tls1_2

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
# The EC identity reads its certificate from a PEM file, the RSA one from
# the token: both sources are exercised.
agent_conf_identity "$conf" ec "$T/ca/ca.pem" "$T/ec.pem"
agent_conf_identity "$conf" rsa "$T/ca/ca.pem"
identity_provision "$conf" ec ec-p256 "$T/ca" "CN=s-ec"
identity_provision "$conf" rsa rsa-2048 "$T/ca" "CN=s-rsa"
# Signing keys sign, nothing else (the TPM's RSA keys are the exception).
for id in ec rsa; do
	"$MTLSCTL" -c "$conf" key-info $id | grep -qx "decrypt: no" ||
		t_fail "the $id key on SoftHSM2 may decrypt"
done
# A second view of the same token, selected the other ways RFC 7512 allows:
# module by its p11-kit name, token by serial, model, manufacturer and
# slot-id, PIN from the URI's pin-value, key by CKA_ID.
list=$(pkcs11-tool --module "$SOFTHSM_MODULE" -L 2>/dev/null)
serial=$(sed -n 's/^ *serial num *: *//p' <<<"$list" | head -1)
slot=$(sed -n 's/^Slot 0 (\(0x[0-9a-f]*\)).*/\1/p' <<<"$list")
key_id=$(sed -n 's/^id: //p' <<<"$("$MTLSCTL" -c "$conf" key-info rsa)")
id_uri=$(sed 's/../%&/g' <<<"$key_id")
cat >>"$conf" <<-EOF

	[token byserial]
	module = softhsm2
	uri = pkcs11:serial=$serial;model=SoftHSM%20v2;manufacturer=SoftHSM%20project;slot-id=$((slot))?pin-value=tPIN-4711xq

	[identity byid]
	token = byserial
	key = pkcs11:id=$id_uri;type=private
	cert = pkcs11:id=$id_uri;type=cert
	ca = $T/ca/ca.pem
	EOF
agent_conf_tunnel "$conf" byid "$T/byid.sock" "localhost:$p13" byid
for id in ec rsa; do
	agent_conf_tunnel "$conf" ${id}13 "$T/${id}13.sock" "localhost:$p13" $id
	agent_conf_tunnel "$conf" ${id}12 "$T/${id}12.sock" "localhost:$p12" $id
done
# min_tls = 1.3 against the TLS 1.2-only server: refused in the words of
# the configuration, not as wolfSSL's "record layer version error".
agent_conf_tunnel "$conf" strict12 "$T/strict12.sock" "localhost:$p12" ec "min_tls = 1.3"
agent_start "$conf"
agent_log_mark
out=$(curl -sS --max-time 30 --unix-socket "$T/strict12.sock" http://localhost/ 2>&1 || true)
[[ $out == *"Protocol"* ]] && t_fail "min_tls = 1.3 reached a TLS 1.2 server: $out"
agent_log_wait 'tunnel=strict12 result=fail reason=tls_error .*the server does not speak TLS 1.3, and min_tls = 1.3'
echo "ok: min_tls = 1.3 against a TLS 1.2-only server says so"

s_server_check "$T/ec13.sock" s-ec TLSv1.3 ECDSA
s_server_check "$T/ec12.sock" s-ec TLSv1.2 ECDSA
s_server_check "$T/rsa13.sock" s-rsa TLSv1.3 RSA-PSS
s_server_check "$T/rsa12.sock" s-rsa TLSv1.2 RSA
s_server_check "$T/byid.sock" s-rsa TLSv1.3 RSA-PSS
# The PIN given in the URI is never shown.
grep -q 'pin-value=tPIN-4711xq' "$T/agent.log" && t_fail "pin-value logged"
t_pass "s_server verified ECDSA, RSA-PSS and RSA PKCS#1 signatures made on the token"
