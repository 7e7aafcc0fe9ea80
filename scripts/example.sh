#!/usr/bin/env bash
# From a fresh Debian 12 machine: installs the dependencies, builds griffin
# and runs the first example (Hawk, Griffin, the MQA Transformer and a custom
# hybrid: decode latency as the context grows). Extra arguments go to the example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j "$(nproc)" --target hybrid_schedules griffin-conformance
./build/release/examples/hybrid_schedules "$@"
