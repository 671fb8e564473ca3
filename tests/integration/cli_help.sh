#!/bin/bash
# mtlsctl's help, version, env and bash completion, with neither an agent
# nor a token: every command of the table answers --help, -h and help
# COMMAND alike on stdout with status 0 (no configuration read: -c names a
# file that does not exist); bad usage says so on stderr with status 2 and
# a hint; env's lines, evaluated by bash and csh, set ALL_PROXY to the
# socket path exactly, whatever quotes or spaces it holds; the completion
# offers commands, options, identities and tokens of a configuration.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

t_init cli_help
src=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -nE 's/^project\(mtls-agent VERSION ([0-9.]+).*/\1/p' "$src/CMakeLists.txt")
[ -n "$version" ] || t_fail "no project version in CMakeLists.txt"
ctl() { "$MTLSCTL" -c "$T/none.conf" "$@"; }

# Both binaries: --version and --help.
for bin in "$MTLS_AGENT" "$MTLSCTL"; do
	out=$("$bin" --version) || t_fail "$bin --version: status $?"
	[ "$out" = "$(basename "$bin") $version" ] || t_fail "$bin --version: '$out'"
	"$bin" --help >"$T/help.out" 2>"$T/help.err" || t_fail "$bin --help: status $?"
	t_assert_contains "$T/help.out" "^usage: $(basename "$bin") "
	[ ! -s "$T/help.err" ] || t_fail "$bin --help wrote to stderr"
done
echo "ok: --version ($version) and --help on both binaries"

