# An ACME (RFC 8555) test CA made of real parts: Debian's pebble (2.4.0)
# and pebble-challtestsrv (its mock DNS server), loopback only, all files
# under the given directory, stopped by the test's cleanup. lego (Debian,
# 4.9.1) is an independent ACME client to check it with
# (tests/integration/selftest_pebble.sh).
# Needs the Debian packages pebble and lego (scripts/deps.sh), curl, openssl.
#
# pebble_start DIR [KEY=VALUE...]
#   Starts pebble-challtestsrv, then pebble, on fresh 127.0.0.1 ports; waits
#   until the directory and the management interface answer (else stops
#   what it started and fails the test with pebble's log); registers
#   pebble_stop DIR. Call it in the
#   test's own shell, not in $(...): it exports the variables below.
#   Options:
#     eab=KID:KEY         external account binding required, with this MAC
#                         key (base64url, no padding) for key id KID; may be
#                         given several times (externalAccountMACKeys)
#     validity=SECONDS    certificateValidityPeriod (pebble's default: 5
#                         years); pebble sets notAfter = notBefore+SECONDS-1
#     nonce_reject=PCT    PEBBLE_WFE_NONCEREJECT: share of good nonces
#                         refused as badNonce (default 0 here; pebble's own
#                         default is 5)
#     authz_reuse=PCT     PEBBLE_AUTHZREUSE: how often a valid authorization
#                         is reused for a new order (default 0 here; pebble's
#                         own default is 50). 0 still reuses 1% of the time
#                         (pebble tests rand.Intn(100) > PCT): order a name
#                         not validated before to be sure of a pending one
#     always_valid=1      PEBBLE_VA_ALWAYS_VALID: challenges pass unchecked
#     va_sleep=SECONDS    the VA sleeps a random 0..SECONDS-1 s before each
#                         validation (PEBBLE_VA_SLEEPTIME; default: no sleep,
#                         PEBBLE_VA_NOSLEEP=1)
#     alternate_roots=N   PEBBLE_ALTERNATE_ROOTS: N more roots (and chains)
#     chain_length=N      PEBBLE_CHAIN_LENGTH: intermediates between root and
#                         leaf, N >= 1 (default 1; 0 makes pebble panic)
#     http_port=P         the port pebble's VA connects to for http-01, on the
#                         address the mock DNS gives (127.0.0.1): the client
#                         listens there; pebble ignores any port in an
#                         identifier (default: a fresh port, claimed for the
#                         test, free for the client to bind)
#     tls_port=P          the same for tls-alpn-01 (default: a fresh port)
#     port=P, mgmt_port=P the ACME and management ports (default: fresh;
#                         given ones are not claimed: a restart on the same
#                         ports after pebble_stop passes the old ones)
#     strict=1            pebble -strict
#     dns=1               accepted, and what always happens: the mock DNS is
#                         pebble's only resolver, so that any name
#                         (e.g. x.acme.test) resolves to 127.0.0.1 for http-01
#                         as for dns-01's TXT records
#   Mock DNS (pebble-challtestsrv): UDP and TCP on a fresh 127.0.0.1 port;
#   A queries are answered 127.0.0.1 unless /add-a says otherwise, AAAA
#   queries get no answer (-defaultIPv6 ""; pebble's VA would use an AAAA
#   address first); its HTTP-01, HTTPS-01 and TLS-ALPN-01 servers are off.
#   pebble's own HTTPS certificate comes from a pki.sh CA in DIR/tls (kept
#   across restarts in the same DIR): DNS:localhost, IP:127.0.0.1.
#   Exported (and written as shell assignments into DIR/env):
#     PEBBLE_DIR_URL   https://127.0.0.1:PORT/dir
#     PEBBLE_CA        DIR/acme-ca.pem: trust anchor for the ACME and the
#                      management HTTPS servers (not the issuing root: see
#                      pebble_roots)
#     PEBBLE_PORT, PEBBLE_MGMT_PORT
#     PEBBLE_MGMT      https://127.0.0.1:MPORT (GET /roots/N,
#                      /intermediates/N, /cert-status-by-serial/HEX)
#     PEBBLE_HTTP_PORT, PEBBLE_TLS_PORT
#     CHALLTEST_MGMT   http://127.0.0.1:CPORT (challtestsrv's API: POST JSON
#                      to /set-txt, /clear-txt, /add-a, /set-servfail, ...)
#     CHALLTEST_DNS    127.0.0.1:DNSPORT
#     PEBBLE_HOOK      DIR/dns-hook.sh, an installed copy of
#                      tests/lib/acme/dns-hook.sh (mode 0700) that finds its
#                      configuration (DIR/dns-hook.conf) beside itself: an
#                      agent may run it with no environment but PATH
#     DNS_HOOK_CONF    DIR/dns-hook.conf, for the copy in the source tree
#   Also DIR/dns-hook.log (the hook's calls; see the hook's header for its
#   switch files DIR/dns-hook.fail and DIR/dns-hook.noop), DIR/pebble.log,
#   DIR/challtestsrv.log, DIR/pebble.json, and pebble_roots' files.
#
# pebble_roots DIR
#   Fetches from the management interface (pebble makes new roots and
#   intermediates at every start; pebble_start calls this once):
#   DIR/root-N.pem for every root N (0 is the default chain's, 1.. the
#   alternates'), DIR/roots.pem = root 0, DIR/roots-all.pem = all roots,
#   DIR/intermediate-N.pem, the issuer of leaves in chain N (with
#   chain_length > 1 the intermediates above it come only with a
#   certificate's chain).
#
# pebble_cert_status DIR SERIAL_HEX
#   Prints Valid or Revoked (GET /cert-status-by-serial/SERIAL_HEX; the
#   serial as openssl prints it, "serial=" and colons allowed), or nothing
#   for a serial that pebble did not issue. Status 1 with a message if the
#   management interface does not answer.
#
# pebble_stop DIR
#   Stops pebble, then pebble-challtestsrv; safe to call twice.

