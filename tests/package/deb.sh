#!/bin/bash
# The Debian package, end to end, on this machine (root, Debian 12):
#   1. dpkg-buildpackage -us -uc -b in a copy of the tree (the committed
#      tree plus uncommitted changes to tracked files: git stash create);
#   2. lintian: no error and no warning;
#   3. dpkg -i: the mtls-agent user made by the sysusers snippet,
#      /etc/mtls-agent and /var/lib/mtls-agent by the tmpfiles snippet, no
#      unit enabled or started, no configuration shipped;
#   4. mtls-agent --check, as the mtls-agent user, of a configuration in
#      /etc/mtls-agent naming a SoftHSM2 token that user owns (and a wrong
#      PIN refused, so the check is seen to check);
#   5. systemd-analyze verify of the installed system and user units;
#   6. dpkg --purge: every file dpkg -L listed is gone, and every directory
#      that was not there before the install; /etc/mtls-agent,
#      /var/lib/mtls-agent, the dpkg and deb-systemd-helper state too. The
#      mtls-agent user stays (Debian keeps system users: files it owns
#      elsewhere, such as tokens, would fall to a reused uid).
# On any failure the trap purges the package and removes the copy.
# Refuses to run if mtls-agent is installed or its directories exist: the
# purge would remove a real installation's configuration.
set -euo pipefail
# The installed programs, not a build's.
MTLS_AGENT=/usr/sbin/mtls-agent MTLSCTL=/usr/bin/mtlsctl
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/softhsm.sh"
. "$(dirname "$0")/../lib/pki.sh"
. "$(dirname "$0")/../lib/agent.sh"

src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "FAIL: the package test needs root (dpkg -i)" >&2; exit 1; }
if dpkg-query -W -f='${Status}' mtls-agent 2>/dev/null | grep -q 'installed\|config-files'; then
	echo "FAIL: mtls-agent is installed here; the test would purge it" >&2
	exit 1
fi
for d in /etc/mtls-agent /var/lib/mtls-agent; do
	[ ! -e "$d" ] || { echo "FAIL: $d exists; the test's purge would remove it" >&2; exit 1; }
done

t_init deb
start=$(date +%s)
# Whatever happens from here: no package left installed (purge is a no-op
# when it is not), the copy and the .deb go with $T.
t_on_exit dpkg --purge mtls-agent

# 1. Build in a copy.
rev=$(git -C "$src" stash create)
mkdir -p "$T/build"
git -C "$src" archive --prefix=mtls-agent/ "${rev:-HEAD}" | tar -x -C "$T/build"
version=$(sed -n '1s/^mtls-agent (\([^)]*\)).*/\1/p' "$T/build/mtls-agent/debian/changelog")
project=$(sed -n 's/^project(mtls-agent VERSION \([0-9.]*\).*/\1/p' "$T/build/mtls-agent/CMakeLists.txt")
[ -n "$version" ] && [ "$version" = "$project" ] ||
	t_fail "debian/changelog version '$version' is not CMakeLists.txt's '$project'"
(cd "$T/build/mtls-agent" && dpkg-buildpackage -us -uc -b) >"$T/dpkg-buildpackage.log" 2>&1 ||
	t_fail "dpkg-buildpackage failed"
deb=$T/build/mtls-agent_${version}_amd64.deb
[ -f "$deb" ] || t_fail "no $deb: $(ls "$T/build")"
echo "ok: dpkg-buildpackage built $(basename "$deb") ($(($(date +%s) - start)) s)"

# 2. lintian (lintian's own note about running as root is not a tag).
lintian --fail-on error,warning --tag-display-limit 0 -I \
	"$T/build/mtls-agent_${version}_amd64.changes" >"$T/lintian.log" 2>&1 ||
	t_fail "lintian: $(grep -v 'root privileges' "$T/lintian.log")"
echo "ok: lintian: no error, no warning ($(grep -c '^[IP]:' "$T/lintian.log" || true) info tags)"

