#!/usr/bin/env bash
# Builds vgate with AddressSanitizer and UndefinedBehaviorSanitizer and runs every test: unit and table tests,
# replay tests on the committed captures, and a short run of every fuzzer (ctest runs them all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${VGATE_TEST_BUILD:-build/test}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVGATE_SANITIZE=ON -DVGATE_FUZZ=ON -DVGATE_BENCH=ON >/dev/null
ninja -C "$build"
cd "$build"
ctest --output-on-failure -j2