# Every command of the table.
mapfile -t cmds < <(ctl list commands)
((${#cmds[@]} >= 15)) || t_fail "only ${#cmds[@]} commands listed"
ctl help >"$T/all.out"
for cmd in "${cmds[@]}"; do
	grep -qE "^  $cmd " "$T/all.out" || t_fail "mtlsctl help lacks $cmd"
	ctl "$cmd" --help >"$T/a.out" 2>"$T/a.err" || t_fail "$cmd --help: status $?"
	[ ! -s "$T/a.err" ] || t_fail "$cmd --help wrote to stderr: $(cat "$T/a.err")"
	head -n1 "$T/a.out" | grep -qE "^usage: mtlsctl \[-c CONFIG\] $cmd( |$)" ||
		t_fail "$cmd --help: first line '$(head -n1 "$T/a.out")'"
	ctl "$cmd" -h >"$T/b.out" || t_fail "$cmd -h: status $?"
	ctl help "$cmd" >"$T/c.out" || t_fail "help $cmd: status $?"
	cmp -s "$T/a.out" "$T/b.out" || t_fail "$cmd: -h differs from --help"
	cmp -s "$T/a.out" "$T/c.out" || t_fail "$cmd: help $cmd differs from --help"
done
# --help after other arguments, and not taken for an option's value.
ctl policy check --uid 0 --dest h:1 --help | grep -q '^usage: mtlsctl \[-c CONFIG\] policy check' ||
	t_fail "policy check ... --help"
ctl csr x --subject CN=a --help >/dev/null || t_fail "csr ... --help"
set +e
ctl connect --socket --help h:1 >/dev/null 2>&1
rc=$?
set -e
[ $rc != 0 ] || t_fail "connect --socket --help took --help as help, not as the path"
echo "ok: ${#cmds[@]} commands answer --help, -h and help COMMAND alike"

# Bad usage: status 2, the reason and a hint on stderr, nothing on stdout.
bad() { # EXPECTED-PATTERN ARGS...
	local want=$1 rc
	shift
	set +e
	"$MTLSCTL" -c "$T/none.conf" "$@" >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	set -e
	[ $rc = 2 ] || t_fail "mtlsctl $*: status $rc, not 2"
	[ ! -s "$T/bad.out" ] || t_fail "mtlsctl $*: wrote to stdout"
	t_assert_contains "$T/bad.err" "$want"
	t_assert_contains "$T/bad.err" "mtlsctl help"
}
bad "unrecognized option '--bogus'" policy check --bogus
bad "unrecognized option '--bogus'" keygen id --bogus
bad "unrecognized option '--bogus'" status --bogus
bad "unrecognized option '-x'" csr id -x
bad "unknown command 'bogus'" bogus
bad "unknown command 'bogus'" help bogus
bad "unknown option '--bogus'" --bogus status
bad "^usage: mtlsctl \[-c CONFIG\] import-cert IDENTITY FILE" import-cert
set +e
"$MTLS_AGENT" --bogus >/dev/null 2>"$T/bad.err"
rc=$?
set -e
[ $rc = 2 ] || t_fail "mtls-agent --bogus: status $rc"
t_assert_contains "$T/bad.err" "unrecognized option"
t_assert_contains "$T/bad.err" "--help"
echo "ok: unknown commands and options: status 2, a hint on stderr"

# env: evaluated by the shell, the exact path, quotes and spaces included.
sock="$T/a b'c \$(touch $T/injected) \`x\` \"q\" !x.sock"
out=$(ctl env --socket "$sock")
# shellcheck disable=SC2030,SC2031
(
	unset ALL_PROXY all_proxy
	eval "$out"
	[ "$ALL_PROXY" = "socks5h://localhost$sock" ] || t_fail "ALL_PROXY='$ALL_PROXY'"
	[ "$all_proxy" = "$ALL_PROXY" ] || t_fail "all_proxy='$all_proxy'"
	[ "$(bash -c 'printf %s "$ALL_PROXY"')" = "$ALL_PROXY" ] || t_fail "ALL_PROXY not exported"
)
[ ! -e "$T/injected" ] || t_fail "env's output ran a command"
if command -v csh >/dev/null 2>&1; then
	got=$(ctl env --csh --socket "$sock" >"$T/env.csh" &&
		csh -f -c "source $T/env.csh; printenv ALL_PROXY")
	[ "$got" = "socks5h://localhost$sock" ] || t_fail "csh: ALL_PROXY='$got'"
	echo "ok: csh"
else
	echo "(no csh here: its quoting not run)"
fi
t_expect_fail ctl env --socket "$T/new
line.sock" 2>/dev/null
# The default: the first [proxy] of the configuration, else the runtime dir.
cat >"$T/tcp.conf" <<-EOF
	[token soft]
	module = softhsm2
	uri = pkcs11:token=demo
	[token card]
	module = opensc
	uri = pkcs11:token=card
	[identity corp]
	token = soft
	key = pkcs11:object=corp-key;type=private
	cert = pkcs11:object=corp-cert;type=cert
	[identity dev-laptop]
	token = card
	key = pkcs11:object=dev-key;type=private
	cert = pkcs11:object=dev-cert;type=cert
	[proxy loop]
	listen = 127.0.0.1:1080
	[proxy unix]
	listen = $T/unix.sock
	[rule nothing]
	hosts = nothing.example
	action = deny
EOF
out=$("$MTLSCTL" -c "$T/tcp.conf" env)
[ "$out" = "ALL_PROXY='socks5h://127.0.0.1:1080'; export ALL_PROXY;
all_proxy='socks5h://127.0.0.1:1080'; export all_proxy;
http_proxy='http://127.0.0.1:1080'; export http_proxy;" ] || t_fail "env (loopback port): $out"
[[ $out != *HTTP_PROXY* ]] || t_fail "env printed HTTP_PROXY (httpoxy)"
out=$(XDG_RUNTIME_DIR=/run/user/4711 ctl env)
t_assert_contains "$out" "^ALL_PROXY='socks5h://localhost/run/user/4711/mtls-agent/agent.sock'; export ALL_PROXY;$"
echo "ok: env quotes safely; defaults from [proxy] and XDG_RUNTIME_DIR"

# Completion, as bash calls it.
complete_words() { # WORDS... (the last one is being completed)
	(
		# shellcheck disable=SC1091
		. "$src/systemd/mtlsctl.bash-completion"
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_mtlsctl
		printf '%s\n' "${COMPREPLY[@]}"
	)
}
got=$(complete_words "$MTLSCTL" "")
for cmd in "${cmds[@]}"; do
	grep -qx -- "$cmd" <<<"$got" || t_fail "completion lacks command $cmd"
done
[ "$(complete_words "$MTLSCTL" -c "$T/tcp.conf" ke)" = "$(printf 'keygen\nkey-info')" ] ||
	t_fail "completion of ke: $(complete_words "$MTLSCTL" ke)"
got=$(complete_words "$MTLSCTL" -c "$T/tcp.conf" renew "")
[ "$got" = "$(printf 'corp\ndev-laptop')" ] || t_fail "identities: '$got'"
got=$(complete_words "$MTLSCTL" --config "$T/tcp.conf" unlock "")
[ "$got" = "$(printf 'soft\ncard')" ] || t_fail "tokens: '$got'"
got=$(complete_words "$MTLSCTL" -c "$T/tcp.conf" keygen --type ec-p256 "")
[ "$got" = "$(printf 'corp\ndev-laptop')" ] || t_fail "identity after --type T: '$got'"
got=$(complete_words "$MTLSCTL" keygen corp --type "")
[ "$got" = "$(printf 'ec-p256\nec-p384\nrsa-2048\nrsa-3072')" ] || t_fail "--type values: '$got'"
got=$(complete_words "$MTLSCTL" policy check --d)
[ "$got" = "--dest" ] || t_fail "policy check --d: '$got'"
got=$(complete_words "$MTLSCTL" help po)
[ "$got" = "policy" ] || t_fail "help po: '$got'"
echo "ok: completion of commands, options, their values, identities and tokens"
t_pass "mtlsctl help, env and completion"
