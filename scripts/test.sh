#!/usr/bin/env bash
# Builds vgate with AddressSanitizer and UndefinedBehaviorSanitizer (clang, without the benchmarks), builds it
# again with Debian's default compiler (GCC) in Release, benchmarks included, without running that build
# (both must be warning-free: warnings are errors), then runs every test of the first: unit and table tests, replay tests on the committed captures,
# live tests in namespaces and with Docker, and a short run of every fuzzer. VGATE_GCC_BUILD=0 skips the GCC
# build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${VGATE_TEST_BUILD:-build/test}
# The benchmarks are built (and must build warning-free) by the GCC Release build below, where they mean
# something; CI runs each fuzzer for 10 s from its corpus (20 s elsewhere) to keep the suite under 25 minutes.
fuzz_seconds=20
[ "${CI:-}" = true ] && fuzz_seconds=10
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVGATE_SANITIZE=ON -DVGATE_FUZZ=ON -DVGATE_BENCH=OFF \
  -DVGATE_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
ninja -C "$build"
if [ "${VGATE_GCC_BUILD:-1}" != 0 ]; then
  gcc_build=${VGATE_GCC_TEST_BUILD:-build/gcc-release}
  cmake -S . -B "$gcc_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
    >/dev/null
  ninja -C "$gcc_build"
fi
cd "$build"
ctest --output-on-failure -j2