PEBBLE_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
declare -F server_stop >/dev/null || . "$PEBBLE_LIB/servers.sh"
declare -F pki_ca >/dev/null || . "$PEBBLE_LIB/pki.sh"

# How long pebble and challtestsrv may take to listen and answer
# (pebble_start takes ~1 s on an idle machine).
: "${PEBBLE_START_SECS:=60}"

_pebble_num() { # NAME VALUE: VALUE is a number, or the test fails
	[[ $2 =~ ^[0-9]+$ ]] || t_fail "pebble_start: $1=$2 is not a number"
}

# _pebble_free_port_udp: a fresh port (t_free_port) that no UDP socket uses
# either: the mock DNS binds both.
_pebble_free_port_udp() {
	local p
	for _ in $(seq 1 100); do
		p=$(t_free_port)
		ss -Huan "sport = :$p" | grep -q . || {
			echo "$p"
			return 0
		}
	done
	t_fail "no port free for both TCP and UDP"
}

# _pebble_fail DIR MESSAGE: stops what pebble_start started, then fails
# the test (also when pebble_start ran in a subshell, which would leave
# its children behind).
_pebble_fail() {
	pebble_stop "$1"
	t_fail "$2"
}

_pebble_alive() { # DIR NAME: fails the test if DIR/NAME.pid died (DIR/NAME.log)
	kill -0 "$(cat "$1/$2.pid")" 2>/dev/null && return 0
	_pebble_fail "$1" "$2 exited: $(tail -n 20 "$1/$2.log" 2>/dev/null)"
}

_pebble_listens() { # DIR NAME PORT [udp]: DIR/NAME.pid listens on PORT (TCP)
	local proto=t
	[ "${4:-}" = udp ] && proto=u
	ss -H${proto}lnp "sport = :$3" | grep -q "pid=$(cat "$1/$2.pid")," && return 0
	_pebble_alive "$1" "$2"
	return 1
}

_pebble_ready() { # DIR URL MGMT CA
	curl -sf --max-time 10 --cacert "$4" -o /dev/null "$2" 2>/dev/null &&
		curl -sf --max-time 10 --cacert "$4" -o /dev/null "$3/roots/0" 2>/dev/null &&
		return 0
	_pebble_alive "$1" pebble
	return 1
}

