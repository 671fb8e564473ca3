#!/bin/bash
# The key mtlsctl generates is a token object that is private, sensitive and
# never extractable (checked by mtlsctl and independently by OpenSC's
# pkcs11-tool), and the key and certificate the project's tooling put on the
# token are usable by others: curl with libp11's engine reaches the same
# nginx with them.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init token_key_interop
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Test CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
port=$(t_free_port)
nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=interop,O=Tooling"

# 1. Attributes as mtlsctl reads them.
info=$("$MTLSCTL" -c "$conf" key-info dev)
for want in "token: yes" "private: yes" "sensitive: yes" "extractable: no" \
	"always_sensitive: yes" "never_extractable: yes" \
	"secret_value_read: CKR_ATTRIBUTE_SENSITIVE"; do
	grep -qx "$want" <<<"$info" || t_fail "key-info lacks '$want': $info"
done

# 2. The same, seen by an independent PKCS#11 client.
objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin tPIN-4711xq \
	--list-objects --type privkey 2>/dev/null)
grep -q 'label: *dev-key' <<<"$objs" || t_fail "pkcs11-tool: no dev-key: $objs"
grep -q 'Access: *sensitive, always sensitive, never extractable' <<<"$objs" ||
	t_fail "pkcs11-tool: key not sensitive/never extractable: $objs"
grep -qE 'Usage: *sign$' <<<"$objs" || t_fail "pkcs11-tool: key usable for more than signing: $objs"

# 3. A second keygen under the same name is refused: lookups stay unique.
if "$MTLSCTL" -c "$conf" keygen dev >/dev/null 2>"$T/dup.err"; then
	t_fail "duplicate keygen succeeded"
fi
t_assert_contains "$T/dup.err" 'ambiguous|already exists'

# 4. curl + libp11's engine with the key AND the certificate from the token.
out=$(PKCS11_MODULE_PATH=$SOFTHSM_MODULE curl -sS --max-time 60 \
	--engine pkcs11 --key-type ENG --cert-type ENG \
	--key 'pkcs11:token=itoken;object=dev-key;type=private;pin-value=tPIN-4711xq' \
	--cert 'pkcs11:token=itoken;object=dev-cert;type=cert;pin-value=tPIN-4711xq' \
	--cacert "$T/ca/ca.pem" "https://localhost:$port/")
[[ $out == *"dn=CN=interop,O=Tooling verify=SUCCESS"* ]] ||
	t_fail "curl+libp11 got: $out"
echo "ok: curl + libp11 with the token's key and certificate: $out"

# 5. And the agent presents the same identity to the same server.
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_start "$conf"
out2=$(curl -sS --max-time 30 --unix-socket "$T/web.sock" http://localhost/)
[[ $out2 == *"dn=CN=interop,O=Tooling verify=SUCCESS"* ]] || t_fail "agent got: $out2"
t_pass "key is sensitive and never extractable; libp11 and the agent both use it"
