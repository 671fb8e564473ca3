# The fault-injecting PKCS#11 module (tests/faultmod) for a test: its
# path, its control file and call log under $T, and the faults. Sourced
# after common.sh.

# ctest sets FAULT_MODULE; by hand, the build next to this tree.
: "${FAULT_MODULE:=$BUILD/tests/faultmod/faultp11.so}"

# fault_init REAL_MODULE: faultmod wraps REAL_MODULE, with no fault yet;
# calls are counted in $T/fault.calls.
fault_init() {
	export FAULT_P11_MODULE=$1 FAULT_P11_CONTROL=$T/fault.ctl FAULT_P11_LOG=$T/fault.calls
	: >"$T/fault.ctl"
}

# fault [LINE...]: the faults from now on (none without arguments),
# replaced at once (faultmod reads the file again when it changes).
fault() { printf '%s\n' "$@" >"$T/fault.ctl.new" && mv "$T/fault.ctl.new" "$T/fault.ctl"; }

# slow_token_check DELAY_MS N: with every signature DELAY_MS slower (the
# test's fault function: tests/faultmod), a 200 MiB transfer through the
# tunnel "web" ($T/web.sock, nginx serving files/big.bin) keeps its rate
# while N new handshakes queue beside it. The rate alone is measured before
# and after, and the slower one counts: other tests running beside this one
# change the machine's speed. Needs req() from the test.
slow_token_check() {
	local delay=$1 n=$2 base_ms after_ms slow_ms max_hs s first total i
	local pids=()
	base_ms=$(_slow_alone)
	fault sign_delay_ms="$delay"
	# The transfer's own handshake first, then N new handshakes beside it.
	agent_log_mark
	exec 3< <(curl -sS --max-time 120 --unix-socket "$T/web.sock" \
		-w '%{time_appconnect} %{time_starttransfer} %{time_total}\n' -o /dev/null \
		http://localhost/files/big.bin)
	agent_log_wait 'event=handshake conn=[0-9]+ tunnel=web result=ok'
	: >"$T/slow_hs.ms"
	s=$(_slow_now)
	for ((i = 0; i < n; i++)); do
		( req >/dev/null; echo $((($(_slow_now) - s) / 1000000)) >>"$T/slow_hs.ms" ) &
		pids+=($!)
	done
	read -r _ first total <&3
	exec 3<&-
	wait "${pids[@]}" # not a bare wait: the agent is a child too
	slow_ms=$(awk -v a="$first" -v b="$total" 'BEGIN { printf "%d", (b - a) * 1000 }')
	max_hs=$(sort -n "$T/slow_hs.ms" | tail -1)
	fault
	after_ms=$(_slow_alone)
	[ "$after_ms" -le "$base_ms" ] || base_ms=$after_ms
	echo "ok: ${delay} ms signatures: 200 MiB took ${slow_ms} ms while $n handshakes queued (last done after ${max_hs} ms); alone it took ${base_ms} ms"
	echo "slow_token base_ms=$base_ms slow_ms=$slow_ms max_handshake_ms=$max_hs" >"$T/slow.result"
	[ "$slow_ms" -le $((base_ms * 2 + delay)) ] ||
		t_fail "the established transfer slowed from $base_ms to $slow_ms ms"
	[ "$max_hs" -ge $((delay * 3)) ] ||
		t_fail "$n handshakes on a $delay ms token finished in $max_hs ms: not queued?"
}

_slow_now() { date +%s%N; }

_slow_alone() { # the ms the 200 MiB take with nothing else going on
	local s
	s=$(_slow_now)
	curl -sS --max-time 120 --unix-socket "$T/web.sock" -o /dev/null http://localhost/files/big.bin
	echo $((($(_slow_now) - s) / 1000000))
}