pebble_start() {
	local dir=$1 opt k v
	shift
	local eab=() validity=0 nonce_reject=0 authz_reuse=0 always_valid=0
	local va_sleep=0 alternate_roots=0 chain_length=1 strict=0
	local port= mgmt_port= http_port= tls_port=
	for opt in "$@"; do
		[[ $opt == *=* ]] || t_fail "pebble_start: option '$opt' is not KEY=VALUE"
		k=${opt%%=*} v=${opt#*=}
		case $k in
		eab)
			[[ $v =~ ^[A-Za-z0-9._-]+:[A-Za-z0-9_-]+$ ]] ||
				t_fail "pebble_start: eab=$v is not KID:BASE64URLKEY"
			eab+=("$v")
			;;
		validity | nonce_reject | authz_reuse | va_sleep | alternate_roots | \
			chain_length | port | mgmt_port | http_port | tls_port)
			_pebble_num "$k" "$v"
			printf -v "$k" %s "$v"
			;;
		always_valid | strict | dns)
			[[ $v =~ ^[01]$ ]] || t_fail "pebble_start: $k=$v: 0 or 1"
			[ "$k" = dns ] || printf -v "$k" %s "$v"
			;;
		*) t_fail "pebble_start: unknown option '$k'" ;;
		esac
	done
	((chain_length >= 1)) || t_fail "pebble_start: chain_length must be at least 1"
	local b
	for b in pebble pebble-challtestsrv curl openssl; do
		command -v "$b" >/dev/null ||
			t_fail "$b is not installed (apt-get install pebble lego; scripts/deps.sh)"
	done
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	rm -f "$dir/pebble.pid" "$dir/challtestsrv.pid"

	# pebble's HTTPS certificate, from a CA of our own (kept for restarts).
	if [ ! -s "$dir/tls/server.pem" ]; then
		pki_ca "$dir/tls" "Pebble test TLS CA"
		pki_server_cert "$dir/tls" "$dir/tls/server" localhost "DNS:localhost,IP:127.0.0.1" 3650
	fi
	cp "$dir/tls/ca.pem" "$dir/acme-ca.pem"

	[ -n "$port" ] || port=$(t_free_port)
	[ -n "$mgmt_port" ] || mgmt_port=$(t_free_port)
	[ -n "$http_port" ] || http_port=$(t_free_port)
	[ -n "$tls_port" ] || tls_port=$(t_free_port)
	local dns_port cts_port
	dns_port=$(_pebble_free_port_udp)
	cts_port=$(t_free_port)

	local macs= kv sep=
	for kv in "${eab[@]}"; do
		macs+="$sep\"${kv%%:*}\": \"${kv#*:}\""
		sep=", "
	done
	local eab_required=false
	[ ${#eab[@]} -gt 0 ] && eab_required=true
	cat >"$dir/pebble.json" <<-EOF
	{
	  "pebble": {
	    "listenAddress": "127.0.0.1:$port",
	    "managementListenAddress": "127.0.0.1:$mgmt_port",
	    "certificate": "$dir/tls/server.pem",
	    "privateKey": "$dir/tls/server.key",
	    "httpPort": $http_port,
	    "tlsPort": $tls_port,
	    "ocspResponderURL": "",
	    "externalAccountBindingRequired": $eab_required,
	    "externalAccountMACKeys": { $macs },
	    "certificateValidityPeriod": $validity
	  }
	}
	EOF

	t_on_exit "pebble_stop $(printf '%q' "$dir")"

	# The mock DNS; only its DNS server and the management API.
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin pebble-challtestsrv \
		-http01 "" -https01 "" -tlsalpn01 "" \
		-dns01 "127.0.0.1:$dns_port" -management "127.0.0.1:$cts_port" \
		-defaultIPv4 127.0.0.1 -defaultIPv6 "" \
		</dev/null >>"$dir/challtestsrv.log" 2>&1 &
	echo $! >"$dir/challtestsrv.pid"
	local what
	for what in "$dns_port" "$dns_port udp" "$cts_port"; do
		# shellcheck disable=SC2086 # "PORT [udp]"
		t_until "$PEBBLE_START_SECS" _pebble_listens "$dir" challtestsrv $what ||
			_pebble_fail "$dir" "pebble-challtestsrv is not listening on $what after ${PEBBLE_START_SECS}s"
	done

	# pebble itself, with no PEBBLE_* from the test's environment but ours.
	local envs=(PATH=/usr/sbin:/usr/bin:/sbin:/bin
		"PEBBLE_WFE_NONCEREJECT=$nonce_reject" "PEBBLE_AUTHZREUSE=$authz_reuse"
		"PEBBLE_ALTERNATE_ROOTS=$alternate_roots" "PEBBLE_CHAIN_LENGTH=$chain_length")
	if ((va_sleep > 0)); then
		envs+=("PEBBLE_VA_SLEEPTIME=$va_sleep")
	else
		envs+=(PEBBLE_VA_NOSLEEP=1)
	fi
	((always_valid)) && envs+=(PEBBLE_VA_ALWAYS_VALID=1)
	local args=(-config "$dir/pebble.json" -dnsserver "127.0.0.1:$dns_port")
	((strict)) && args+=(-strict)
	(cd "$dir" && exec env -i "${envs[@]}" pebble "${args[@]}") \
		</dev/null >>"$dir/pebble.log" 2>&1 &
	echo $! >"$dir/pebble.pid"

	export PEBBLE_DIR_URL=https://127.0.0.1:$port/dir
	export PEBBLE_CA=$dir/acme-ca.pem
	export PEBBLE_PORT=$port PEBBLE_MGMT_PORT=$mgmt_port
	export PEBBLE_MGMT=https://127.0.0.1:$mgmt_port
	export PEBBLE_HTTP_PORT=$http_port PEBBLE_TLS_PORT=$tls_port
	export CHALLTEST_MGMT=http://127.0.0.1:$cts_port
	export CHALLTEST_DNS=127.0.0.1:$dns_port
	export PEBBLE_HOOK=$dir/dns-hook.sh
	export DNS_HOOK_CONF=$dir/dns-hook.conf
	local var
	for var in PEBBLE_DIR_URL PEBBLE_CA PEBBLE_PORT PEBBLE_MGMT_PORT PEBBLE_MGMT \
		PEBBLE_HTTP_PORT PEBBLE_TLS_PORT CHALLTEST_MGMT CHALLTEST_DNS \
		PEBBLE_HOOK DNS_HOOK_CONF; do
		printf '%s=%q\n' "$var" "${!var}"
	done >"$dir/env"

	# The hook, a copy (its mode does not depend on the checkout) that finds
	# its configuration beside itself.
	install -m 0700 "$PEBBLE_LIB/acme/dns-hook.sh" "$dir/dns-hook.sh"
	printf 'mgmt=%s\ndir=%s\n' "$CHALLTEST_MGMT" "$dir" >"$dir/dns-hook.conf"
	: >>"$dir/dns-hook.log"

	t_until "$PEBBLE_START_SECS" _pebble_ready "$dir" "$PEBBLE_DIR_URL" "$PEBBLE_MGMT" \
		"$PEBBLE_CA" ||
		_pebble_fail "$dir" "pebble did not answer on $PEBBLE_DIR_URL within ${PEBBLE_START_SECS}s: $(tail -n 20 "$dir/pebble.log")"
	# The listeners must be this pebble's, not whatever else has the ports.
	for what in "$port" "$mgmt_port"; do
		t_port_owner "$what" "$(cat "$dir/pebble.pid")" ||
			_pebble_fail "$dir" "port $what is not pebble's: $(ss -Htlnp "sport = :$what")"
	done
	pebble_roots "$dir"
}

# _pebble_var DIR NAME: NAME's value in DIR/env.
_pebble_var() {
	[ -f "$1/env" ] || {
		echo "pebble: no $1/env (pebble_start first)" >&2
		return 1
	}
	(. "$1/env" && printf '%s' "${!2}")
}

# _pebble_get DIR PATH OUT: GET on the management interface into OUT;
# prints the HTTP status (000 if there was no answer).
_pebble_get() {
	local mgmt ca
	mgmt=$(_pebble_var "$1" PEBBLE_MGMT) || return 1
	ca=$(_pebble_var "$1" PEBBLE_CA) || return 1
	curl -sS --max-time 30 --cacert "$ca" -o "$3" -w '%{http_code}' "$mgmt$2" 2>>"$1/curl.log"
}

pebble_roots() {
	local dir=$1 kind n code
	for kind in root intermediate; do
		rm -f "$dir/$kind"-[0-9]*.pem
		for ((n = 0; ; n++)); do
			code=$(_pebble_get "$dir" "/${kind}s/$n" "$dir/$kind-$n.pem") || code=000
			[ "$code" = 404 ] && [ "$n" -gt 0 ] && break
			[ "$code" = 200 ] || t_fail "pebble: GET /${kind}s/$n: HTTP $code"
			openssl x509 -in "$dir/$kind-$n.pem" -noout 2>/dev/null ||
				t_fail "pebble: /${kind}s/$n is not a PEM certificate"
		done
		rm -f "$dir/$kind-$n.pem"
	done
	cp "$dir/root-0.pem" "$dir/roots.pem"
	cat "$dir"/root-[0-9]*.pem >"$dir/roots-all.pem"
}

pebble_cert_status() {
	local dir=$1 serial=${2#serial=} code out
	serial=${serial//:/}
	out=$(mktemp "$dir/status.XXXXXX")
	code=$(_pebble_get "$dir" "/cert-status-by-serial/$serial" "$out") || code=000
	case $code in
	200) sed -n 's/^ *"Status": *"\([A-Za-z]*\)".*/\1/p' "$out" ;;
	404) ;;
	*)
		echo "pebble: cert-status-by-serial/$serial: HTTP $code" >&2
		rm -f "$out"
		return 1
		;;
	esac
	rm -f "$out"
}

pebble_stop() {
	local dir=$1 p
	for p in pebble challtestsrv; do
		[ -s "$dir/$p.pid" ] || continue
		server_stop "$(cat "$dir/$p.pid")"
		rm -f "$dir/$p.pid"
	done
}
