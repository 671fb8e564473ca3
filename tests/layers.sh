#!/bin/bash
# The layers of the source tree, checked on every quoted #include: a file
# may include headers of its own folder and of the folders below it, never
# above or beside. *_internal.h headers are private to their folder.
#   7  agent/ctl
#   6  agent/daemon
#   5  agent/conn  agent/lifecycle   (siblings: neither uses the other)
#   4  agent/runtime
#   3  agent/revocation
#   2  agent/http
#   0  agent/tls
#  -1  pkcs11  policy  common        (pkcs11 and policy may use common)
set -euo pipefail
cd "$(dirname "$0")/.."

rank() {
	case $1 in
	agent/ctl) echo 7 ;; agent/daemon) echo 6 ;;
	agent/conn | agent/lifecycle) echo 5 ;;
	agent/runtime) echo 4 ;; agent/revocation) echo 3 ;;
	agent/http) echo 2 ;; agent/tls) echo 0 ;;
	pkcs11 | policy | common) echo -1 ;;
	*) echo "layers.sh: unknown folder $1" >&2; exit 2 ;;
	esac
}
allowed() { # from to
	[ "$1" = "$2" ] && return 0
	case $1 in # the bottom libraries use only common
	pkcs11 | policy) [ "$2" = common ]; return ;;
	common) return 1 ;;
	esac
	[ "$(rank "$2")" -lt "$(rank "$1")" ]
}

declare -A owner
while IFS= read -r h; do
	b=$(basename "$h")
	[ -z "${owner[$b]:-}" ] || { echo "two headers named $b" >&2; exit 1; }
	owner[$b]=$(dirname "$h")
done < <(find agent pkcs11 policy common -name '*.h')

bad=0
while IFS= read -r f; do
	from=$(dirname "$f")
	while IFS= read -r inc; do
		to=${owner[$inc]:-}
		[ -n "$to" ] || continue # a system or library header
		if ! allowed "$from" "$to"; then
			echo "$f includes $to/$inc: $from may not use $to" >&2
			bad=1
		elif [[ $inc == *_internal.h ]] && [ "$from" != "$to" ]; then
			echo "$f includes $to/$inc: private to $to" >&2
			bad=1
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(find agent pkcs11 policy common -name '*.[ch]')
[ $bad -eq 0 ] || exit 1
echo "layers: every include points down"
