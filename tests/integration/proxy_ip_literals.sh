#!/bin/bash
# Destinations given as IPv4 and IPv6 address literals, through SOCKS5
# (address types 1 and 4), HTTP CONNECT ("[::1]:PORT") and a tunnel: the
# agent connects to that address, sends no SNI (RFC 6066 3) and wants the
# address in an iPAddress SAN; a dNSName or a CN that spells the address
# does not do, nor a certificate for DNS:localhost only.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init proxy_ip_literals
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Address CA"
ca=$T/ca/ca.pem
pki_server_cert_as "$T/ca" "$T/ip" /CN=ip "IP:127.0.0.1,IP:::1,DNS:localhost" ec
pki_server_cert_as "$T/ca" "$T/dns" /CN=localhost "DNS:localhost" ec
pki_server_cert_as "$T/ca" "$T/spelled" /CN=spelled "DNS:127.0.0.1,DNS:::1" ec
openssl req -config "$T/ca/ca.cnf" -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-nodes -keyout "$T/cn.key" -out "$T/cn.csr" -subj /CN=127.0.0.1 \
	2>>"$T/ca/pki.log" || t_fail "CSR without SAN"
_pki_issue "$T/ca" server_ext "$T/cn.csr" "$T/cn.pem" -days 30

srv() { # NAME HOST CERT -> port; -tlsextdebug logs the ClientHello's extensions
	local p
	p=$(t_free_port)
	S_SERVER_HOST=$2 s_server_start "$T/s-$1" "$p" "$ca" "$T/$3.pem" "$T/$3.key" \
		-tlsextdebug >/dev/null
	echo "$p"
}
p_ip4=$(srv ip4 127.0.0.1 ip)
p_ip6=$(srv ip6 ::1 ip)
p_dns4=$(srv dns4 127.0.0.1 dns)
p_dns6=$(srv dns6 ::1 dns)
p_spelled4=$(srv spelled4 127.0.0.1 spelled)
p_spelled6=$(srv spelled6 ::1 spelled)
p_cn4=$(srv cn4 127.0.0.1 cn)
p_name=$(srv name 127.0.0.1 ip)
proxy_port=$(t_free_port)

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$ca"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=literal"
agent_conf_tunnel "$conf" t6 "$T/t6.sock" "[::1]:$p_ip6" dev
agent_conf_tunnel "$conf" t6dns "$T/t6dns.sock" "[::1]:$p_dns6" dev
agent_conf_tunnel "$conf" tname "$T/tname.sock" "localhost:$p_name" dev
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[proxy tcp]
	listen = 127.0.0.1:$proxy_port

	[profile plain]
	ca = $ca

	[rule loopback]
	cidrs = 127.0.0.1/32, ::1/128
	action = allow
	identity = dev
	profile = plain
	EOF
agent_start "$conf"

socks() { curl -sS --max-time 20 -x "socks5h://localhost$T/agent.sock" "$@"; }
connect() { curl -sS --max-time 20 -p -x "http://127.0.0.1:$proxy_port" "$@"; }
page_ok() { # WHAT PAGE
	grep -qE 'Subject: CN ?= ?literal' <<<"$2" || t_fail "$1: $2"
}
no_sni() { # SERVER
	grep -q 'TLS client extension "server name"' "$T/s-$1/s_server.log" &&
		t_fail "the agent sent SNI to the address literal of $1"
	return 0
}

# 1. Address literals with an iPAddress SAN: SOCKS5 atyp 1 and 4, CONNECT
#    to 127.0.0.1:PORT and [::1]:PORT, a tunnel to [::1]:PORT.
page_ok "SOCKS5 to 127.0.0.1" "$(socks "http://127.0.0.1:$p_ip4/")"
page_ok "SOCKS5 to [::1]" "$(socks "http://[::1]:$p_ip6/")"
agent_log_wait "event=route conn=[0-9]+ tunnel=local .*dest=::1:$p_ip6 "
page_ok "CONNECT to 127.0.0.1" "$(connect "http://127.0.0.1:$p_ip4/")"
page_ok "CONNECT to [::1]" "$(connect "http://[::1]:$p_ip6/")"
page_ok "tunnel to [::1]" "$(curl -sS --max-time 20 --unix-socket "$T/t6.sock" http://x/)"
no_sni ip4
no_sni ip6
# The control: a host name does go out as SNI.
page_ok "tunnel to localhost" "$(curl -sS --max-time 20 --unix-socket "$T/tname.sock" http://x/)"
grep -q 'TLS client extension "server name"' "$T/s-name/s_server.log" ||
	t_fail "no SNI for a host name: the SNI check above proves nothing"
echo "ok: IPv4 and IPv6 literals over SOCKS5, CONNECT and a tunnel, without SNI"

# 2. Certificates that do not name the address in an iPAddress SAN.
refused() { # WHAT CMD...
	local what=$1
	shift
	agent_log_mark
	"$@" >"$T/refused.out" 2>&1 && t_fail "$what: accepted: $(head -c 300 "$T/refused.out")"
	agent_log_wait "result=fail reason=name_mismatch "
	echo "ok: $what refused: name_mismatch"
}
refused "SOCKS5 to 127.0.0.1, DNS:localhost only" socks "http://127.0.0.1:$p_dns4/"
refused "SOCKS5 to [::1], DNS:localhost only" socks "http://[::1]:$p_dns6/"
refused "CONNECT to [::1], DNS:localhost only" connect "http://[::1]:$p_dns6/"
refused "tunnel to [::1], DNS:localhost only" \
	curl -sS --max-time 20 --unix-socket "$T/t6dns.sock" http://x/
refused "SOCKS5 to 127.0.0.1, DNS:127.0.0.1" socks "http://127.0.0.1:$p_spelled4/"
refused "CONNECT to [::1], DNS:::1" connect "http://[::1]:$p_spelled6/"
refused "CONNECT to 127.0.0.1, CN=127.0.0.1" connect "http://127.0.0.1:$p_cn4/"
t_pass "address literals connect to the address and need an iPAddress SAN"
