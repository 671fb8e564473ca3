# Shared by every integration test: a private directory $T, cleanup in
# reverse order, free loopback ports, waits and assertions.
# Tests are safe to run in parallel: no fixed ports, no shared state.

: "${BUILD:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}"
: "${MTLS_AGENT:=$BUILD/agent/mtls-agent}"
: "${MTLSCTL:=$BUILD/agent/mtlsctl}"
export MTLS_AGENT MTLSCTL

T_CLEANUP=()
T_NAME=

t_init() {
	T_NAME=$1
	T=$(mktemp -d "/tmp/mtls-test.$1.XXXXXX")
	export T
	export SOFTHSM2_CONF=$T/softhsm2.conf
	trap t_cleanup EXIT
}

t_on_exit() {
	T_CLEANUP+=("$*")
}

t_cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${T_CLEANUP[$i]}" >/dev/null 2>&1
	done
	if [ $rc -ne 0 ]; then
		for f in $(find "$T" -name '*.log' 2>/dev/null); do
			echo "---- tail of $f" >&2
			tail -n 30 "$f" >&2
		done
	fi
	if [ $rc -ne 0 ] && [ "${MTLS_KEEP:-0}" = 1 ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit $rc
}

t_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

t_pass() {
	echo "PASS: $*"
}

# A free TCP port on 127.0.0.1 (random, checked against listening sockets).
t_free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 41000))
		if ! ss -Htln "sport = :$p" | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	t_fail "no free port"
}

t_wait_port() {
	local port=$1 secs=${2:-10} i
	for i in $(seq 1 $((secs * 20))); do
		ss -Htln "sport = :$port" | grep -q . && return 0
		sleep 0.05
	done
	t_fail "nothing listens on port $port after ${secs}s"
}

t_wait_file() {
	local path=$1 secs=${2:-10} i
	for i in $(seq 1 $((secs * 20))); do
		[ -e "$path" ] && return 0
		sleep 0.05
	done
	t_fail "$path did not appear after ${secs}s"
}

# t_assert_contains FILE_OR_STRING PATTERN (grep -E)
t_assert_contains() {
	if [ -f "$1" ]; then
		grep -qE -- "$2" "$1" || t_fail "$1 lacks /$2/"
	else
		grep -qE -- "$2" <<<"$1" || t_fail "'$1' lacks /$2/"
	fi
}

t_expect_fail() {
	if "$@"; then
		t_fail "expected failure: $*"
	fi
}
