# Shared by every integration test: a private directory $T, cleanup in
# reverse order, free loopback ports, waits and assertions.
# Tests are safe to run in parallel: no fixed ports, no shared state.

# ctest sets MTLS_AGENT and MTLSCTL; by hand, the build next to this tree.
: "${BUILD:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}"
: "${MTLS_AGENT:=$BUILD/agent/mtls-agent}"
: "${MTLSCTL:=$BUILD/agent/mtlsctl}"
export MTLS_AGENT MTLSCTL

# t_init NAME: creates $T, arranges t_cleanup at exit.
t_init() {
	T=$(mktemp -d "/tmp/mtls-test.$1.XXXXXX")
	export T
	export SOFTHSM2_CONF=$T/softhsm2.conf
	trap t_cleanup EXIT
}

# t_on_exit CMD...: the words are joined into one line, eval'ed at exit, last
# first. Kept in a file, not a variable: a server started inside $(...)
# registers its stop from a subshell, which would lose a variable.
t_on_exit() {
	printf '%s\n' "$*" >>"${T:?t_init first}/.on_exit"
}

t_cleanup() {
	local rc=$? cmd f
	set +eu # one failing or odd cleanup command must not stop the others
	while IFS= read -r cmd; do
		eval "$cmd" </dev/null >/dev/null 2>&1
	done < <(tac "$T/.on_exit" 2>/dev/null)
	# No log of the agent or mtlsctl may ever hold the token PIN.
	if [ -n "${SOFTHSM_PIN:-}" ] && [ -d "$T" ]; then
		f=$(grep -rlF --include='agent*.log' --include='*.out' \
			--include='*.err' --include='start.log' -- "$SOFTHSM_PIN" "$T" 2>/dev/null)
		if [ -n "$f" ]; then
			echo "FAIL: the token PIN appears in: $f" >&2
			rc=1
		fi
	fi
	if [ $rc -ne 0 ]; then
		while IFS= read -r f; do
			echo "---- tail of $f" >&2
			tail -n 30 "$f" >&2
		done < <(find "$T" -name '*.log' 2>/dev/null)
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

# t_free_port: a random port in 20000-60999 that no TCP socket uses (any
# state: a client socket on it also makes bind fail) and that this test has
# not handed out already (callers run us in $(...), so remember in $T).
t_free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 41000))
		ss -Htan "sport = :$p" | grep -q . && continue
		if [ -n "${T:-}" ]; then
			grep -qx "$p" "$T/.ports" 2>/dev/null && continue
			echo "$p" >>"$T/.ports"
		fi
		echo "$p"
		return 0
	done
	t_fail "no free port"
}

# t_wait_port PORT [SECONDS [PID]]: until something listens on PORT; gives
# up early if PID dies.
t_wait_port() {
	local port=$1 secs=${2:-10} pid=${3:-}
	for _ in $(seq 1 $((secs * 20))); do
		ss -Htln "sport = :$port" | grep -q . && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			t_fail "process $pid exited before listening on port $port"
		fi
		sleep 0.05
	done
	t_fail "nothing listens on port $port after ${secs}s"
}

# t_wait_file PATH [SECONDS]
t_wait_file() {
	local path=$1 secs=${2:-10}
	for _ in $(seq 1 $((secs * 20))); do
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

# t_expect_fail CMD...: CMD must exit non-zero.
t_expect_fail() {
	if "$@"; then
		t_fail "expected failure: $*"
	fi
}
