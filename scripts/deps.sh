#!/bin/bash
# Installs the Debian 12 packages that the build, the demo and the tests
# need. Safe to run twice: does nothing when all are installed. As root it
# runs apt-get (update only when something is missing); otherwise it prints
# the exact command and fails if anything is missing.
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config clang libclang-rt-14-dev git valgrind
	libwolfssl-dev libp11-kit-dev libinih-dev libsystemd-dev libjson-c-dev
	libcmocka-dev libssl-dev
	# tokens and their tools
	p11-kit softhsm2 opensc
	# peers and tools for the demo and the tests (procps: ps, pkill)
	nginx-light openssl curl wget socat libengine-pkcs11-openssl stunnel4
	iproute2 procps util-linux ca-certificates fcgiwrap
	# pin_source = pinentry: the real pinentry on a pty made by tmux
	pinentry-curses tmux
	# adversarial tests: a hostile client in Python's standard library;
	# a hostile TLS server building its own records (AEAD, HKDF)
	python3 python3-cryptography
	# promtool (checks the metrics format and docs/monitoring's alerting
	# rules), systemd-analyze, systemd-socket-activate
	prometheus systemd
	# TPM tests (tests/lib/tpm.sh): swtpm and tpm2-pkcs11
	swtpm tpm2-tools libtpm2-pkcs11-1 libtss2-tcti-swtpm0
	# smartcard tests (../shared/tools/virtual-piv): a virtual PIV card
	# behind a private pcscd, used through ykcs11 and OpenSC
	pcscd vsmartcard-vpcd openjdk-17-jre-headless libbcprov-java ykcs11
	yubico-piv-tool
	# ACME tests (tests/lib/pebble.sh): pebble (test CA) with
	# pebble-challtestsrv (mock DNS), lego (an independent ACME client)
	pebble lego
	# the Debian package (tests/package/deb.sh): dpkg-buildpackage with
	# debhelper 13 (dh_installsysusers, dh_installtmpfiles), fakeroot for
	# building as non-root, lintian to check the result
	debhelper dpkg-dev fakeroot lintian
)

command -v dpkg-query >/dev/null || {
	echo "deps.sh: not a Debian system (no dpkg-query)" >&2
	exit 1
}
missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${missing[*]}; run:" >&2
	echo "sudo apt-get install -y --no-install-recommends ${missing[*]}"
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Installing nginx starts the system's nginx on port 80; the demo and the
# tests run their own on loopback ports, so keep services from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
