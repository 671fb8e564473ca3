#!/bin/bash
# A dns-01 hook for the ACME test CA (tests/lib/pebble.sh): it puts TXT
# records into pebble-challtestsrv's mock DNS, which pebble's validation
# queries, and takes them out again.
#
#   dns-hook.sh present FQDN VALUE    adds VALUE to the TXT records of FQDN
#   dns-hook.sh cleanup FQDN VALUE    removes that one VALUE again (other
#                                     values of FQDN stay: a wildcard and its
#                                     base name share _acme-challenge.NAME)
#
# FQDN as lego's exec provider and RFC 8555 8.4 name it,
# _acme-challenge.host.test. : with or without the trailing dot (the mock
# DNS keys its records by the name with the dot). Case is kept: the mock
# DNS matches names case-sensitively, and pebble asks for the identifier
# as the order spelled it.
# VALUE is the record's text (for dns-01 the base64url SHA-256 of the key
# authorization); only [A-Za-z0-9+/=_-] is accepted.
# Exit status 0 when done; else non-zero with a message on stderr.
#
# Configuration, with no environment needed (an agent runs its hooks with
# PATH alone): the file dns-hook.conf beside this script's real path, which
# pebble_start writes next to the copy it installs as DIR/dns-hook.sh; else
# the file named by DNS_HOOK_CONF (pebble_start exports it, for this copy in
# the source tree). Lines KEY=VALUE:
#   mgmt=http://127.0.0.1:PORT   challtestsrv's management API
#   dir=/path                    where the files below are
# Files in dir:
#   dns-hook.log    one line a call, appended: "present FQDN VALUE" (the
#                   arguments as given), with " FAILED" after them when the
#                   call failed
#   dns-hook.state  the records present, "fqdn. value" a line
#   dns-hook.fail   switch: while it exists, calls fail (exit 1) and change
#                   nothing; if it holds "present" or "cleanup", only calls
#                   of that action fail
#   dns-hook.noop   switch: while it exists, calls succeed and change nothing
#                   (so the CA finds no TXT record)
set -uo pipefail

action=${1:-} fqdn=${2:-} value=${3:-}
log=

die() {
	echo "dns-hook: $*" >&2
	[ -n "$log" ] && printf '%s FAILED\n' "$call" >>"$log"
	exit 1
}
call="$*"

self=$(readlink -f "${BASH_SOURCE[0]}")
conf=${self%/*}/dns-hook.conf
[ -f "$conf" ] || conf=${DNS_HOOK_CONF:-}
[ -n "$conf" ] && [ -f "$conf" ] ||
	die "no configuration: neither ${self%/*}/dns-hook.conf nor \$DNS_HOOK_CONF"
mgmt= dir=
while IFS='=' read -r k v; do
	case $k in
	mgmt) mgmt=$v ;;
	dir) dir=$v ;;
	esac
done <"$conf"
[ -n "$mgmt" ] && [ -n "$dir" ] && [ -d "$dir" ] || die "$conf: needs mgmt= and dir= (an existing directory)"
log=$dir/dns-hook.log

[ $# = 3 ] || die "usage: dns-hook.sh present|cleanup FQDN VALUE (got $# arguments)"
case $action in
present | cleanup) ;;
*) die "unknown action '$action' (present or cleanup)" ;;
esac
name=${fqdn%.}.
[[ $name =~ ^[A-Za-z0-9_*-]+(\.[A-Za-z0-9_*-]+)*\.$ ]] || die "not a DNS name: '$fqdn'"
[[ $value =~ ^[A-Za-z0-9+/=_-]+$ ]] || die "not a TXT value this hook accepts: '$value'"

if [ -e "$dir/dns-hook.fail" ]; then
	only=$(cat "$dir/dns-hook.fail" 2>/dev/null)
	[ -z "$only" ] || [ "$only" = "$action" ] &&
		die "failing on purpose ($dir/dns-hook.fail)"
fi
if [ -e "$dir/dns-hook.noop" ]; then
	printf '%s\n' "$call" >>"$log"
	exit 0
fi

# api PATH JSON: one POST to the management API, which answers 200.
api() {
	local code
	code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' \
		--data-binary "$2" "$mgmt/$1" 2>&1) ||
		die "$1 for $name: $mgmt unreachable: $code"
	[ "$code" = 200 ] || die "$1 for $name: HTTP $code from $mgmt"
}

# One call at a time: cleanup clears the name and sets the values left.
exec {lock}>>"$dir/dns-hook.lock"
flock "$lock"
state=$dir/dns-hook.state
touch "$state"
case $action in
present)
	api set-txt "{\"host\":\"$name\",\"value\":\"$value\"}"
	printf '%s %s\n' "$name" "$value" >>"$state"
	;;
cleanup)
	# The state without one line "name value" (if there is one).
	awk -v n="$name" -v v="$value" '!done && $1 == n && $2 == v { done = 1; next } { print }' \
		"$state" >"$state.new" && mv "$state.new" "$state" || die "cannot update $state"
	api clear-txt "{\"host\":\"$name\"}"
	while read -r n v; do
		[ "$n" = "$name" ] && api set-txt "{\"host\":\"$name\",\"value\":\"$v\"}"
	done <"$state"
	;;
esac
printf '%s\n' "$call" >>"$log"
