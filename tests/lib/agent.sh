# Helpers to provision identities with the project's own tooling and to run
# the agent under test. Sourced after common.sh, softhsm.sh and pki.sh.

# agent_conf_token FILE LABEL PIN_FILE: writes [agent] (state_dir $T/state)
# and [token soft].
agent_conf_token() {
	local file=$1 label=$2 pin_file=$3
	cat >"$file" <<-EOF
	[agent]
	log_level = debug
	; the agent and mtlsctl read every identity's renewal state from here:
	; this test's own, never the machine's /var/lib/mtls-agent
	state_dir = $T/state
	handshake_timeout = 10s
	shutdown_grace = 3s
	; every handshake signs on the token unless a test asks for resumption
	resume = no

	[token soft]
	module = $SOFTHSM_MODULE
	uri = pkcs11:token=$label
	pin_source = file:$pin_file
	EOF
}

# agent_conf_identity FILE NAME CA [CERT [TOKEN]]: an identity whose key
# and certificate live on the token (object=NAME-key / NAME-cert) unless
# CERT (a PEM file) is given; on [token soft] unless TOKEN is given.
agent_conf_identity() {
	local file=$1 name=$2 ca=$3 cert=${4:-pkcs11:object=$2-cert;type=cert}
	local token=${5:-soft}
	cat >>"$file" <<-EOF

	[identity $name]
	token = $token
	key = pkcs11:object=$name-key;type=private
	cert = $cert
	ca = $ca
	EOF
}

# agent_conf_tunnel FILE NAME LISTEN CONNECT IDENTITY [extra key=value...]
agent_conf_tunnel() {
	local file=$1 name=$2 listen=$3 connect=$4 identity=$5
	shift 5
	{
		printf '\n[tunnel %s]\nlisten = %s\nconnect = %s\nidentity = %s\n' \
			"$name" "$listen" "$connect" "$identity"
		for kv in "$@"; do printf '%s\n' "$kv"; done
	} >>"$file"
}

# identity_provision CONF NAME TYPE CADIR SUBJECT: key generated on the token
# by mtlsctl, CSR signed on the token by mtlsctl, certificate issued by the
# test CA, stored on the token by mtlsctl. Leaves $T/NAME.pem too.
identity_provision() {
	local conf=$1 name=$2 type=$3 cadir=$4 subject=$5
	"$MTLSCTL" -c "$conf" keygen "$name" --type "$type" >"$T/$name.keygen.log"
	"$MTLSCTL" -c "$conf" csr "$name" --subject "$subject" -o "$T/$name.csr"
	openssl req -in "$T/$name.csr" -verify -noout 2>/dev/null ||
		t_fail "CSR of $name does not verify"
	pki_sign_csr "$cadir" "$T/$name.csr" "$T/$name.pem" >/dev/null
	"$MTLSCTL" -c "$conf" import-cert "$name" "$T/$name.pem" >/dev/null
}

# agent_start CONF: starts mtls-agent in the background, logging to
# $T/agent.log; waits until it is ready (60 s: ASan, a loaded machine).
# Sets AGENT_PID.
agent_start() {
	local conf=$1 from
	# Only this start's lines count: the log may hold an earlier run's.
	from=$(($(wc -l 2>/dev/null <"$T/agent.log" || echo 0) + 1))
	"$MTLS_AGENT" -c "$conf" >>"$T/agent.log" 2>&1 &
	AGENT_PID=$!
	t_on_exit agent_stop
	if t_until 60 _agent_ready "$from"; then
		AGENT_LOG_FROM=$from
		return 0
	fi
	t_fail "mtls-agent not ready after 60 s"
}

_agent_ready() { # FROM: the ready line since FROM; fails the test if it died
	tail -n +"$1" "$T/agent.log" 2>/dev/null | grep -c 'event=ready' >/dev/null && return 0
	kill -0 "$AGENT_PID" 2>/dev/null || {
		cat "$T/agent.log" >&2
		t_fail "mtls-agent exited during start-up"
	}
	return 1
}

# agent_stop: SIGTERM and wait; returns the agent's exit status. One that
# has not ended after 60 s is killed (a test fails, rather than hangs).
agent_stop() {
	[ -n "${AGENT_PID:-}" ] || return 0
	kill -TERM "$AGENT_PID" 2>/dev/null || true
	local rc=0
	if ! t_until 60 t_gone "$AGENT_PID"; then
		echo "mtls-agent $AGENT_PID still runs 60 s after SIGTERM: SIGKILL" >&2
		kill -KILL "$AGENT_PID" 2>/dev/null || true
	fi
	wait "$AGENT_PID" || rc=$?
	AGENT_PID=
	return $rc
}

# agent_log_mark: agent_log_wait looks only at lines written after this
# (agent_start marks too).
agent_log_mark() {
	AGENT_LOG_FROM=$(($(wc -l 2>/dev/null <"$T/agent.log" || echo 0) + 1))
}

# agent_log_wait PATTERN [SECONDS]: waits (30 s unless told) for a line of
# the agent's log, since the last mark.
agent_log_wait() {
	local pattern=$1 secs=${2:-30}
	t_until "$secs" _agent_log_has "$pattern" ||
		t_fail "agent log never matched in ${secs}s: $pattern"
}

_agent_log_has() { # PATTERN
	tail -n +"${AGENT_LOG_FROM:-1}" "$T/agent.log" 2>/dev/null | grep -cE -- "$1" >/dev/null
}

# client_start SOCKET WANT: a client that never stops, in the background:
# one request through SOCKET every 100 ms, each answer must contain WANT
# (a failure is logged in $T/client-failures.log). client_stop ends it.
client_start() {
	local sock=$1 want=$2
	(
		ok=0 bad=0
		while [ ! -e "$T/stop-client" ]; do
			if out=$(curl -sS --max-time 30 --unix-socket "$sock" http://localhost/ 2>&1) &&
				[[ $out == *"$want"* ]]; then
				ok=$((ok + 1))
			else
				bad=$((bad + 1))
				echo "$(date +%T) $out" >>"$T/client-failures.log"
			fi
			sleep 0.1 # pacing, not synchronisation
		done
		echo "$ok $bad" >"$T/client.result"
	) &
	CLIENT_PID=$!
	t_on_exit "touch $T/stop-client; kill $CLIENT_PID"
}

# client_stop: ends client_start's client; CLIENT_OK and CLIENT_BAD count
# its requests.
client_stop() {
	touch "$T/stop-client"
	wait "$CLIENT_PID" || true
	read -r CLIENT_OK CLIENT_BAD <"$T/client.result"
}
