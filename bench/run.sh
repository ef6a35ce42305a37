#!/usr/bin/env bash
# Builds and runs the jitalloc benchmarks, then writes bench/RESULTS.md, the raw Google
# Benchmark JSON (bench/results/*.json) and PNG plots (bench/results/*.png).
#
#   bench/run.sh           full run (more repetitions and iterations)
#   bench/run.sh --quick   the same workloads, fewer repetitions (< 10 min on 2 cores)
#   bench/run.sh [--quick] --only GROUP   re-run one group (load_unload, churn, update,
#                          calls, threads, patch, memory, orc, cold, latency, latency_1m), keep the other groups' JSON and
#                          machine.json, and rewrite RESULTS.md from them
#
# On Debian 12, run as root, it installs what it needs (apt-get update first).
# Environment: JITALLOC_BENCH_BUILD (build directory, default <repo>/build-bench),
#              JITALLOC_BENCH_REPS (repetitions, default 3 quick / 7 full).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
QUICK=0
ONLY=
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=${2:?--only needs a group}; shift ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
START=$(date +%s)

# ---- dependencies ----
PKGS=(build-essential cmake libbenchmark-dev libasmjit-dev gnuplot-nox python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "run.sh: installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "run.sh: missing packages: ${missing[*]} (run as root on Debian to install them)" >&2
    exit 1
  fi
fi

# ---- build (library + bench only) ----
BUILD=${JITALLOC_BENCH_BUILD:-$ROOT/build-bench}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DJITALLOC_BUILD_TESTS=OFF -DJITALLOC_BUILD_EXAMPLES=OFF >/dev/null
make -C "$BUILD" jitalloc_bench jitalloc_cold_bench jitalloc_latency_bench -j"$(nproc)" --no-print-directory >/dev/null
BIN=$BUILD/bench/jitalloc_bench
# The ORC benchmark (section 7) exists only where CMake found LLVM 16.
ORC_BIN=
# Built only when the orc group runs (it compiles against LLVM: minutes on 2 cores).
if [[ -z $ONLY || $ONLY == orc ]] &&
   make -C "$BUILD" help --no-print-directory | grep '\.\.\. jitalloc_orc_bench$' >/dev/null; then
  make -C "$BUILD" jitalloc_orc_bench -j"$(nproc)" --no-print-directory >/dev/null
  ORC_BIN=$BUILD/bench/orc/jitalloc_orc_bench
fi

# ---- run ----
OUT=$HERE/results
mkdir -p "$OUT"
if [[ -z $ONLY ]]; then
  for f in "$OUT"/*.json "$OUT"/*.png; do
    # A quick run keeps latency_1m.json (see the latency groups below).
    ((QUICK)) && [[ ${f##*/} == latency_1m.json ]] && continue
    rm -f "$f"
  done
fi
if ((QUICK)); then REPS=${JITALLOC_BENCH_REPS:-3}; MODE=(--bench_quick); else REPS=${JITALLOC_BENCH_REPS:-7}; MODE=(); fi

[[ -n $ONLY ]] || {
  echo "{"
  echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"quick\": $QUICK,"
  echo "  \"repetitions\": $REPS,"
  echo "  \"kernel\": \"$(uname -r)\","
  echo "  \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\","
  echo "  \"cpus\": $(nproc),"
  echo "  \"mem_gib\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
  echo "  \"thp\": \"$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo n/a)\","
  echo "  \"thp_shmem\": \"$(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null || echo n/a)\","
  echo "  \"thp_defrag\": \"$(cat /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null || echo n/a)\","
  echo "  \"loadavg_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo "  \"jitalloc\": $("$BIN" --bench_info),"
  echo "  \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\""
  echo "}"
} > "$OUT/machine.json"

