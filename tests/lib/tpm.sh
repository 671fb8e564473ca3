# A software TPM 2.0 (swtpm) on loopback ports and a tpm2-pkcs11 token on it,
# both under the test's $T. Sourced after common.sh.
#
# There is no resource manager (tpm2-abrmd) in front of swtpm: objects a
# process loads stay loaded after it exits unless it flushes them, and
# swtpm holds only 3 transient objects. tpm_flush empties the TPM between
# processes that might leave some behind.
#
# The token is made by tpm2-pkcs11 itself (C_InitToken on the empty store,
# then C_InitPIN), not by tpm2_ptool: `tpm2_ptool addtoken` loads objects
# with tpm2-tools processes that do not flush them and fails after three
# with "tpm:warn(2.0): out of memory for object contexts" (0x902); and the
# Python tool costs ~0.4 s per call.

# tpm2-pkcs11's module (TPM_MODULE from the environment wins).
: "${TPM_MODULE:=/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so}"
if [ ! -e "$TPM_MODULE" ]; then
	for _m in /usr/lib/*/pkcs11/libtpm2_pkcs11.so; do
		[ -e "$_m" ] && TPM_MODULE=$_m && break
	done
	unset _m
fi
export TPM_MODULE

# tpm_start DIR: swtpm with its state in DIR, the tpm2-pkcs11 store in
# DIR/store; stopped by the test's cleanup. Exports TPM_PORT and the TCTI
# for tpm2-pkcs11 and tpm2-tools.
tpm_start() {
	local dir=$1 p
	command -v swtpm >/dev/null || t_fail "swtpm is not installed (scripts/deps.sh)"
	command -v tpm2_flushcontext >/dev/null ||
		t_fail "tpm2-tools is not installed (scripts/deps.sh)"
	[ -e "${TPM_MODULE:-}" ] || t_fail "libtpm2-pkcs11-1 is not installed (scripts/deps.sh)"
	mkdir -p "$dir/store"
	dir=$(cd "$dir" && pwd)
	# Two ports: the TPM's and its control channel's (port + 1), both
	# claimed (t_free_port, t_claim_port). Should swtpm still fail to
	# start (something outside the tests took one), try other ports.
	for _ in 1 2 3 4 5; do
		p=$(t_free_port)
		((p < 65535)) && t_claim_port $((p + 1)) || continue
		rm -f "$dir/swtpm.pid"
		# --daemon: it returns once both sockets are bound.
		if swtpm socket --tpm2 --tpmstate "dir=$dir" \
			--server "type=tcp,port=$p,bindaddr=127.0.0.1" \
			--ctrl "type=tcp,port=$((p + 1)),bindaddr=127.0.0.1" \
			--flags not-need-init,startup-clear --daemon \
			--pid "file=$dir/swtpm.pid" --log "file=$dir/swtpm.log" \
			2>>"$dir/swtpm.log"; then
			t_on_exit "tpm_stop '$dir'"
			t_until 30 test -s "$dir/swtpm.pid" || t_fail "swtpm wrote no $dir/swtpm.pid"
			# Both listeners are this swtpm's.
			t_wait_port "$p" 30 "$(cat "$dir/swtpm.pid")"
			t_wait_port $((p + 1)) 30 "$(cat "$dir/swtpm.pid")"
			TPM_PORT=$p
			export TPM_PORT
			export TPM2_PKCS11_TCTI="swtpm:host=127.0.0.1,port=$p"
			export TPM2TOOLS_TCTI=$TPM2_PKCS11_TCTI
			export TPM2_PKCS11_STORE=$dir/store
			# tpm2-pkcs11 logs its errors to stderr; warnings off.
			export TPM2_PKCS11_LOG_LEVEL=${TPM2_PKCS11_LOG_LEVEL:-0}
			return 0
		fi
	done
	t_fail "swtpm did not start: see $dir/swtpm.log"
}

# tpm_stop DIR: SIGTERM to swtpm, then waits until it is gone (it is a
# daemon: a zombie counts as gone; SIGKILL after 30 s).
tpm_stop() {
	local pid
	pid=$(cat "$1/swtpm.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	t_until 30 t_gone "$pid" || kill -9 "$pid" 2>/dev/null || true
}

# tpm_flush: flushes every transient object and every loaded and saved
# session from the TPM.
tpm_flush() {
	tpm2_flushcontext -t -l -s >>"$T/tpm2-tools.log" 2>&1 ||
		t_fail "tpm2_flushcontext failed: see $T/tpm2-tools.log"
}

# tpm_transient: the TPM's transient object handles now, one a line.
tpm_transient() {
	tpm2_getcap handles-transient 2>>"$T/tpm2-tools.log" | sed -n 's/^- //p'
}

# tpm_token_init LABEL SO_PIN PIN: a token in tpm2-pkcs11's store (the
# primary key persistent at 0x81000001). Sets TPM_LABEL and TPM_PIN; the
# PIN is the one common.sh's cleanup looks for in every log (SOFTHSM_PIN,
# unless the test already set that for a SoftHSM token).
tpm_token_init() {
	local label=$1 so_pin=$2 pin=$3
	pkcs11-tool --module "$TPM_MODULE" --init-token --label "$label" \
		--so-pin "$so_pin" >>"$T/tpm2-pkcs11.log" 2>&1 ||
		t_fail "tpm2-pkcs11 could not init token $label: see $T/tpm2-pkcs11.log"
	# C_InitToken leaves its primary key's transient copy loaded.
	tpm_flush
	pkcs11-tool --module "$TPM_MODULE" --token-label "$label" --login \
		--login-type so --so-pin "$so_pin" --init-pin --pin "$pin" \
		>>"$T/tpm2-pkcs11.log" 2>&1 ||
		t_fail "tpm2-pkcs11 could not set the user PIN of $label: see $T/tpm2-pkcs11.log"
	TPM_LABEL=$label TPM_PIN=$pin
	: "${SOFTHSM_PIN:=$pin}"
	export TPM_LABEL TPM_PIN
}

# tpm_privkeys: labels of the private keys on the token, one a line.
tpm_privkeys() {
	pkcs11-tool --module "$TPM_MODULE" --token-label "${TPM_LABEL:?tpm_token_init first}" \
		--login --pin "$TPM_PIN" --list-objects --type privkey 2>>"$T/tpm2-pkcs11.log" |
		sed -n 's/^ *label: *//p'
}
