#!/bin/bash
# Network revocation of server certificates: the agent fetches OCSP
# answers (AIA or ocsp_url) and CRLs (distribution point) itself, caches
# them in STATE_DIR/revocation, and refuses revoked servers. Servers are
# nginx with leaves of tests/lib/revocation.sh's intermediate; responders
# are openssl ocsp (good, down, slow, wrong key), CRLs come from a plain
# HTTP nginx. Cases: good by OCSP (and the intermediate with
# revocation_chain = all); revoked by OCSP while the CRL does not list it;
# revoked by CRL only; responder down under fail-closed
# (revocation_unknown) and fail-open (allowed, counted); a slow responder
# stalls neither another server nor more than one fetch for 5 parallel
# connections; a wrong-key answer refused; a loopback responder never
# contacted without revocation_local; a stale cached CRL refused when the
# CRL server is down; a revocation reaches the proxy, a tunnel and a
# resumable session within max_age/nextUpdate; mtlsctl status; the cache's
# modes and owner, closed to uid 65534; a restart answers from the cache
# with the responder down.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/servers.sh"
. "$(dirname "$0")/../lib/agent.sh"
. "$(dirname "$0")/../lib/revocation.sh"

# Exit 77 = skipped (tests/CMakeLists.txt: SKIP_RETURN_CODE): without root.
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (unshare for openssl ocsp, setpriv)"; exit 77; }
t_init tls_revocation
softhsm_init itoken 87654321 tPIN-4711xq
printf 'tPIN-4711xq\n' >"$T/pin" && chmod 600 "$T/pin"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
START=${EPOCHREALTIME/./}

# ---- ports, PKI, responders, CRL servers
po=$(t_free_port)  # the intermediate's responder, -nmin 1 (refreshes soon)
pw=$(t_free_port)  # signed by the unrelated CA's key
pd=$(t_free_port)  # claimed, never bound: a responder that is down
ps=$(t_free_port)  # slow: 10 s, then $po
pl=$(t_free_port)  # counting forwarder to $po, for the revocation_local case
pq=$(t_free_port)  # the intermediate's responder with -ndays 1 (warm restart)
pr=$(t_free_port)  # the root's responder (for the intermediate)
pc=$(t_free_port)  # CRL server
pc2=$(t_free_port) # a second CRL server (stale case; stopped)
pa=$(t_free_port)  # uid 65534's forged responder
pt=$(t_free_port)  # uid 65534's responder answering a byte a second
P=$T/pki
rev_pki "$P" "http://127.0.0.1:$pr/" "http://127.0.0.1:$pc/root.crl"
crl=http://127.0.0.1:$pc/ca.crl
leaf() { rev_leaf "$P" "$1" "DNS:localhost" "$2" "$3"; } # NAME OCSP_URL CRL_URL
leaf good "http://127.0.0.1:$po/" "$crl"
leaf ocsprev "http://127.0.0.1:$po/" "$crl"
leaf crlrev "http://127.0.0.1:$pd/" "$crl"
leaf down "http://127.0.0.1:$pd/" ""
leaf wrong "http://127.0.0.1:$pw/" ""
leaf local "http://127.0.0.1:$pl/" ""
leaf slow "http://127.0.0.1:$ps/" ""
leaf later "http://127.0.0.1:$po/" ""
leaf stale "" "http://127.0.0.1:$pc2/ca.crl"
leaf warm "http://127.0.0.1:$pq/" ""
leaf forged "http://127.0.0.1:$pa/" ""
leaf latercrl "" "http://127.0.0.1:$pc/later.crl"
leaf trickle "http://127.0.0.1:$pt/" ""
# The CRL lists crlrev only; ocsprev is revoked after it was made.
rev_revoke "$P" "$P/crlrev.pem" keyCompromise
rev_crl "$P" int
rev_crl "$P" root
rev_revoke "$P" "$P/ocsprev.pem" keyCompromise
rev_crl_server_start "$T/crl" "$pc"
rev_crl_publish "$P" int "$T/crl/www/ca.crl"
rev_crl_publish "$P" root "$T/crl/www/root.crl"
rev_crl_publish "$P" int "$T/crl/www/later.crl"
rev_crl_server_start "$T/crl2" "$pc2"
rev_ocsp_start "$P" "$po" int responder 1
rev_ocsp_start "$P" "$pw" int other
rev_ocsp_start "$P" "$pq" int responder
rev_ocsp_start "$P" "$pr" root responder
rev_fwd_start "$P" "$ps" "127.0.0.1:$po" 10
rev_fwd_start "$P" "$pl" "127.0.0.1:$po" 0

