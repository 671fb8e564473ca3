#!/bin/bash
# Emergency revocation: a profile's CRL file replaced while the agent runs
# (atomically by rename, or rewritten in place) takes effect at the very
# next connection, on a tunnel with that profile as on the agent socket,
# with session resumption on as well; servers the new CRL does not name
# keep working, and so does a tunnel with a plain `ca` (no profile, no
# CRL).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"

t_init tunnel_crl_reload
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "CRL CA"
ca=$T/ca/ca.pem
for c in first second third bystander; do
	pki_server_cert "$T/ca" "$T/$c" localhost "DNS:localhost"
done
pki_crl "$T/ca"
mkdir -p "$T/pub"
cp "$T/ca/crl.pem" "$T/pub/crl.pem" # what the agent reads

srv() { # CERTNAME -> port
	local p
	p=$(t_free_port)
	s_server_start "$T/s-$1" "$p" "$ca" "$T/$1.pem" "$T/$1.key" >/dev/null
	echo "$p"
}
p_first=$(srv first)
p_second=$(srv second)
p_third=$(srv third)
p_bystander=$(srv bystander)

conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
agent_conf_identity "$conf" dev "$ca"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=crl-reload"
cat >>"$conf" <<-EOF

	[profile crl]
	ca = $ca
	crl = $T/pub/crl.pem
	revocation = fail-closed
	EOF
agent_conf_tunnel "$conf" first "$T/first.sock" "localhost:$p_first" dev "profile = crl"
agent_conf_tunnel "$conf" second "$T/second.sock" "localhost:$p_second" dev "profile = crl"
agent_conf_tunnel "$conf" third "$T/third.sock" "localhost:$p_third" dev "profile = crl"
agent_conf_tunnel "$conf" bystander "$T/bystander.sock" "localhost:$p_bystander" dev "profile = crl"
agent_conf_tunnel "$conf" plain "$T/plain.sock" "localhost:$p_first" dev "ca = $ca"
cat >>"$conf" <<-EOF

	[proxy local]
	listen = $T/agent.sock

	[rule any]
	hosts = localhost
	action = allow
	identity = dev
	profile = crl
	EOF
agent_start "$conf"

via_tunnel() { curl -sS --max-time 20 --unix-socket "$T/$1.sock" http://localhost/; }
via_socks() { curl -sS --max-time 20 -x "socks5h://localhost$T/agent.sock" "http://localhost:$1/"; }
ok() { # WHAT PAGE
	grep -qE 'Subject: CN ?= ?crl-reload' <<<"$2" || t_fail "$1: $2"
}
revoked() { # WHAT CMD...: exactly the next connection is refused as revoked
	local what=$1
	shift
	agent_log_mark
	"$@" >"$T/out" 2>&1 && t_fail "$what: still connects after the new CRL"
	agent_log_wait "result=fail reason=revoked "
	echo "ok: $what: refused as revoked at the next connection"
}
new_crl() { # CERTNAME: revokes it, the new CRL in $T/ca/crl.pem
	pki_revoke "$T/ca" "$T/$1.pem" >/dev/null
	pki_crl "$T/ca"
}

# Every path works, and uses its context more than once.
for _ in 1 2; do
	ok "tunnel first" "$(via_tunnel first)"
	ok "tunnel second" "$(via_tunnel second)"
	ok "SOCKS5 to first" "$(via_socks "$p_first")"
done
ok "tunnel plain" "$(via_tunnel plain)"

# 1. Replaced by rename: a new file takes the name.
new_crl first
cp "$T/ca/crl.pem" "$T/pub/crl.pem.new"
mv -f "$T/pub/crl.pem.new" "$T/pub/crl.pem"
revoked "tunnel first (CRL renamed into place)" via_tunnel first
agent_log_wait "event=crl_reload profile=crl tunnel=first old_ctx=[0-9]+"
# A new context, with a serial of its own (what resumption will key on).
old_ctx=$(grep -oE 'event=crl_reload profile=crl tunnel=first old_ctx=[0-9]+' \
	"$T/agent.log" | tail -n 1 | sed 's/.*=//')
new_ctx=$(grep -oE 'event=tls_context tunnel=first profile=crl ctx=[0-9]+' \
	"$T/agent.log" | tail -n 1 | sed 's/.*=//')
[ -n "$new_ctx" ] && [ "$old_ctx" != 0 ] && [ "$new_ctx" != "$old_ctx" ] ||
	t_fail "context serials: old '$old_ctx', new '$new_ctx'"
revoked "SOCKS5 to first (CRL renamed into place)" via_socks "$p_first"
ok "tunnel second" "$(via_tunnel second)"
ok "tunnel bystander" "$(via_tunnel bystander)"

# 2. Rewritten in place: the same file (inode) gets the new contents.
new_crl second
ino=$(stat -c %i "$T/pub/crl.pem")
cat "$T/ca/crl.pem" >"$T/pub/crl.pem"
[ "$(stat -c %i "$T/pub/crl.pem")" = "$ino" ] || t_fail "not rewritten in place"
revoked "tunnel second (CRL rewritten in place)" via_tunnel second
revoked "SOCKS5 to second (CRL rewritten in place)" via_socks "$p_second"
revoked "tunnel first (still revoked)" via_tunnel first
ok "tunnel bystander" "$(via_tunnel bystander)"
ok "SOCKS5 to bystander" "$(via_socks "$p_bystander")"

# A plain `ca` has no CRL: its tunnel still connects (to the server whose
# certificate the profile's CRL revoked: that CRL is not its business).
ok "tunnel plain" "$(via_tunnel plain)"

# 3. With resumption (the default): a resumed handshake checks no
#    certificate, so no session may outlive the context that checked it.
agent_stop
sed -i 's/^resume = no$/resume = yes/' "$conf"
grep -qx 'resume = yes' "$conf" || t_fail "resumption not on"
agent_start "$conf"
for _ in 1 2; do
	ok "tunnel third" "$(via_tunnel third)"
	ok "SOCKS5 to third" "$(via_socks "$p_third")"
done
agent_log_wait "tunnel=third result=ok .* resumed=1 "
agent_log_wait "tunnel=local result=ok server=localhost:$p_third .* resumed=1 "
new_crl third
cp "$T/ca/crl.pem" "$T/pub/crl.pem.new"
mv -f "$T/pub/crl.pem.new" "$T/pub/crl.pem"
revoked "tunnel third (resumable session)" via_tunnel third
revoked "SOCKS5 to third (resumable session)" via_socks "$p_third"
t_pass "a replaced CRL counts from the next connection on every path"
