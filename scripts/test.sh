#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs,
# builds with warnings as errors, runs every unit and integration test,
# builds, installs and purges the Debian package (as root), builds again with ASan+UBSan and runs the suite under the sanitizers, runs
# the concurrent tests under ThreadSanitizer, then runs each libFuzzer
# target for a bounded time.
# Safe to run twice. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

BUILD=build scripts/build.sh -DMTLS_WERROR=ON
(cd build && ctest --output-on-failure -j2)

# The Debian package: built, lintian-clean, installed, checked as the
# mtls-agent user, purged (about 15 s). Alone, after the plain run: it
# installs into this machine's /usr and /etc. Needs root (CI is).
if [ "$(id -u)" -eq 0 ]; then
	tests/package/deb.sh
else
	echo "SKIPPED: tests/package/deb.sh needs root (dpkg -i); CI runs it" >&2
fi

# Sanitizers: leaks are fatal too (detect_leaks), so is any UB.
BUILD=build-asan scripts/build.sh -DMTLS_WERROR=ON -DMTLS_SANITIZE=ON \
	-DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export MTLS_SANITIZED=1 # memory figures of the load test are not asserted
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2)

# ThreadSanitizer: the tests where threads meet (relay, load, token faults,
# reload, shutdown, the handshake pool under attack). Reports go to files:
# any report fails the run, whatever the test itself saw.
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
BUILD=build-tsan scripts/build.sh -DMTLS_WERROR=ON -DMTLS_TSAN=ON \
	-DCMAKE_BUILD_TYPE=Debug
rm -rf build-tsan/tsan-reports && mkdir -p build-tsan/tsan-reports
export TSAN_OPTIONS="log_path=$PWD/build-tsan/tsan-reports/report second_deadlock_stack=1"
(cd build-tsan && ctest --output-on-failure -j2 -L tsan)
if [ -n "$(ls -A build-tsan/tsan-reports)" ]; then
	cat build-tsan/tsan-reports/* >&2
	echo "ThreadSanitizer reported a race (above)" >&2
	exit 1
fi
unset TSAN_OPTIONS

# Fuzzing, bounded: every libFuzzer target for MTLS_FUZZ_SECONDS (30 s).
CC=clang BUILD=build-fuzz scripts/build.sh -DMTLS_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=Debug -DMTLS_FUZZ_SECONDS="${MTLS_FUZZ_SECONDS:-30}"
(cd build-fuzz && ctest -L fuzz --output-on-failure -j2)
echo "all tests passed (plain, ASan+UBSan, ThreadSanitizer, fuzzing)"