# ---- servers: nginx with leaf + intermediate, verifying our client
pki_ca "$T/cca" "Rev Client CA"
declare -A port
for s in good chainall ocsprev crlrev down downopen wrong local slow later stale warm \
	forged trickle latercrl; do
	c=$s
	case $s in chainall) c=good ;; downopen) c=down ;; esac
	port[$s]=$(t_free_port)
	nginx_start "$T/ng-$s" "${port[$s]}" "$T/cca/ca.pem" "$P/$c.chain.pem" "$P/$c.key"
done

# ---- the agent
conf=$T/agent.conf
agent_conf_token "$conf" itoken "$T/pin"
# Resumption on: the revoked-later case needs a resumable session.
sed -i "s/^resume = no\$/resume = yes/; s#^\[agent\]\$#[agent]\ncontrol = $T/control.sock\nmetrics = $T/metrics.sock#" "$conf"
grep -qx 'resume = yes' "$conf" || t_fail "resumption not on"
agent_conf_identity "$conf" dev "$T/cca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/cca" "CN=rev-device"
profile() { # NAME key=value...: a profile trusting the root, revocation_local on
	printf '\n[profile %s]\nca = %s\n' "$1" "$P/roots.pem"
	shift
	printf '%s\n' "$@"
} >>"$conf"
profile strict "revocation_methods = ocsp, crl" "revocation_max_age = 30s" \
	"revocation_local = yes" "revocation_timeout = 5s" "revocation = fail-closed"
profile chain "revocation_methods = ocsp" "revocation_chain = all" \
	"revocation_local = yes" "revocation_timeout = 5s" "revocation = fail-closed"
profile crlonly "revocation_methods = crl" \
	"revocation_local = yes" "revocation_timeout = 5s" "revocation = fail-closed"
profile crlstale "revocation_methods = crl" "revocation_max_age = 30s" \
	"revocation_local = yes" "revocation_timeout = 5s" "revocation = fail-closed"
profile open "revocation_methods = ocsp" "revocation_local = yes" \
	"revocation_timeout = 5s" "revocation = fail-open"
profile patient "revocation_methods = ocsp" "revocation_local = yes" \
	"revocation_timeout = 30s" "revocation = fail-closed"
profile nolocal "revocation_methods = ocsp" "revocation_timeout = 5s" "revocation = fail-closed"
profile cached "revocation_methods = ocsp" "revocation_local = yes" \
	"revocation_timeout = 5s" "revocation = fail-closed"
declare -A prof=([good]=strict [chainall]=chain [ocsprev]=strict [crlrev]=crlonly
	[down]=strict [downopen]=open [wrong]=strict [local]=nolocal [slow]=patient
	[later]=strict [stale]=crlstale [warm]=cached [forged]=open [trickle]=strict
	[latercrl]=crlstale)
printf '\n[proxy local]\nlisten = %s\n' "$T/agent.sock" >>"$conf"
for s in "${!prof[@]}"; do
	printf '\n[rule %s]\nhosts = localhost\nports = %s\naction = allow\nidentity = dev\nprofile = %s\n' \
		"$s" "${port[$s]}" "${prof[$s]}" >>"$conf"
done
agent_conf_tunnel "$conf" later "$T/later.sock" "localhost:${port[later]}" dev "profile = strict"
agent_start "$conf"

