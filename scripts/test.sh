#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs,
# builds with warnings as errors, runs every unit and integration test,
# builds again with ASan+UBSan and runs the suite under the sanitizers, then
# runs each libFuzzer target for a bounded time.
# Safe to run twice. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

BUILD=build scripts/build.sh -DMTLS_WERROR=ON
(cd build && ctest --output-on-failure -j2)

# Sanitizers: leaks are fatal too (detect_leaks), so is any UB.
BUILD=build-asan scripts/build.sh -DMTLS_WERROR=ON -DMTLS_SANITIZE=ON \
	-DCMAKE_BUILD_TYPE=Debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export MTLS_SANITIZED=1 # memory figures of the load test are not asserted
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2)

# Fuzzing, bounded: every libFuzzer target for MTLS_FUZZ_SECONDS (30 s).
CC=clang BUILD=build-fuzz scripts/build.sh -DMTLS_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=Debug -DMTLS_FUZZ_SECONDS="${MTLS_FUZZ_SECONDS:-30}"
(cd build-fuzz && ctest -L fuzz --output-on-failure -j2)
echo "all tests passed (plain, ASan+UBSan, fuzzing)"
