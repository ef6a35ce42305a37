#!/usr/bin/env bash
# Runs every test: the library suites in a plain build, under ASan+UBSan and under TSan,
# the library cross-built for AArch64 and run in qemu-system-aarch64 (tests/arm64/run.sh),
# then the kernel port's tests (kernel-port/test.sh). Prints "N passed, M failed" last
# and exits non-zero if anything failed.
#   JITALLOC_SKIP_ARM64=1    skip the arm64 part (Debian's arm64 kernel and packages are
#                            kept in JITALLOC_ARM64_CACHE, default /var/cache/jitalloc-arm64)
#   JITALLOC_SKIP_KERNEL=1   skip the kernel port
#   JITALLOC_SKIP_SANITIZERS=1  only the plain build
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/install-deps.sh || { echo "dependency install failed"; exit 1; }

passed=0
failed=0
jobs=$(nproc)

# run_suite NAME BUILD_DIR CTEST_ARGS CMAKE_ARGS...
run_suite() {
  local name=$1 dir=$2 ctest_args=$3
  shift 3
  echo "=== $name: configure and build ($dir)"
  if ! cmake -S "$root" -B "$dir" "$@" >"$dir.configure.log" 2>&1 ||
     ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
    tail -n 60 "$dir.configure.log" "$dir.build.log" 2>/dev/null
    echo "=== $name: BUILD FAILED"
    failed=$((failed + 1))
    return
  fi
  echo "=== $name: ctest $ctest_args"
  local log="$dir.ctest.log"
  # shellcheck disable=SC2086
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j"$jobs" $ctest_args) 2>&1 | tee "$log"
  local line p f
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "=== $name: ctest did not report"
    failed=$((failed + 1))
    return
  fi
  f=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  p=$(( $(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$line") - f ))
  passed=$((passed + p))
  failed=$((failed + f))
}

run_suite "plain" "$root/build-test" "-LE soak" -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${JITALLOC_SKIP_SANITIZERS:-0}" != 1 ]; then
  run_suite "asan+ubsan" "$root/build-asan" "-L core|reliability -LE soak|fuzz" \
    -DCMAKE_BUILD_TYPE=Debug -DJITALLOC_SANITIZE="address;undefined" \
    -DJITALLOC_BUILD_BENCH=OFF -DJITALLOC_BUILD_EXAMPLES=OFF -DJITALLOC_BUILD_ORC=OFF
  run_suite "tsan" "$root/build-tsan" "-L core|reliability -LE soak|fuzz" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJITALLOC_SANITIZE=thread \
    -DJITALLOC_BUILD_BENCH=OFF -DJITALLOC_BUILD_EXAMPLES=OFF -DJITALLOC_BUILD_ORC=OFF
fi

# run_part NAME SCRIPT: runs a part that ends with "NAME: N passed, M failed ..." and adds
# its counts; a part that fails without counting a failed test (or without its line)
# counts one.
run_part() {
  local name=$1 script=$2 log status line f=0
  log="$root/build-$name-test.log"
  echo "=== ${script#"$root"/}"
  "$script" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
  if [ -n "$line" ]; then
    passed=$((passed + $(sed -E "s/^$name: ([0-9]+) passed.*/\\1/" <<<"$line")))
    f=$(sed -E 's/^[^,]*, ([0-9]+) failed.*/\1/' <<<"$line")
    failed=$((failed + f))
  fi
  if [ "$status" -ne 0 ] && [ "$f" = 0 ]; then
    failed=$((failed + 1))
  fi
}

if [ "${JITALLOC_SKIP_ARM64:-0}" != 1 ]; then
  run_part arm64 "$root/tests/arm64/run.sh"
fi
if [ "${JITALLOC_SKIP_KERNEL:-0}" != 1 ] && [ -x "$root/kernel-port/test.sh" ]; then
  run_part kernel-port "$root/kernel-port/test.sh"
fi

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
