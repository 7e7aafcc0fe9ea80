#!/usr/bin/env bash
# From a fresh Debian 12 machine: installs the dependencies and runs every
# test. A release build runs the test binary, griffin-conformance on the
# vendored golden cases, the must-not-compile checks and the packaging tests;
# a second build runs the test binary and the conformance cases under
# AddressSanitizer + UndefinedBehaviorSanitizer; a third (clang) fuzzes the
# safetensors and config parsers for GRIFFIN_FUZZ_SECONDS (60) each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
jobs=$(nproc)

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DGRIFFIN_BUILD_BENCH=ON
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs"

cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1 -DGRIFFIN_SANITIZE=ON \
  -DGRIFFIN_BUILD_EXAMPLES=OFF -DGRIFFIN_BUILD_PACKAGING_TESTS=OFF
cmake --build build/sanitize -j "$jobs" --target griffin_tests griffin-conformance
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$jobs" -R "^(griffin_tests|conformance)"
cmake -S . -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DGRIFFIN_BUILD_FUZZERS=ON \
  -DGRIFFIN_BUILD_TESTS=OFF -DGRIFFIN_BUILD_EXAMPLES=OFF -DGRIFFIN_BUILD_TOOLS=OFF -DGRIFFIN_INSTALL=OFF \
  -DGRIFFIN_NATIVE=OFF -DGRIFFIN_FUZZ_SECONDS="${GRIFFIN_FUZZ_SECONDS:-60}"
cmake --build build/fuzz -j "$jobs"
ctest --test-dir build/fuzz --output-on-failure -j "$jobs"
echo "all tests passed"