# ---- helpers
via() { curl -sS --max-time 60 -x "socks5h://localhost$T/agent.sock" "http://localhost:${port[$1]}/" 2>&1 || true; }
connect() { # SERVER -> the CONNECT answer's status line and reason header
	printf 'CONNECT localhost:%s HTTP/1.1\r\n\r\n' "${port[$1]}" |
		socat -t 60 - "UNIX-CONNECT:$T/agent.sock" 2>/dev/null | tr -d '\r' |
		grep -E '^HTTP/1.1|^X-Mtls-Reason' || true
}
allowed() { # SERVER WHAT
	local out
	out=$(via "$1")
	[[ $out == *"dn=CN=rev-device verify=SUCCESS"* ]] || t_fail "$2: $out"
}
refused() { # SERVER REASON WHAT
	local out
	out=$(connect "$1")
	grep -q "^X-Mtls-Reason: $2\$" <<<"$out" || t_fail "$3: '$out', want $2"
}
# not_through SERVER: a connection through the proxy fails (then refused
# tells why: a CONNECT that succeeds would keep socat waiting).
not_through() { [[ $(via "$1") != *"dn=CN=rev-device"* ]]; }
metric() { # NAME [LABEL=VALUE...]: the sum of the matching samples (0 if none)
	local name=$1
	shift
	curl -sS --max-time 30 --unix-socket "$T/metrics.sock" http://localhost/metrics |
		awk -v name="$name" -v want="$*" '
		$1 == name || index($1, name "{") == 1 {
			n = split(want, w, " ")
			for (i = 1; i <= n; i++) {
				split(w[i], kv, "=")
				if (index($1, kv[1] "=\"" kv[2] "\"") == 0) next
			}
			sum += $2
		}
		END { print sum + 0 }'
}
fetches_are() { [ "$(rev_fetches "$P" "$2")" = "$1" ]; } # N PORT