# 3. Install.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#; s#/$##; /^$/d' >"$T/contents"
grep -q '^/etc' "$T/contents" && t_fail "the package ships files under /etc: $(grep '^/etc' "$T/contents")"
for f in /usr/sbin/mtls-agent /usr/bin/mtlsctl /lib/systemd/system/mtls-agent.service \
	/lib/systemd/system/mtls-agent.socket /usr/lib/systemd/user/mtls-agent.service \
	/usr/lib/systemd/user/mtls-agent.socket /usr/lib/sysusers.d/mtls-agent.conf \
	/usr/lib/tmpfiles.d/mtls-agent.conf /usr/share/man/man8/mtls-agent.8.gz \
	/usr/share/man/man5/mtls-agent.conf.5.gz /usr/share/man/man1/mtlsctl.1.gz \
	/usr/share/doc/mtls-agent/mtls-agent.conf.example; do
	grep -qx "$f" "$T/contents" || t_fail "$f not in the package"
done
user_before=no
getent passwd mtls-agent >/dev/null && user_before=yes
: >"$T/existed"
while read -r p; do [ -e "$p" ] || [ -L "$p" ] && echo "$p" >>"$T/existed"; done <"$T/contents"
dpkg -i "$deb" >"$T/dpkg-i.log" 2>&1 || t_fail "dpkg -i: $(cat "$T/dpkg-i.log")"
dpkg -L mtls-agent | grep -vx "/." >"$T/dpkg-L"
getent passwd mtls-agent >"$T/passwd" || t_fail "no mtls-agent user after dpkg -i"
IFS=: read -r _ _ uid gid _ home shell <"$T/passwd"
[ "$home" = /var/lib/mtls-agent ] && [ "$uid" -lt 1000 ] ||
	t_fail "mtls-agent user: $(cat "$T/passwd")"
getent group mtls-agent >/dev/null || t_fail "no mtls-agent group"
# Made by dh_installsysusers' snippet, not by hand (a second run finds the
# user of the first: Debian keeps it at purge).
grep -q 'systemd-sysusers.*mtls-agent.conf' /var/lib/dpkg/info/mtls-agent.postinst ||
	t_fail "postinst has no dh_installsysusers snippet"
[ "$(stat -c '%U:%G %a' /etc/mtls-agent)" = "root:mtls-agent 750" ] ||
	t_fail "/etc/mtls-agent: $(stat -c '%U:%G %a' /etc/mtls-agent)"
[ "$(stat -c '%U:%G %a' /var/lib/mtls-agent)" = "mtls-agent:mtls-agent 700" ] ||
	t_fail "/var/lib/mtls-agent: $(stat -c '%U:%G %a' /var/lib/mtls-agent)"
