#!/bin/bash
# Benchmarks, side by side, in one run: mtls-agent against the tools users
# would pick instead. Builds what it needs, starts every peer on loopback,
# runs each case RUNS times and prints a markdown table of medians with
# their min-max.
#   bench/run.sh [RUNS] [SECONDS]       (defaults: 5 runs, 3 s each)
# BENCH_ONLY="handshakes resumption relay memory" (any of them) runs only
# those sections; BENCH_PROFILE=FILE adds a perf profile of resumption.
set -euo pipefail
RUNS=${1:-5}
SECS=${2:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
scripts/deps.sh
BUILD=build scripts/build.sh >/dev/null
export BUILD=$REPO/build
. tests/lib/common.sh
. tests/lib/softhsm.sh
. tests/lib/pki.sh
. tests/lib/servers.sh
. tests/lib/agent.sh
HSBENCH=$BUILD/bench/hsbench
SIGNBENCH=$BUILD/bench/signbench
LOADGEN=$BUILD/tests/tools/loadgen
ENGINE_PIN=bPIN-2718zz

t_init bench
# 10,000 relayed connections: two descriptors each in the agent, one each
# in nginx and the load generator. Root may raise the hard limit.
[ "$(ulimit -Hn)" -ge 65536 ] || ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
softhsm_init bench 87654321 "$ENGINE_PIN"
printf '%s\n' "$ENGINE_PIN" >"$T/pin" && chmod 600 "$T/pin"
pki_ca "$T/ca" "Bench CA"
pki_server_cert "$T/ca" "$T/server" localhost "DNS:localhost"
pki_client_file_cert "$T/ca" "$T/filekey" bench-file >/dev/null
port=$(t_free_port)
NGINX_WORKER_CONNECTIONS=12000 NGINX_RLIMIT_NOFILE=$(ulimit -n) nginx_start "$T/ngx" "$port" "$T/ca/ca.pem" "$T/server.pem" "$T/server.key"
head -c 1G /dev/zero >"$T/ngx/www/1g.bin"

conf=$T/agent.conf
agent_conf_token "$conf" bench "$T/pin"
sed -i "s#^handshake_timeout = 10s\$#handshake_timeout = 120s#; s#^resume = no\$#resume = no#; s#^\[agent\]\$#[agent]\nmax_connections = 12000\nmax_connections_per_uid = 0\nlog_level = notice#; /^log_level = debug\$/d" "$conf"
agent_conf_identity "$conf" dev "$T/ca/ca.pem" "$T/dev.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=bench-device"
agent_conf_tunnel "$conf" web "$T/web.sock" "localhost:$port" dev
agent_start "$conf"
KEY_URI="pkcs11:token=bench;object=dev-key;type=private;pin-value=$ENGINE_PIN"

# stunnel4 as a client, its key on the same token through libp11's engine.
st_port=$(t_free_port)
cat >"$T/stunnel.conf" <<-EOF
	foreground = yes
	pid =
	debug = 3
	output = $T/stunnel.log
	engine = pkcs11
	engineCtrl = MODULE_PATH:$SOFTHSM_MODULE
	engineCtrl = PIN:$ENGINE_PIN
	[web]
	client = yes
	accept = 127.0.0.1:$st_port
	connect = 127.0.0.1:$port
	engineId = pkcs11
	key = $KEY_URI
	cert = $T/dev.pem
	CAfile = $T/ca/ca.pem
	verifyChain = yes
	checkHost = localhost
	sslVersionMin = TLSv1.3
	; full handshakes only: every connection signs on the token
	sessionResume = no
	EOF
stunnel4 "$T/stunnel.conf" >/dev/null 2>&1 &
t_on_exit "kill $!"
t_wait_port "$st_port"

want() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

# median [DECIMALS]: of the numbers on stdin, with their range
median() { sort -n | awk -v d="${1:-1}" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; f="%." d "f"; printf f " (" f "-" f ")", m, a[1], a[NR]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# runs CMD RUNS times; prints "rate p50 p99" medians with ranges
hs_case() {
	local out=$T/case.out
	: >"$out"
	for _ in $(seq 1 "$RUNS"); do "$@" >>"$out"; done
	printf '%s | %s | %s' "$(field rate <"$out" | median)" \
		"$(field p50_ms <"$out" | median)" "$(field p99_ms <"$out" | median)"
}

# hs_cpu_case PID CMD...: as hs_case, plus the CPU seconds process PID
# (the client: the agent, stunnel) spent per 1,000 handshakes, from its
# utime + stime in /proc, not wall time.
hs_cpu_case() {
	local pid=$1 out=$T/case.out cpu=$T/case.cpu c0 c1 n
	shift
	: >"$out"
	: >"$cpu"
	for _ in $(seq 1 "$RUNS"); do
		c0=$(cpu_of "$pid")
		"$@" >"$T/one.out"
		c1=$(cpu_of "$pid")
		n=$(field n <"$T/one.out")
		cat "$T/one.out" >>"$out"
		awk -v d=$((c1 - c0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
			'BEGIN {printf "%.3f\n", (n > 0 ? d / hz / n * 1000 : 0)}' >>"$cpu"
	done
	printf '%s | %s | %s | %s' "$(field rate <"$out" | median)" \
		"$(field p50_ms <"$out" | median)" "$(field p99_ms <"$out" | median)" \
		"$(median 2 <"$cpu")"
}

# curl + libp11: one curl process per worker, many URLs each, every
# request on a new connection (Connection: close).
curl_p11_run() {
	local conc=$1 secs=$2 i end lat=$T/curl.lat start
	: >"$lat"
	start=$(date +%s%N)
	end=$((start + secs * 1000000000))
	for i in $(seq 1 "$conc"); do
		(
			while [ "$(date +%s%N)" -lt "$end" ]; do
				urls=()
				for _ in $(seq 1 20); do urls+=("https://localhost:$port/"); done
				PKCS11_MODULE_PATH=$SOFTHSM_MODULE curl -s -o /dev/null \
					-H 'Connection: close' --engine pkcs11 --key-type ENG \
					--key "$KEY_URI" --cert "$T/dev.pem" --cacert "$T/ca/ca.pem" \
					--tlsv1.3 --no-sessionid -w '%{http_code} %{time_total}\n' \
					"${urls[@]}" 2>/dev/null | awk '$1 == 200 {print $2}' || true
			done
		) >>"$lat" &
	done
	wait $(jobs -p | grep -v "^$AGENT_PID\$") 2>/dev/null || true
	# The last curl runs past the deadline: divide by the time really taken.
	secs=$(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN {print ns / 1e9}')
	sort -n "$lat" | awk -v s="$secs" '{v[NR]=$1*1000} END {n=NR; printf "rate=%.1f p50_ms=%.2f p99_ms=%.2f n=%d\n", n/s, v[int(n/2)+1], v[int(n*0.99)+1], n}'
}

echo "# mtls-agent benchmarks"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(uname -sr)."
echo "Versions: wolfSSL $(dpkg-query -W -f='${Version}' libwolfssl35), OpenSSL $(openssl version | cut -d' ' -f2), nginx $(nginx -v 2>&1 | cut -d/ -f2), stunnel $(dpkg-query -W -f='${Version}' stunnel4), curl $(curl --version | head -1 | cut -d' ' -f2), libp11 $(dpkg-query -W -f='${Version}' libengine-pkcs11-openssl), SoftHSM $(dpkg-query -W -f='${Version}' softhsm2)."
echo "Each figure: median of $RUNS runs of ${SECS} s (min-max). Server: nginx on the same machine, TLS 1.3, ECDSA P-256 client key on SoftHSM2."
echo
st_pid=$(pgrep -f "stunnel4 $T/stunnel.conf" | head -1)
if want handshakes; then
echo "## Full handshakes (a new connection and TLS session per request)"
echo
echo "| client | concurrency | handshakes/s | p50 ms | p99 ms | client CPU s per 1,000 |"
echo "|---|---|---|---|---|---|"
for c in 1 8 64; do
	echo "| mtls-agent (key on token) | $c | $(hs_cpu_case "$AGENT_PID" "$HSBENCH" unix "$T/web.sock" "$c" "$SECS") |"
	echo "| stunnel4 + libp11 (key on token) | $c | $(hs_cpu_case "$st_pid" "$HSBENCH" tcp "$st_port" "$c" "$SECS") |"
	echo "| curl + libp11 (key on token) | $c | $(hs_case curl_p11_run "$c" "$SECS") | - |"
	echo "| wolfSSL client, key in a file (ceiling) | $c | $(HS_CA=$T/ca/ca.pem HS_CERT=$T/filekey.pem HS_KEY=$T/filekey.key hs_case "$HSBENCH" tls "$port" "$c" "$SECS") | - |"
done
for th in 1 2; do
	out=$T/sign.out
	: >"$out"
	for _ in $(seq 1 "$RUNS"); do
		"$SIGNBENCH" "$SOFTHSM_MODULE" pkcs11:token=bench "pkcs11:object=dev-key;type=private" \
			"file:$T/pin" "$th" "$SECS" >>"$out"
	done
	echo "| token raw ECDSA signatures (the token's limit), $th thread(s) | $th | $(field rate <"$out" | median) | - | - | - |"
done
fi

if want resumption; then
echo
echo "## Session resumption (TLS 1.3 tickets; a resumed handshake signs nothing)"
echo
echo "| mtls-agent | concurrency | connections/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for c in 1 8; do
	echo "| resumption off (full handshakes) | $c | $(hs_case "$HSBENCH" unix "$T/web.sock" "$c" "$SECS") |"
done
agent_log_mark
sed -i 's/^resume = no$/resume = yes/' "$conf"
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok' 10
for c in 1 8; do
	echo "| resumption on | $c | $(hs_case "$HSBENCH" unix "$T/web.sock" "$c" "$SECS") |"
done
# BENCH_PROFILE=FILE: a whole-machine perf profile of resumed connections
# at c=8 (perf report -i FILE --sort comm,dso shows who spends the CPU).
if [ -n "${BENCH_PROFILE:-}" ]; then
	perf record -a -g -o "$BENCH_PROFILE" -- sleep "$SECS" >/dev/null 2>&1 &
	prof=$!
	"$HSBENCH" unix "$T/web.sock" 8 "$SECS" >/dev/null
	wait $prof || true
fi
sed -i 's/^resume = yes$/resume = no/' "$conf"
kill -HUP "$AGENT_PID"
fi

if want relay; then
echo
echo "## Relay throughput: 1 GiB from nginx"
echo
echo "| path | MB/s | CPU s per GiB (relay process) |"
echo "|---|---|---|"
tp_case() { # NAME PID CURL-ARGS...
	local name=$1 pid=$2 rates=$T/tp.rates cpus=$T/tp.cpu c0 c1 s e
	shift 2
	: >"$rates"
	: >"$cpus"
	for _ in $(seq 1 "$RUNS"); do
		c0=$([ "$pid" != - ] && cpu_of "$pid" || echo 0)
		s=$(date +%s%N)
		curl -sS -o /dev/null "$@"
		e=$(date +%s%N)
		c1=$([ "$pid" != - ] && cpu_of "$pid" || echo 0)
		awk -v ns=$((e - s)) 'BEGIN {printf "%.0f\n", 1073741824 / (ns / 1e9) / 1e6}' >>"$rates"
		echo "$(((c1 - c0)))" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", $1/hz}' >>"$cpus"
	done
	echo "| $name | $(median <"$rates") | $([ "$pid" != - ] && median <"$cpus" || echo -) |"
}
tp_case "mtls-agent (tunnel socket)" "$AGENT_PID" --unix-socket "$T/web.sock" "http://localhost/files/1g.bin"
# The same with wolfSSL's own portable C for the bulk cipher (before
# aead_offload.c; ChaCha20-Poly1305, its faster one, is then negotiated).
agent_log_mark
sed -i 's#^\[agent\]$#[agent]\nbulk_crypto = wolfssl#' "$conf"
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok' 10
tp_case "mtls-agent, bulk_crypto = wolfssl" "$AGENT_PID" --unix-socket "$T/web.sock" "http://localhost/files/1g.bin"
agent_log_mark
sed -i '/^bulk_crypto = wolfssl$/d' "$conf"
kill -HUP "$AGENT_PID"
agent_log_wait 'event=reload result=ok' 10
tp_case "stunnel4 + libp11" "$st_pid" "http://127.0.0.1:$st_port/files/1g.bin"
sc_port=$(t_free_port)
socat "TCP-LISTEN:$sc_port,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$port" &
t_on_exit "kill $!"
t_wait_port "$sc_port"
sc_pid=$!
tp_case "socat (plain TCP relay of the TLS stream)" - --connect-to "localhost:$sc_port:127.0.0.1:$sc_port" \
	--cert "$T/filekey.pem" --key "$T/filekey.key" --cacert "$T/ca/ca.pem" "https://localhost:$sc_port/files/1g.bin"
tp_case "curl direct (key in a file, no relay)" - --cert "$T/filekey.pem" --key "$T/filekey.key" \
	--cacert "$T/ca/ca.pem" "https://localhost:$port/files/1g.bin"
fi

if want memory; then
echo
echo "## Memory: idle relayed connections"
echo
rss() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$AGENT_PID/status"; }
echo "| connections | agent RSS | per connection |"
echo "|---|---|---|"
fds() { find "/proc/$AGENT_PID/fd" -mindepth 1 2>/dev/null | wc -l; }
settle() { # until the agent has let the held connections go
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(fds)" -lt 100 ] && return 0
		sleep 0.1
	done
	return 0
}
# The agent holds two descriptors per relayed connection; where the hard
# limit on open files is below 20,000 and cannot be raised (no
# CAP_SYS_RESOURCE), the large row is as many thousands as fit.
big=10000
nofile=$(ulimit -n)
if [ "$nofile" -lt $((2 * big + 500)) ]; then
	big=$(((nofile - 500) / 2 / 1000 * 1000))
fi
# The per-connection figure is what one more idle connection adds, read
# between two levels of connections held open together: by then the 8
# handshake workers exist with what each keeps for good (FP_ECC tables,
# about 7 MiB), and no freed memory is there to be reused, so neither
# fixed cost nor reuse is divided among the connections. Connections open
# 1,000 at a time: 10,000 idle connections build up, they do not all start
# their handshake at once.
cold=$(rss VmRSS)
echo "| 0 | $((cold / 1024)) MiB | - |"
held_lg=()
level=0
prev=
for nconn in 500 1000 "$big"; do
	add=$((nconn - level))
	: >"$T/lg.out"
	"$LOADGEN" "$T/web.sock" "$add" 3600 "dn=CN=bench-device" 1000 >"$T/lg.out" &
	held_lg+=($!)
	# 10,000 handshakes take a while: until the generator says all are up.
	for _ in $(seq 1 3000); do grep -q '^ok=' "$T/lg.out" 2>/dev/null && break; sleep 0.1; done
	held=$(rss VmRSS)
	note=
	[ "$nconn" = 500 ] || [ "$nconn" = 1000 ] || [ "$nconn" = 10000 ] || note=", open-file limit $nofile"
	if [ -n "$prev" ]; then
		echo "| $nconn (the $add more: $(cat "$T/lg.out")$note) | $((held / 1024)) MiB | $(((held - prev) / add)) KiB |"
	else
		echo "| $nconn ($(cat "$T/lg.out"); with the workers' tables) | $((held / 1024)) MiB | ($(((held - cold) / nconn)) KiB) |"
	fi
	prev=$held
	level=$nconn
done
kill "${held_lg[@]}" 2>/dev/null || true
wait "${held_lg[@]}" 2>/dev/null || true
settle
fi
