#!/usr/bin/env bash
# Installs the Debian packages jitalloc needs to build, test and benchmark.
# Packages already installed are skipped, so this is cheap to re-run.
set -euo pipefail

PACKAGES=(
  build-essential cmake g++ pkg-config   # toolchain
  libgtest-dev libgmock-dev              # tests (GoogleTest)
  libbenchmark-dev                       # bench/ (Google Benchmark)
  libasmjit-dev                          # asmjit runtime, examples, bench peer
  libcapstone-dev                        # jitalloc-dump disassembly
  gdb                                    # GDB JIT-interface test
  linux-perf                             # perf jitdump test (perf record / inject / annotate)
  clang libclang-rt-14-dev               # libFuzzer harness
  llvm-16-dev clang-16 libzstd-dev       # jitalloc-orc, jitalloc-lli, the orc tests
  g++-aarch64-linux-gnu qemu-system-arm cpio  # tests/arm64/run.sh (arm64 packages: there)
)
[ $# -gt 0 ] && PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
