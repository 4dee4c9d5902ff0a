#!/usr/bin/env bash
# run.sh — sets up (packages, Release build and ASan+UBSan build) and runs
# every test in both builds: the Check unit suites and the end-to-end tests
# that start real processes on loopback; then builds the libFuzzer targets
# (build-fuzz, clang) and runs each for PS_FUZZ_SECONDS (20) from its seeds.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$top/deploy/setup.sh" --tests --asan
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for build in build build-asan; do
  echo "== tests in $build =="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$top/$build" --output-on-failure -j "$jobs" || status=1
done
echo "== fuzz targets in build-fuzz (${PS_FUZZ_SECONDS:-20} s each) =="
if CC=clang cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPS_FUZZ=ON \
     -DPS_BUILD_TESTS=OFF -DPS_FUZZ_SECONDS="${PS_FUZZ_SECONDS:-20}" >/dev/null &&
   cmake --build "$top/build-fuzz" -j "$jobs" >/dev/null; then
  # one at a time: each is a single process that keeps a core busy
  ctest --test-dir "$top/build-fuzz" -L fuzz --output-on-failure || status=1
else
  echo "run.sh: the fuzz build failed" >&2
  status=1
fi
exit $status