[ -z "$(ls -A /etc/mtls-agent)" ] || t_fail "a configuration was installed: $(ls -A /etc/mtls-agent)"
ls /etc/systemd/system/*.wants/mtls-agent.* /etc/systemd/user/*.wants/mtls-agent.* 2>/dev/null &&
	t_fail "dpkg -i enabled a unit"
echo "ok: dpkg -i: user mtls-agent uid $uid (existed before: $user_before), shell $shell;" \
	"/etc/mtls-agent empty (root:mtls-agent 750), /var/lib/mtls-agent; no unit enabled"

# 4. --check as the mtls-agent user, the configuration where the unit reads it.
chmod 711 "$T"
softhsm_init pkg 87654321 pPIN-5209kd
pki_ca "$T/ca" "Package CA"
conf=/etc/mtls-agent/mtls-agent.conf
agent_conf_token "$conf" pkg /etc/mtls-agent/token.pin
sed -i 's#^state_dir = .*#state_dir = /var/lib/mtls-agent#' "$conf"
# PIN files must be 0600 (the agent refuses group access): root's while
# root provisions the token, then the agent user's.
(umask 077 && printf 'pPIN-5209kd\n' >/etc/mtls-agent/token.pin)
agent_conf_identity "$conf" dev "$T/ca/ca.pem"
identity_provision "$conf" dev ec-p256 "$T/ca" "CN=pkg-dev"
agent_conf_tunnel "$conf" dev "$T/dev.sock" "localhost:443" dev
chown -R mtls-agent:mtls-agent "$T/tokens"
chmod 644 "$SOFTHSM2_CONF" "$T/ca/ca.pem"
chown mtls-agent:mtls-agent /etc/mtls-agent/token.pin
chgrp mtls-agent "$conf" && chmod 640 "$conf"
as_agent() { runuser -u mtls-agent -- env SOFTHSM2_CONF="$SOFTHSM2_CONF" "$@"; }
as_agent "$MTLS_AGENT" -c "$conf" --check >"$T/check.out" 2>&1 ||
	t_fail "mtls-agent --check as mtls-agent: $(cat "$T/check.out")"
printf 'wrong-PIN\n' >/etc/mtls-agent/token.pin # keeps owner and mode
if as_agent "$MTLS_AGENT" -c "$conf" --check >"$T/check-bad.out" 2>&1; then
	t_fail "mtls-agent --check accepted a wrong PIN: $(cat "$T/check-bad.out")"
fi
grep -qi 'pin' "$T/check-bad.out" ||
	t_fail "--check with a wrong PIN failed for another reason: $(cat "$T/check-bad.out")"
echo "ok: mtls-agent --check as uid $uid: the configuration passes; a wrong PIN fails:" \
	"$(grep -i pin "$T/check-bad.out" | tail -n 1)"

# 5. The installed units, offline (no systemd runs as PID 1 here).
systemd-analyze verify /lib/systemd/system/mtls-agent.service \
	/lib/systemd/system/mtls-agent.socket >"$T/verify.log" 2>&1 ||
	t_fail "systemd-analyze verify (system): $(cat "$T/verify.log")"
[ ! -s "$T/verify.log" ] || t_fail "systemd-analyze verify (system) said: $(cat "$T/verify.log")"
# --user needs a runtime directory (the user units' %t): XDG_RUNTIME_DIR,
# which root has none of here.
mkdir -m 700 "$T/xdg-runtime"
XDG_RUNTIME_DIR=$T/xdg-runtime systemd-analyze --user verify /usr/lib/systemd/user/mtls-agent.service \
	/usr/lib/systemd/user/mtls-agent.socket >"$T/verify-user.log" 2>&1 ||
	t_fail "systemd-analyze --user verify: $(cat "$T/verify-user.log")"
[ ! -s "$T/verify-user.log" ] || t_fail "systemd-analyze --user verify said: $(cat "$T/verify-user.log")"
echo "ok: systemd-analyze verify: system and user units, man pages found"

# 6. Purge: nothing of the package left.
dpkg --purge mtls-agent >"$T/purge.log" 2>&1 || t_fail "dpkg --purge: $(cat "$T/purge.log")"
left=()
while read -r p; do
	[ -e "$p" ] || [ -L "$p" ] || continue
	grep -qxF "$p" "$T/existed" && [ -d "$p" ] && continue # /usr, /lib/systemd/system ...
	left+=("$p")
done <"$T/dpkg-L"
for p in /etc/mtls-agent /var/lib/mtls-agent /run/mtls-agent /var/lib/dpkg/info/mtls-agent.list \
	/var/lib/systemd/deb-systemd-helper-enabled/mtls-agent.service.dsh-also \
	/var/lib/systemd/deb-systemd-helper-enabled/mtls-agent.socket.dsh-also \
	/var/lib/systemd/deb-systemd-user-helper-enabled/mtls-agent.service.dsh-also; do
	[ -e "$p" ] && left+=("$p")
done
[ ${#left[@]} -eq 0 ] || t_fail "left after dpkg --purge: ${left[*]}"
dpkg-query -W -f='${Status}' mtls-agent 2>/dev/null | grep -q 'installed\|config-files' &&
	t_fail "dpkg still knows mtls-agent: $(dpkg-query -W -f='${Status}' mtls-agent)"
getent passwd mtls-agent >/dev/null || t_fail "the mtls-agent user went with the purge (it is kept by design)"
echo "ok: dpkg --purge: $(wc -l <"$T/dpkg-L") paths of dpkg -L gone (directories other packages" \
	"share kept), /etc/mtls-agent and /var/lib/mtls-agent gone; user mtls-agent kept"
echo "package test passed ($(($(date +%s) - start)) s)"
