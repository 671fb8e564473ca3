#!/bin/bash
# Server names under RFC 6125 6.4.3, with a profile's `names` and with the
# name the agent connects to (tunnels without names, the agent socket): a
# wildcard only as the whole left-most label, over one label, never "*",
# never partial, never over a single remaining label; case and a trailing
# dot do not matter; a SAN of another type (email) that spells the name
# does not count, and the CN only counts without any SAN.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tls_names
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Names CA"
ca=$T/ca/ca.pem
cert() { # NAME SAN [SUBJECT]
	pki_server_cert_as "$T/ca" "$T/$1" "${3:-/CN=test}" "$2" ec
}
cert star "DNS:*"
cert starstar "DNS:*.*.example"
cert partial "DNS:a*.corp.example"
cert zone "DNS:*.corp.example"
cert tld "DNS:*.example"
cert upper "DNS:API.Corp.Example"
cert exact "DNS:api.corp.example"
cert email "email:localhost" "/CN=localhost"
cert deep "DNS:a.b.corp.example"
# No SAN at all: the CN counts.
openssl req -config "$T/ca/ca.cnf" -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-nodes -keyout "$T/cnonly.key" -out "$T/cnonly.csr" -subj /CN=localhost \
	2>>"$T/ca/pki.log" || t_fail "CSR without SAN"
_pki_issue "$T/ca" server_ext "$T/cnonly.csr" "$T/cnonly.pem" -days 30

srv() { # CERTNAME -> port
	local p
	p=$(t_free_port)
	s_server_start "$T/s-$1" "$p" "$ca" "$T/$1.pem" "$T/$1.key" >/dev/null
	echo "$p"
}
for c in star starstar partial zone tld upper exact email deep cnonly; do
	eval "p_$c=\$(srv $c)"
done
proxy_port=$(t_free_port)

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$ca"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=names"
profile() { # NAME NAMES
	printf '\n[profile %s]\nca = %s\nnames = %s\n' "$1" "$ca" "$2" >>"$conf"
}
profile localhost "localhost"
profile api "api.corp.example"
profile zone "*.corp.example"
profile anything "*.*"
tunnel() { # NAME PORT [key = value...]
	local name=$1 port=$2
	shift 2
	agent_conf_tunnel "$conf" "$name" "$T/$name.sock" "localhost:$port" dev \
		"ca = $ca" "$@"
}
# profile names = localhost / api.corp.example / *.corp.example / *.*
tunnel p_star "$p_star" "profile = localhost"
tunnel p_starstar "$p_starstar" "profile = api"
tunnel p_partial "$p_partial" "profile = api"
tunnel p_tld "$p_tld" "profile = api"
tunnel p_zone "$p_zone" "profile = api"
tunnel p_upper "$p_upper" "profile = api"
tunnel p_pattern "$p_exact" "profile = zone"
tunnel p_pattern_deep "$p_deep" "profile = zone"
tunnel p_pattern_wild "$p_zone" "profile = zone"
tunnel p_anything "$p_exact" "profile = anything"
tunnel p_email "$p_email" "profile = localhost"
tunnel p_cnonly "$p_cnonly" "profile = localhost"
# no names: the name connected to (sni = ...) is what must match
tunnel n_star "$p_star"
tunnel n_partial "$p_partial" "sni = api.corp.example"
tunnel n_tld "$p_tld" "sni = corp.example"
tunnel n_zone "$p_zone" "sni = api.corp.example"
tunnel n_zone_deep "$p_zone" "sni = a.api.corp.example"
tunnel n_dot "$p_exact" "sni = api.corp.example."
tunnel n_upper "$p_upper" "sni = api.corp.example"
tunnel n_email "$p_email"
tunnel n_cnonly "$p_cnonly"
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[rule any]
	hosts = localhost
	action = allow
	identity = dev
	profile = plain

	[profile plain]
	ca = $ca
	EOF
agent_start "$conf"

expect_ok() { # TUNNEL
	local page
	page=$(curl -sS --max-time 20 --unix-socket "$T/$1.sock" http://localhost/) ||
		t_fail "$1: request failed"
	grep -qE 'Subject: CN ?= ?names' <<<"$page" || t_fail "$1: $page"
	echo "ok: $1 accepted"
}
expect_refused() { # TUNNEL
	agent_log_mark
	if curl -sS --max-time 20 --unix-socket "$T/$1.sock" http://localhost/ \
		>"$T/$1.out" 2>&1; then
		t_fail "$1: a server with that name was accepted"
	fi
	agent_log_wait "event=handshake conn=[0-9]+ tunnel=$1 result=fail reason=name_mismatch "
	echo "ok: $1 refused: name_mismatch"
}
expect_refused p_star
expect_refused p_starstar
expect_refused p_partial
expect_refused p_tld
expect_ok p_zone
expect_ok p_upper
expect_ok p_pattern
expect_refused p_pattern_deep
expect_ok p_pattern_wild
expect_refused p_anything
expect_refused p_email
expect_ok p_cnonly
expect_refused n_star
expect_refused n_partial
expect_refused n_tld
expect_ok n_zone
expect_refused n_zone_deep
expect_ok n_dot
expect_ok n_upper
expect_refused n_email
expect_ok n_cnonly

# The agent socket checks the destination's name the same way.
out=$(curl -sS --max-time 20 -x "socks5h://localhost$T/agent.sock" \
	"http://localhost:$p_cnonly/") || t_fail "SOCKS5 to the CN-only server"
grep -qE 'Subject: CN ?= ?names' <<<"$out" || t_fail "SOCKS5 to cnonly: $out"
agent_log_mark
curl -sS --max-time 20 -x "socks5h://localhost$T/agent.sock" \
	"http://localhost:$p_star/" >/dev/null 2>&1 &&
	t_fail "SOCKS5 to the server of DNS:* was accepted"
agent_log_wait "event=handshake conn=[0-9]+ tunnel=local result=fail reason=name_mismatch "
echo "ok: the agent socket refuses DNS:* for localhost"
t_pass "server names follow RFC 6125 with and without a profile's names"
