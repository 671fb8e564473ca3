#!/bin/bash
# Configuration mistakes found only when the agent reaches a token or a
# file, as a new user makes them: an unknown module name or path, a token
# that is not there, a missing or 0644 PIN file, a missing CA file (of an
# identity, of a profile). `mtls-agent --check` refuses each with the
# file:line of the key that named it; a good configuration still passes.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init config_errors
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Config CA"
conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=config-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "127.0.0.1:$(t_free_port)" dev
"$MTLS_AGENT" --check -c "$conf" >"$T/ok.out" 2>&1 || t_fail "the good config: $(cat "$T/ok.out")"

line_of() { grep -n "^$1" "$2" | head -1 | cut -d: -f1; } # KEY= FILE
# refused SED WHAT KEY PATTERN: the config changed by SED is refused at the
# line of KEY, with PATTERN in the message.
refused() {
	local c=$T/bad.conf out n
	sed "$1" "$conf" >"$c"
	n=$(line_of "$3" "$c")
	[ -n "$n" ] || t_fail "$2: no line starts with '$3'"
	if out=$("$MTLS_AGENT" --check -c "$c" 2>&1); then
		t_fail "$2: accepted"
	fi
	grep -q -- "$c:$n: .*$4" <<<"$out" || t_fail "$2: want '$c:$n: ...$4', got: $out"
	echo "ok: $2 -> $(sed -n 's/.*detail="\(.*\)"$/\1/p' <<<"$out" | tail -1 | cut -c1-160)"
}
refused "s#^module = .*#module = no-such-module#" "an unknown module name" "module =" \
	"\[token soft\] module = no-such-module .*p11-kit list-modules"
refused "s#^module = .*#module = /nonexistent/libnothing.so#" "a module path that is not there" \
	"module =" "cannot open shared object file"
refused "s#^uri = pkcs11:token=itoken#uri = pkcs11:token=notthere#" "a token that is not inserted" \
	"uri =" "\[token soft\] uri (is the token inserted"
refused "s#^pin_source = file:.*#pin_source = file:$T/no-pin#" "a PIN file that is not there" \
	"pin_source =" "\[token soft\] pin_source"
cp "$T/pin" "$T/pin644" && chmod 644 "$T/pin644"
refused "s#^pin_source = file:.*#pin_source = file:$T/pin644#" "a PIN file others can read" \
	"pin_source =" "\[token soft\] pin_source"
refused "s#^ca = .*#ca = $T/no-ca.pem#" "an identity's CA file that is not there" \
	"ca =" "\[identity dev\] ca: .*trust anchors $T/no-ca.pem: not found"
# A profile's CA, used by the tunnel.
printf '\n[profile strict]\nca = %s\n' "$T/missing-root.pem" >>"$conf"
sed -i "s#^\[tunnel web\]#[tunnel web]\nprofile = strict#" "$conf"
refused "s#^xxx##" "a profile's CA file that is not there" "\[profile strict\]" \
	"\[profile strict\] (used by \[tunnel web\]): .*trust anchors $T/missing-root.pem: not found"
t_pass