want() { [[ -z $ONLY || $ONLY == "$1" ]]; }  # group
run_group() {  # name filter [extra flags for the benchmark binary]
  local name=$1 filter=$2
  shift 2
  want "$name" || return 0
  echo "run.sh: $name"
  "$BIN" "${MODE[@]}" --benchmark_filter="$filter" --benchmark_repetitions="$REPS" \
    --benchmark_display_aggregates_only=true "$@" \
    --benchmark_out="$OUT/$name.json" --benchmark_out_format=json > "$OUT/$name.txt" 2>&1 ||
    { cat "$OUT/$name.txt" >&2; exit 1; }
}
run_group load_unload '^load_unload/'
run_group churn '^churn/'
run_group update '^update/'
run_group reserve_write_free '^reserve_write_free/'
run_group batch_load '^batch_load/'
run_group calls '^calls/'
# Threads: two more repetitions, interleaved at random, since the 1- and 2-thread runs of
# one contender are compared with each other and the host's share of CPU drifts over
# seconds: back to back, one of the two could catch a busy stretch the other missed.
REPS_SAVED=$REPS; REPS=$((REPS + 2))
run_group threads '^threads/' --benchmark_enable_random_interleaving=true
REPS=$REPS_SAVED
run_group patch '^patch/'
run_group jitruntime '^jitruntime/'
# Memory is measured once per contender (a counter, not a time): one repetition.
REPS_SAVED=$REPS; REPS=1; run_group memory '^memory/'; REPS=$REPS_SAVED
rm -f "$OUT"/*.txt
if ! want orc; then
  :
elif [[ -n $ORC_BIN ]]; then
  echo "run.sh: orc (LLJIT, 1 000 and 10 000 modules per memory manager)"
  if ((QUICK)); then ORC_MODE=(--quick); else ORC_MODE=(); fi
  "$ORC_BIN" "${ORC_MODE[@]}" --out "$OUT/orc.json" \
    --commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" >/dev/null
else
  echo "run.sh: orc skipped (LLVM 16 not found: apt install llvm-16-dev)"
fi

# Cold start: fresh processes, 30 per contender in either mode (the median of 30 is the
# figure asked for; a run takes about 1 s of CPU per 10 processes).
if want cold; then
  echo "run.sh: cold start (30 fresh processes per contender)"
  "$BUILD/bench/jitalloc_cold_bench" --runs 30 --out "$OUT/cold_start.json" \
    --commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" >/dev/null
fi

# Tail latency and scale (issue 11 item 7, section 11). Group latency: BPF sizes and
# 64..512 B at 5 000 / 50 000 live (quick: jitalloc_proc_mem, asmjit_dual and
# floor_proc_mem, 20 000 steps per run, under a minute: the per-size-band tail needs 500
# samples in a band; full: six contenders and the floor, 50 000 steps). Group latency_1m:
# the same at 1 000 000 live (BPF sizes), which takes 0.5..3 min in quick mode (filling 1 M functions of ~3.3 KiB mean, 3.3 GiB, per
# contender): a quick run of every group keeps the latency_1m.json of the last run of that
# group (`--only latency_1m`), whose commit and date the report shows; a full run remakes it.
LAT_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ((QUICK)); then
  LAT_C=jitalloc_proc_mem,asmjit_dual,floor_proc_mem; LAT_STEPS=20000
else
  LAT_C=jitalloc_proc_mem,jitalloc_memfd,jitalloc_temp_alias,jitalloc_persistent_alias,asmjit_default,asmjit_dual,floor_proc_mem
  LAT_STEPS=50000
fi
LAT=(--contenders "$LAT_C" --steps "$LAT_STEPS" --commit "$LAT_COMMIT")
if want latency; then
  echo "run.sh: latency (per-operation times at 5 000 and 50 000 live)"
  "$BUILD/bench/jitalloc_latency_bench" "${LAT[@]}" --workloads bpf --sizes 5000,50000 \
    --out "$OUT/latency_bpf.json" 2>/dev/null
  "$BUILD/bench/jitalloc_latency_bench" "${LAT[@]}" --workloads small --sizes 5000,50000 \
    --out "$OUT/latency_small.json" 2>/dev/null
fi
if [[ $ONLY == latency_1m ]] || { [[ -z $ONLY ]] && ((!QUICK)); }; then
  echo "run.sh: latency_1m (per-operation times at 1 000 000 live)"
  "$BUILD/bench/jitalloc_latency_bench" "${LAT[@]}" --workloads bpf --sizes 1000000 \
    --out "$OUT/latency_1m.json" 2>/dev/null
fi

if [[ -z $ONLY ]]; then
  # Kept with the run, so a later --only run can rewrite the report from the JSON.
  python3 - "$OUT/machine.json" "$(( $(date +%s) - START ))" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
path, runtime, load_end = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path) as f:
    m = json.load(f)
m["runtime_s"], m["loadavg_end"] = runtime, load_end
with open(path, "w") as f:
    json.dump(m, f, indent=2)
    f.write("\n")
PY
fi
python3 "$HERE/report.py" "$OUT" "$HERE/RESULTS.md"
echo "run.sh: wrote $HERE/RESULTS.md and $OUT/ in $(( $(date +%s) - START )) s"
