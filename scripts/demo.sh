#!/bin/bash
# The demo: mtls-agent's main job on an embedded default, on one machine.
#   1. a SoftHSM2 token under state/demo, with an EC P-256 key generated ON
#      the token by mtlsctl (sensitive, never extractable);
#   2. a local development CA issues the client certificate from a CSR that
#      the token signed; the certificate is stored on the token;
#   3. a local nginx that requires client certificates, on 127.0.0.1;
#   4. mtls-agent with one tunnel: a Unix socket -> nginx;
#   5. curl speaks plain HTTP into the socket; nginx answers with the client
#      DN it verified, which is printed.
# Safe to run twice: each run starts from a fresh state folder and stops
# what it started. Set MTLS_DEMO_KEEP=1 to leave the agent and nginx running.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
scripts/deps.sh
BUILD=build scripts/build.sh >/dev/null

STATE=${MTLS_DEMO_STATE:-$REPO/state/demo}
# Stop whatever a previous run left behind, then start clean.
for pidfile in "$STATE/agent.pid" "$STATE/nginx/nginx.pid"; do
	[ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
done
rm -rf "$STATE"
mkdir -p "$STATE"
chmod 700 "$STATE"
T=$STATE

CLEANUP=()
t_on_exit() { CLEANUP+=("$*"); }
cleanup() {
	[ "${MTLS_DEMO_KEEP:-0}" = 1 ] && return
	for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${CLEANUP[$i]}" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT
t_wait_port() {
	for _ in $(seq 1 100); do
		ss -Htln "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	echo "nothing listens on $1" >&2
	return 1
}
t_fail() { echo "demo failed: $*" >&2; exit 1; }
. tests/lib/pki.sh
. tests/lib/servers.sh

MTLSCTL=$REPO/build/agent/mtlsctl
MTLS_AGENT=$REPO/build/agent/mtls-agent
# A free loopback port for nginx (18443 unless taken).
PORT=${MTLS_DEMO_PORT:-18443}
while ss -Htln "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done

step() { printf '\n== %s\n' "$*"; }

step "SoftHSM2 token 'mtls-demo' in $STATE/tokens"
export SOFTHSM2_CONF=$STATE/softhsm2.conf
mkdir -p "$STATE/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$STATE/tokens" >"$SOFTHSM2_CONF"
# A demo PIN, kept in a file only its owner can read.
umask 077
printf '%s\n' "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" >"$STATE/pin"
umask 022
softhsm2-util --init-token --free --label mtls-demo \
	--so-pin "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" \
	--pin "$(cat "$STATE/pin")" >/dev/null

step "development CA and nginx on 127.0.0.1:$PORT (ssl_verify_client on)"
pki_ca "$STATE/ca" "mtls-agent demo CA"
pki_server_cert "$STATE/ca" "$STATE/server" localhost "DNS:localhost,IP:127.0.0.1"
nginx_start "$STATE/nginx" "$PORT" "$STATE/ca/ca.pem" "$STATE/server.pem" \
	"$STATE/server.key"

cat >"$STATE/agent.conf" <<EOF
[agent]
log_level = info

[token demo]
module = /usr/lib/softhsm/libsofthsm2.so
uri = pkcs11:token=mtls-demo
pin_source = file:$STATE/pin

[identity workstation]
token = demo
key = pkcs11:object=workstation-key;type=private
cert = pkcs11:object=workstation-cert;type=cert
ca = $STATE/ca/ca.pem

[tunnel web]
listen = $STATE/web.sock
connect = localhost:$PORT
identity = workstation
EOF

step "EC P-256 key generated on the token"
"$MTLSCTL" -c "$STATE/agent.conf" keygen workstation --type ec-p256
"$MTLSCTL" -c "$STATE/agent.conf" key-info workstation | sed 's/^/   /'

step "CSR signed on the token, certificate issued by the CA, stored on the token"
"$MTLSCTL" -c "$STATE/agent.conf" csr workstation \
	--subject "CN=$(hostname)-demo,O=mtls-agent demo" -o "$STATE/workstation.csr"
pki_sign_csr "$STATE/ca" "$STATE/workstation.csr" "$STATE/workstation.pem"
"$MTLSCTL" -c "$STATE/agent.conf" import-cert workstation "$STATE/workstation.pem"

step "mtls-agent with tunnel $STATE/web.sock -> localhost:$PORT"
"$MTLS_AGENT" -c "$STATE/agent.conf" 2>"$STATE/agent.log" &
echo $! >"$STATE/agent.pid"
t_on_exit "kill $(cat "$STATE/agent.pid")"
for _ in $(seq 1 100); do
	grep -q 'event=ready' "$STATE/agent.log" && break
	sleep 0.05
done
grep -q 'event=ready' "$STATE/agent.log" || { cat "$STATE/agent.log"; t_fail "agent did not start"; }

step "curl --unix-socket $STATE/web.sock http://localhost/"
answer=$(curl -sS --max-time 10 --unix-socket "$STATE/web.sock" http://localhost/)
echo "   nginx answered: $answer"
dn=$(sed -n 's/^dn=\(.*\) verify=SUCCESS.*/\1/p' <<<"$answer")
[ -n "$dn" ] || t_fail "nginx did not verify a client certificate"
grep 'event=handshake' "$STATE/agent.log" | sed 's/^/   agent: /'
printf '\nClient DN seen by nginx: %s\n' "$dn"
