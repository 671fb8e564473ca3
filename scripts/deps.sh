#!/bin/bash
# Installs the Debian 12 packages that the build, the demo and the tests
# need. Safe to run twice: installs only what is missing. As root it runs
# apt-get; otherwise it prints the exact command and fails if anything is
# missing.
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config clang libclang-rt-14-dev
	libwolfssl-dev libp11-kit-dev libinih-dev libsystemd-dev libcmocka-dev
	# tokens and tools
	p11-kit softhsm2 opensc
	# peers for the demo and the tests
	nginx-light openssl curl socat libengine-pkcs11-openssl
	iproute2 procps util-linux ca-certificates git
)

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages; run:" >&2
	echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's nginx packages start the service on install; the demo and the
# tests start their own nginx on loopback ports, so keep that one off.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
