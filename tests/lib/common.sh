# Shared by every integration test: a private directory $T, cleanup in
# reverse order, free loopback ports, waits and assertions.
# Tests are safe to run in parallel: no fixed ports (t_free_port claims
# them machine-wide), no shared state (everything under $T), and every
# wait polls for its condition with a generous deadline (t_until).

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
	# After the servers stopped: their ports are free now.
	[ -f "$T/.ports" ] && _t_release_ports
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

# t_until SECONDS CMD...: runs CMD every 50 ms until it succeeds (status 0)
# or SECONDS have passed on the clock (status 1). Every wait polls with a
# deadline: generous, as a loaded 2-core machine running tests in parallel
# (or under ASan) may be many times slower, while a fast one stays fast.
t_until() {
	local end=$((${EPOCHREALTIME//[!0-9]/} + $1 * 1000000))
	shift
	until "$@"; do
		((${EPOCHREALTIME//[!0-9]/} < end)) || return 1
		sleep 0.05
	done
}

# Ports are claimed machine-wide, so that tests running at the same time
# (ctest -j, or by hand beside it) never pick the same one between the
# check and the bind: one directory per port under MTLS_TEST_PORTS, made
# under a lock and holding its owner (the test's shell: pid and start
# time). t_cleanup releases the claims; one whose owner is gone (a test
# killed by ctest's timeout) is taken over.
: "${MTLS_TEST_PORTS:=/tmp/mtls-test-ports}"

# _t_proc_id PID: "PID STARTTIME", which tells a reused pid apart.
_t_proc_id() {
	local pid=$1 st
	st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	st=${st##*) } # the fields after "pid (comm) "; starttime is field 22
	set -- $st
	echo "$pid ${20}"
}

# t_claim_port PORT: claims PORT for this test if no other test holds it
# and no TCP socket uses it (any state: a client socket on it also makes
# bind fail). Status 1 if taken, by another test or by this one.
t_claim_port() {
	local p=$1 d=$MTLS_TEST_PORTS/$1 me owner fd rc=1
	: "${T:?t_init first}"
	me=$(_t_proc_id $$) # $$: the test's shell, also in $(...)
	# Shared by every user's tests, like /tmp.
	[ -d "$MTLS_TEST_PORTS" ] ||
		{ mkdir -p "$MTLS_TEST_PORTS" && chmod 1777 "$MTLS_TEST_PORTS"; } 2>/dev/null || true
	[ -e "$MTLS_TEST_PORTS/.lock" ] || (umask 0 && : >>"$MTLS_TEST_PORTS/.lock")
	exec {fd}<"$MTLS_TEST_PORTS/.lock"
	flock "$fd"
	if [ -d "$d" ]; then
		owner=$(cat "$d/owner" 2>/dev/null) || owner=
		set -- $owner
		# Alive, or this test itself: taken. Else a stale claim.
		if [ -n "$owner" ] && [ "$(_t_proc_id "$1" 2>/dev/null)" = "$owner" ]; then
			d=
		else
			rm -rf "$d"
		fi
	fi
	if [ -n "$d" ] && ! ss -Htan "sport = :$p" | grep -q . && mkdir "$d" 2>/dev/null; then
		echo "$me" >"$d/owner"
		echo "$p" >>"$T/.ports"
		rc=0
	fi
	exec {fd}<&-
	return $rc
}

# _t_release_ports: gives back every port this test claimed.
_t_release_ports() {
	local p me
	me=$(_t_proc_id $$)
	while read -r p; do
		[ "$(cat "$MTLS_TEST_PORTS/$p/owner" 2>/dev/null)" = "$me" ] &&
			rm -rf "${MTLS_TEST_PORTS:?}/$p"
	done <"$T/.ports"
}

# t_free_port: a random port, claimed (t_claim_port), in 20000-65535 but
# outside the kernel's ephemeral range: a client socket that connect() gave
# the port to would make our server's bind fail.
t_free_port() {
	local p lo hi
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=0 hi=0
	# Unless that range leaves nothing to choose from.
	((lo > 20000 + 1000 || hi < 65535 - 1000)) || lo=0 hi=0
	for _ in $(seq 1 1000); do
		p=$((20000 + ((RANDOM << 15) | RANDOM) % 45536))
		((p >= lo && p <= hi)) && continue
		t_claim_port "$p" && echo "$p" && return 0
	done
	t_fail "no free port"
}

# t_port_owner PORT PID: PID holds a socket listening on PORT.
t_port_owner() {
	ss -Htlnp "sport = :$1" | grep -q "pid=$2,"
}

_t_listens() { # PORT [PID]
	if [ -n "${2:-}" ]; then
		t_port_owner "$1" "$2" && return 0
		kill -0 "$2" 2>/dev/null ||
			t_fail "process $2 exited before listening on port $1"
		return 1
	fi
	ss -Htln "sport = :$1" | grep -q .
}

# t_wait_port PORT [SECONDS [PID]]: until something listens on PORT; with
# PID, until PID itself does (not another process that holds the port) and
# gives up early if PID dies.
t_wait_port() {
	local port=$1 secs=${2:-30} pid=${3:-}
	t_until "$secs" _t_listens "$port" "$pid" && return 0
	t_fail "${pid:+process $pid is not }listening on port $port after ${secs}s: $(ss -Htlnp "sport = :$port")"
}

# t_wait_file PATH [SECONDS]
t_wait_file() {
	t_until "${2:-30}" test -e "$1" || t_fail "$1 did not appear after ${2:-30}s"
}

# t_wait_grep FILE PATTERN [SECONDS]: until a line of FILE matches (grep -E).
t_wait_grep() {
	t_until "${3:-30}" grep -qE -- "$2" "$1" 2>/dev/null ||
		t_fail "$1 lacks /$2/ after ${3:-30}s"
}

# t_gone PID: PID has ended (a zombie counts: a daemon's parent may be slow
# to reap it; bash reaps its own children by itself).
t_gone() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	[[ $st == *") Z "* ]]
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
