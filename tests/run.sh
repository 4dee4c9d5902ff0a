#!/usr/bin/env bash
# run.sh — sets up (packages, Release build and ASan+UBSan build) and runs
# every test in both builds: the Check unit suites and the end-to-end tests
# that start real processes on loopback.
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
exit $status