# ---- warm-ups whose clocks run while the other cases go on
# later: cached good answers on the proxy (twice: a resumable session)
# and on the tunnel.
allowed later "later via the proxy"
allowed later "later via the proxy, again"
out=$(curl -sS --max-time 60 --unix-socket "$T/later.sock" http://localhost/)
[[ $out == *"dn=CN=rev-device verify=SUCCESS"* ]] || t_fail "later via the tunnel: $out"
agent_log_wait "result=ok server=localhost:${port[later]} .*resumed=1 " 60
# stale: a fresh CRL cached (made now: revocation_max_age is 30 s), then
# its server goes down.
rev_crl "$P" int
rev_crl_publish "$P" int "$T/crl2/www/ca.crl"
allowed stale "stale, CRL fresh"
n=$(rev_crl_fetches "$T/crl2")
[ "$n" -ge 1 ] || t_fail "stale: the CRL was not fetched"
rev_crl_server_stop "$T/crl2"
# latercrl: a good verdict from the CRL cached, then a new CRL lists it.
allowed latercrl "latercrl, before its CRL lists it"
# later: revoked now; the responder answers so from its next request.
rev_revoke "$P" "$P/later.pem" keyCompromise
rev_ocsp_refresh "$P" "$po"
REVOKED_AT=${EPOCHREALTIME/./}
rev_revoke "$P" "$P/latercrl.pem" superseded
rev_crl "$P" int
rev_crl_publish "$P" int "$T/crl/www/later.crl"

# ---- good
agent_log_mark
allowed good "good (OCSP)"
agent_log_wait "event=revocation method=ocsp outcome=good "
[ "$(metric mtls_revocation_checks_total method=ocsp outcome=good)" -ge 1 ] ||
	t_fail "no ocsp/good in the metrics"
echo "ok: good: an OCSP answer 'good' from the AIA responder lets the connection through"
n=$(rev_fetches "$P" "$pr")
allowed chainall "good, revocation_chain = all"
[ "$(rev_fetches "$P" "$pr")" -gt "$n" ] || t_fail "chain = all: the root's responder was not asked about the intermediate"
echo "ok: revocation_chain = all: the intermediate checked at the root's responder"

# ---- revoked by OCSP, the CRL not listing it
refused ocsprev revoked "revoked by OCSP"
[ "$(metric mtls_revocation_checks_total method=ocsp outcome=revoked)" -ge 1 ] ||
	t_fail "no ocsp/revoked in the metrics"
echo "ok: revoked by OCSP (the CRL does not list it): refused as revoked"

# ---- revoked by CRL only (responder down, then methods = crl)
refused crlrev revoked "revoked by CRL"
[ "$(metric mtls_revocation_checks_total method=crl outcome=revoked)" -ge 1 ] ||
	t_fail "no crl/revoked in the metrics"
[ "$(rev_crl_fetches "$T/crl")" -ge 1 ] || t_fail "the CRL server saw no fetch"
echo "ok: revoked by CRL only (revocation_methods = crl): refused as revoked"

# ---- responder down
refused down revocation_unknown "responder down, fail-closed"
[ "$(metric mtls_revocation_checks_total method=ocsp outcome=fetch_failed)" -ge 1 ] ||
	t_fail "no ocsp/fetch_failed in the metrics"
echo "ok: responder down under fail-closed: refused as revocation_unknown"
fo=$(metric mtls_revocation_fail_open_total)
agent_log_mark
allowed downopen "responder down, fail-open"
agent_log_wait "event=revocation_fail_open "
[ "$(metric mtls_revocation_fail_open_total)" -gt "$fo" ] || t_fail "mtls_revocation_fail_open_total did not grow"
echo "ok: responder down under fail-open: allowed, logged and counted"

# ---- wrong key
refused wrong revocation_unknown "wrong-key responder"
[ "$(metric mtls_revocation_checks_total method=ocsp outcome=invalid)" -ge 1 ] ||
	t_fail "no ocsp/invalid in the metrics"
[ "$(rev_fetches "$P" "$pw")" -ge 1 ] || t_fail "the wrong-key responder was not asked"
echo "ok: an answer signed by the wrong key: refused as revocation_unknown"

# ---- revocation_local = no: a loopback responder is never contacted
refused local revocation_unknown "loopback responder without revocation_local"
[ "$(rev_fetches "$P" "$pl")" = 0 ] || t_fail "the loopback responder was contacted $(rev_fetches "$P" "$pl") times"
echo "ok: without revocation_local a responder on 127.0.0.1 is not contacted: refused"

# ---- slow responder: one fetch for 5 connections; another server at once
for i in 1 2 3 4 5; do
	via slow >"$T/slow.$i" &
	eval "slow$i=\$!"
done
t_until 60 fetches_are 1 "$ps" || t_fail "the slow responder got $(rev_fetches "$P" "$ps") requests, want 1"
t0=${EPOCHREALTIME/./}
allowed good "good while the slow responder holds 5 connections"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
((ms < 5000)) || t_fail "another server took $ms ms while a responder was slow"
for i in 1 2 3 4 5; do
	eval "wait \$slow$i" || true
	grep -q "dn=CN=rev-device verify=SUCCESS" "$T/slow.$i" || t_fail "slow connection $i: $(cat "$T/slow.$i")"
done
[ "$(rev_fetches "$P" "$ps")" = 1 ] || t_fail "5 connections made $(rev_fetches "$P" "$ps") fetches, want 1"
echo "ok: slow responder (10 s): 5 parallel connections, 1 fetch, all allowed; another server meanwhile in $ms ms"

# ---- stale cached CRL, its server down
t_until 120 not_through stale ||
	t_fail "stale: a CRL past revocation_max_age still accepted with its server down"
refused stale revocation_unknown "stale CRL, its server down"
[ "$(metric mtls_revocation_checks_total method=crl outcome=stale)" -ge 1 ] ||
	t_fail "no crl/stale in the metrics"
echo "ok: a cached CRL older than revocation_max_age, its server down: refused as revocation_unknown"

# ---- the revocation of later reaches every path within max_age/nextUpdate
t_until 150 not_through later ||
	t_fail "later: still allowed $(((${EPOCHREALTIME/./} - REVOKED_AT) / 1000000)) s after the revocation"
took=$(((${EPOCHREALTIME/./} - REVOKED_AT) / 1000000))
refused later revoked "later via the proxy after the revocation"
((took <= 90)) || t_fail "later: refused only after $took s (max_age 30 s, nextUpdate 60 s)"
agent_log_mark
out=$(curl -sS --max-time 60 --unix-socket "$T/later.sock" http://localhost/ 2>&1 || true)
[[ $out == *"dn="* ]] && t_fail "later via the tunnel after the revocation: $out"
agent_log_wait "tunnel=later .*result=fail reason=revoked "
agent_log_mark
out=$(via later)
[[ $out == *"dn="* ]] && t_fail "later via a resumable session after the revocation: $out"
agent_log_wait "result=fail reason=revoked "
# The session cached before the revocation was offered and taken: the
# refusal came after a resumed handshake.
grep -q "server=localhost:${port[later]} resumed=1 detail=.*revoked" "$T/agent.log" ||
	t_fail "later: no refusal after a resumed handshake"
! tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -q "server=localhost:${port[later]} .*result=ok" ||
	t_fail "later: a connection (resumed?) succeeded after the revocation"
echo "ok: a revocation reaches the proxy, the tunnel and a resumed session in $took s"
t_until 150 not_through latercrl ||
	t_fail "latercrl: still allowed $(((${EPOCHREALTIME/./} - REVOKED_AT) / 1000000)) s after its CRL listed it"
took=$(((${EPOCHREALTIME/./} - REVOKED_AT) / 1000000))
refused latercrl revoked "latercrl after its CRL listed it"
((took <= 90)) || t_fail "latercrl: refused only after $took s (max_age 30 s)"
echo "ok: a revocation published by CRL only is refused in $took s (revocation_max_age 30 s)"

# ---- another local user answers for the responder
# uid 65534 holds the ports the certificates name (revocation_local = yes
# lets the agent ask there) and answers as it likes: an OCSP "good" signed
# by a key of its own for a certificate the CA has revoked (under
# fail-open: a forged answer is refused, not waived), and an answer sent a
# byte a second (fail-closed: refused once the fetch's time is up).
openssl ocsp -issuer "$P/int/ca.pem" -cert "$P/forged.pem" -no_nonce \
	-reqout "$T/forged.req" 2>/dev/null || t_fail "forged: request"
openssl ocsp -index "$P/int/index.txt" -CA "$P/int/ca.pem" -rsigner "$P/other/ca.pem" \
	-rkey "$P/other/ca.key" -reqin "$T/forged.req" -respout "$T/forged.der" -ndays 1 \
	>/dev/null 2>&1 || t_fail "forged: answer"
openssl ocsp -respin "$T/forged.der" -resp_text -noverify 2>/dev/null | grep -q "Cert Status: good" ||
	t_fail "forged: the forged answer does not say good"
rev_revoke "$P" "$P/forged.pem" keyCompromise
evil() { # PORT MODE: a responder as uid 65534; its answer comes on stdin
	"${NOBODY[@]}" /usr/bin/python3 -c '
import socket, sys, time
port, mode, body = int(sys.argv[1]), sys.argv[2], sys.stdin.buffer.read()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(16)
ans = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n" + \
      b"Content-Length: %d\r\n\r\n" % len(body) + body
while True:
    c, _ = s.accept()
    c.settimeout(30)
    try:
        c.recv(65536)
        if mode == "forge":
            c.sendall(ans)
        else:
            for b in ans:
                c.sendall(bytes([b])); time.sleep(1)
    except OSError:
        pass
    c.close()
' "$1" "$2" <"$T/forged.der" >>"$T/evil-$1.log" 2>&1 &
	t_on_exit "kill $! 2>/dev/null || true"
	t_wait_port "$1" 30 "$!"
}
evil "$pa" forge
evil "$pt" trickle
inv=$(metric mtls_revocation_checks_total method=ocsp outcome=invalid)
fo=$(metric mtls_revocation_fail_open_total)
refused forged revocation_unknown "an answer forged by uid 65534, under fail-open"
[ "$(metric mtls_revocation_checks_total method=ocsp outcome=invalid)" -gt "$inv" ] ||
	t_fail "forged: not counted as invalid"
[ "$(metric mtls_revocation_fail_open_total)" = "$fo" ] || t_fail "forged: waived by fail-open"
echo "ok: an OCSP 'good' forged by uid 65534 on the responder's port is refused, fail-open or not"
t0=${EPOCHREALTIME/./}
refused trickle revocation_unknown "an answer a byte a second"
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
# revocation_timeout 5 s bounds the fetch; a waiter gives up 2 s later.
((ms < 20000)) || t_fail "trickle: the connection waited $ms ms"
grep -q 'event=revocation method=ocsp outcome=fetch_failed url="http://127.0.0.1:'"$pt"'/".*within 5000 ms' \
	"$T/agent.log" || t_fail "trickle: no timed-out fetch in the log"
echo "ok: a responder of uid 65534 sending a byte a second costs the fetch's 5 s ($ms ms), then refused"

# ---- mtlsctl status
"$MTLSCTL" -c "$conf" status >"$T/status.out" 2>&1 || t_fail "mtlsctl status: $(cat "$T/status.out")"
# One line per cached answer, indented under REVOCATION; a CRL's line is
# about the list, not a certificate: status=current or stale.
grep -E '^ *revocation method=' "$T/status.out" | sed 's/^ *//' >"$T/status.rev" ||
	t_fail "mtlsctl status: no revocation lines"
for want in "method=ocsp .*status=good" "method=ocsp .*status=revoked" \
	"method=crl url=http://127.0.0.1:$pc/ca.crl .*status=current" \
	"method=crl url=http://127.0.0.1:$pc2/ca.crl .*status=stale"; do
	grep -qE -- "$want" "$T/status.rev" || t_fail "mtlsctl status lacks /$want/: $(cat "$T/status.rev")"
done
while read -r line; do
	[[ $line == *" age="* && $line == *" refresh="* ]] || t_fail "status line without age/refresh: $line"
done <"$T/status.rev"
echo "ok: mtlsctl status lists the cached answers with method, status, age and refresh"

# ---- the cache on disk: the agent's, 0700/0600, closed to uid 65534
R=$T/state/revocation
[ -d "$R" ] && [ ! -L "$R" ] || t_fail "$R is not a directory"
[ "$(stat -c '%a %u' "$R")" = "700 $(id -u)" ] || t_fail "$R: $(stat -c '%a %U' "$R")"
[ -n "$(find "$R" -mindepth 1 -print -quit)" ] || t_fail "$R is empty"
bad=$(find "$R" -mindepth 1 \( -type l -o \( -type f \! -perm 600 \) -o \! -uid "$(id -u)" \
	-o \( \! -type f \! -type d \) \))
[ -z "$bad" ] || t_fail "in $R: not 0600 files of the agent: $bad"
# Open the way to the folder, so that only its own mode protects it.
chmod 711 "$T" "$T/state"
f=$(find "$R" -type f -print -quit)
t_expect_fail "${NOBODY[@]}" ls "$R" >/dev/null 2>&1
t_expect_fail "${NOBODY[@]}" cat "$f" >/dev/null 2>&1
t_expect_fail "${NOBODY[@]}" ln -s /etc/shadow "$R/planted" 2>/dev/null
t_expect_fail "${NOBODY[@]}" /usr/bin/python3 -c 'import sys; open(sys.argv[1], "w")' "$R/planted.py" 2>/dev/null
[ ! -e "$R/planted" ] && [ ! -e "$R/planted.py" ] || t_fail "uid 65534 wrote into $R"
chmod 700 "$T" "$T/state"
echo "ok: $R is 0700 and the agent's, its files 0600, no symlinks; uid 65534 can neither list, read nor write it"

# ---- restart with a warm cache, the responder down
n=$(rev_fetches "$P" "$pq")
agent_log_mark
allowed warm "warm, responder up"
agent_log_wait "event=revocation method=ocsp outcome=good "
[ "$(rev_fetches "$P" "$pq")" -gt "$n" ] || t_fail "warm: the responder was not asked"
agent_stop
rev_ocsp_stop "$P" "$pq"
# What a crash or a tamperer may leave: a write cut short, garbage under
# an answer's name, a symlink in place of one. Each is skipped (the junk
# and the symlink removed), the real answers still count.
junk=$(printf 'a%.0s' $(seq 64))
printf 'half a record' >"$R/$junk.ocsp.tmp.4242"
printf 'mtls-agent revocation 1\nkind=ocsp\ngarbage\n' >"$R/$junk.ocsp" && chmod 600 "$R/$junk.ocsp"
ln -s /etc/passwd "$R/${junk/a/b}.crl"
agent_start "$conf"
[ ! -e "$R/$junk.ocsp.tmp.4242" ] || t_fail "an interrupted write was left in $R"
grep -q "event=revocation_cache_skipped file=\"$junk.ocsp\"" "$T/agent.log" ||
	t_fail "the garbage record was not skipped"
grep -q "event=revocation_cache_skipped file=\"${junk/a/b}.crl\"" "$T/agent.log" ||
	t_fail "the planted symlink was not skipped"
[ ! -e "$R/$junk.ocsp" ] && [ ! -L "$R/${junk/a/b}.crl" ] ||
	t_fail "the garbage record or the symlink is still in $R"
[ -s /etc/passwd ] || t_fail "/etc/passwd is gone"
# Fail-closed with the responder down: only the cache can let it through.
allowed warm "warm after a restart, responder down"
! tail -n +"$AGENT_LOG_FROM" "$T/agent.log" | grep -q 'event=revocation_fail_open' ||
	t_fail "warm: let through by fail-open, not by the cache"
echo "ok: after a restart the cached answer (nextUpdate 1 day) lets a server through with its responder down; a cut write, garbage and a symlink in the cache are skipped"

t_pass "network revocation in $(((${EPOCHREALTIME/./} - START) / 1000000)) s"
