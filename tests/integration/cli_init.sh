#!/bin/bash
# mtlsctl init, as a new user would run it: the token found through
# p11-kit's registry, a configuration written 0600 in a 0700 folder where
# the user unit reads it, the key made on the token (sensitive, never
# extractable), the CSR printed; after the CA issued, --check passes and
# the agent reaches an mTLS server through the socket init configured.
# Mistakes: no token, two tokens, an existing file, a planted symlink.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init cli_init
home=$T/home
mkdir -p "$home" "$T/run" && chmod 700 "$T/run"
# State under the test's home: as root without XDG_STATE_HOME init would
# pick /var/lib/mtls-agent, the machine's.
export HOME=$home XDG_RUNTIME_DIR=$T/run XDG_STATE_HOME=$home/.local/state
unset XDG_CONFIG_HOME
conf=$home/.config/mtls-agent/mtls-agent.conf

# No token yet: the error says so, and nothing is written.
export SOFTHSM2_CONF=$T/softhsm2.conf
mkdir -p "$T/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$T/tokens" >"$SOFTHSM2_CONF"
printf 'iPIN-5551xq\n' >"$T/pin" && chmod 600 "$T/pin"
rc=0
out=$("$MTLSCTL" init --module "$SOFTHSM_MODULE" --pin-source "file:$T/pin" 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $out == *"no initialised token found"* ]] || t_fail "init without a token: $rc $out"
[ ! -e "$conf" ] || t_fail "init wrote a configuration without a token"

softhsm2-util --init-token --free --label "laptop token" --so-pin 87654321 --pin iPIN-5551xq >/dev/null
softhsm2-util --init-token --free --label other --so-pin 87654321 --pin oPIN-5551xq >/dev/null
# Two tokens: both listed, with the option that picks each.
rc=0
out=$("$MTLSCTL" init --module "$SOFTHSM_MODULE" --pin-source "file:$T/pin" 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $out == *"more than one token"* && $out == *"--token 'laptop token'"* &&
	$out == *"--token other "* ]] ||
	t_fail "init with two tokens: $rc $out"

pki_ca "$T/ca" "Corp CA"
pki_server_cert "$T/ca" "$T/srv" localhost "DNS:localhost"
# Through p11-kit's registry (softhsm2.module), not a path: the config
# names the module as the registry does.
"$MTLSCTL" init --token "laptop token" --pin-source "file:$T/pin" \
	--subject 'CN=laptop-42,O=Corp\, Inc.' --san DNS:laptop-42.corp.example \
	--server-ca "$T/ca/ca.pem" --allow localhost -o "$T/init.csr" >"$T/init.out" ||
	t_fail "init: $(cat "$T/init.out")"
[ "$(stat -c %a "$conf")" = 600 ] || t_fail "config mode $(stat -c %a "$conf")"
[ "$(stat -c %a "$(dirname "$conf")")" = 700 ] || t_fail "config folder mode"
grep -qx 'module = softhsm2' "$conf" || t_fail "module not by its registered name: $(cat "$conf")"
grep -qx "listen = $T/run/mtls-agent/agent.sock" "$conf" || t_fail "agent socket: $(cat "$conf")"
grep -qx "state_dir = $home/.local/state/mtls-agent" "$conf" || t_fail "state_dir: $(cat "$conf")"
[ "$(stat -c %a "$home/.local/state/mtls-agent")" = 700 ] || t_fail "state folder mode"
grep -q '^uri = pkcs11:token=laptop%20token;serial=' "$conf" || t_fail "token URI: $(cat "$conf")"
grep -q 'iPIN' "$conf" && t_fail "the PIN itself is in the configuration"
openssl req -in "$T/init.csr" -noout -verify 2>/dev/null || t_fail "the CSR does not verify"
[ "$(openssl req -in "$T/init.csr" -noout -subject -nameopt RFC2253)" = 'subject=CN=laptop-42,O=Corp\, Inc.' ] ||
	t_fail "CSR subject: $(openssl req -in "$T/init.csr" -noout -subject -nameopt RFC2253)"
openssl req -in "$T/init.csr" -noout -text | grep -q 'DNS:laptop-42.corp.example' || t_fail "CSR SAN"
grep -q "import-cert device CERT.pem" "$T/init.out" || t_fail "no next steps: $(cat "$T/init.out")"
# The key: on the token, sensitive, never extractable.
info=$("$MTLSCTL" -c "$conf" key-info device)
[[ $info == *"sensitive: yes"* && $info == *"extractable: no"* && $info == *"never_extractable: yes"* &&
	$info == *"secret_value_read: CKR_ATTRIBUTE_SENSITIVE"* ]] || t_fail "key flags: $info"

# A second init never replaces the configuration.
cp "$conf" "$T/conf.before"
rc=0
out=$("$MTLSCTL" init --token "laptop token" --pin-source "file:$T/pin" 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $out == *"exists"* ]] || t_fail "second init: $rc $out"
cmp -s "$conf" "$T/conf.before" || t_fail "second init changed the configuration"

# A symlink planted where the configuration goes is never followed.
chmod 755 "$T" "$home"
mkdir -p "$T/shared" && chmod 1777 "$T/shared"
setpriv --reuid=65534 --regid=65534 --clear-groups ln -s /etc/passwd-mtls-init-target "$T/shared/agent.conf"
sum=$(md5sum /etc/passwd)
rc=0
out=$("$MTLSCTL" -c "$T/shared/agent.conf" init --token other --pin-source "file:$T/pin" 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $out == *"exists"* ]] || t_fail "init over a planted symlink: $rc $out"
[ ! -e /etc/passwd-mtls-init-target ] || t_fail "init followed the symlink"
[ "$(md5sum /etc/passwd)" = "$sum" ] || t_fail "/etc/passwd changed"
ls "$T/shared" | grep -q init- && t_fail "a temporary file was left: $(ls "$T/shared")"

# The CA issues; --check passes; the agent serves through init's socket.
openssl x509 -req -in "$T/init.csr" -CA "$T/ca/ca.pem" -CAkey "$T/ca/ca.key" \
	-CAcreateserial -days 2 -copy_extensions copy -out "$T/device.pem" 2>/dev/null
"$MTLSCTL" -c "$conf" import-cert device "$T/device.pem" >/dev/null
"$MTLS_AGENT" -c "$conf" --check >"$T/check.out" 2>&1 || t_fail "--check: $(cat "$T/check.out")"
p=$(t_free_port)
nginx_start "$T/ngx" "$p" "$T/ca/ca.pem" "$T/srv.pem" "$T/srv.key"
# The user unit's RuntimeDirectory= makes the socket's folder.
mkdir -m 700 "$T/run/mtls-agent"
agent_start "$conf"
out=$(curl -sS --max-time 30 -x "socks5h://localhost$T/run/mtls-agent/agent.sock" "http://localhost:$p/")
[[ $out == *"dn=CN=laptop-42,O=Corp\\, Inc. verify=SUCCESS"* ]] || t_fail "through init's agent: $out"
echo "ok: init -> key on the token, CSR, --check, a request as CN=laptop-42"
t_pass
