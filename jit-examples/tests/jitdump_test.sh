#!/usr/bin/env bash
# perf jitdump end to end with the real tools: perf record -k 1 of jitdump_target (which
# spends its time in two JIT functions, one of them rewritten in place before it runs),
# perf inject --jit, then perf report must name both functions and perf annotate must
# disassemble their loop. Exits 77 (skipped) where perf cannot record here.
#   jitdump_test.sh TARGET
set -uo pipefail
target=$1
command -v perf >/dev/null || { echo "SKIP: perf is not installed (linux-perf)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1

if ! perf record -q -k 1 -e cpu-clock -o perf.data -- env JITALLOC_JITDUMP_DIR="$dir" "$target" 150 \
    >record.out 2>&1; then
  if grep -qiE "perf_event_paranoid|Permission denied|not supported|No such device|Operation not permitted" record.out; then
    echo "SKIP: perf cannot record here:"; cat record.out; exit 77
  fi
  echo "FAIL: perf record failed"; cat record.out; exit 1
fi
grep -q "ran jd_hot_loop and jd_updated" record.out || { echo "FAIL: target"; cat record.out; exit 1; }
ls jit-*.dump >/dev/null 2>&1 || { echo "FAIL: no jit-PID.dump in $dir"; ls -la; exit 1; }

perf inject --jit -i perf.data -o perf.jit.data >inject.out 2>&1 || { echo "FAIL: perf inject"; cat inject.out; exit 1; }
ls jitted-*.so >/dev/null 2>&1 || { echo "FAIL: perf inject wrote no jitted-*.so"; cat inject.out; exit 1; }

perf report -i perf.jit.data --stdio --sort sym >report.out 2>&1
fail=0
for fn in jd_hot_loop jd_updated; do
  if ! grep -q "$fn" report.out; then
    echo "FAIL: perf report does not name $fn"; fail=1
  fi
  perf annotate -i perf.jit.data --stdio "$fn" >"annotate-$fn.out" 2>&1
  if ! grep -qE "dec +%ecx" "annotate-$fn.out" || ! grep -qE "jne " "annotate-$fn.out"; then
    echo "FAIL: perf annotate $fn shows no dec/jne loop"; cat "annotate-$fn.out"; fail=1
  fi
done
if [ $fail -ne 0 ]; then
  head -40 report.out
  exit 1
fi
grep -E "jd_(hot_loop|updated)" report.out
echo "perf report names both JIT functions; perf annotate disassembles them"
