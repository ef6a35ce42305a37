#!/bin/bash
# kernel-port tests.
#
#   bash kernel-port/test.sh          (1) userspace harness (ASan/UBSan)
#                                     (2) KUnit under qemu (x86_64, TCG, 2 CPUs)
#   bash kernel-port/test.sh --figures  also direct-map figures from the
#                                     KUnit kernel (stock vs jitalloc) -> RESULTS.md
#   bash kernel-port/test.sh --full   also the figures, (3) qemu boot checks,
#                                     (4) boot-time direct-map measurements on a
#                                     fragmented guest -> RESULTS.md, raw logs
#                                     in kernel-port/results/, and (5) a debug
#                                     boot (KUnit at boot and the workload with
#                                     lockdep, DEBUG_VM, kmemleak, KFENCE);
#                                     JITALLOC_FULL_KERNELS (default "stock on"),
#                                     JITALLOC_FULL_HIBERNATION=1 and
#                                     JITALLOC_FULL_KUNIT_DEBUG=1: see boot/full.sh
#   bash kernel-port/test.sh --kunit-debug  only the debug KUnit run of
#                                     --full (kunitconfig + kunit/debug.config:
#                                     lockdep, DEBUG_VM, kmemleak, KFENCE,
#                                     KASAN; one more kernel build, in
#                                     $JITALLOC_KERNEL_DIR/build-kunit-debug;
#                                     kmemleak scans after the suites, see
#                                     kunit_debug in boot/full.sh); no
#                                     harness, CI KUnit or checkpatch, and
#                                     the other flags are ignored
#   bash kernel-port/test.sh --bisect compiles every prefix of the series
#                                     with CONFIG_EXECMEM_JITALLOC on and
#                                     checks the series' symbols resolve at
#                                     each (boot/full.sh; may be combined
#                                     with --full)
#
# Every run but --kunit-debug also checks the series with the tree's
# scripts/checkpatch.pl.
#
# Self-sufficient on Debian 12 as root: installs what it needs with apt,
# unpacks Debian's linux-source-6.12 outside the repository
# ($JITALLOC_KERNEL_DIR, default /var/cache/jitalloc-kernel), applies
# kernel-port/patches/*.patch and reuses tree and build directories on later
# runs (incremental builds).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KCACHE=${JITALLOC_KERNEL_DIR:-/var/cache/jitalloc-kernel}
JOBS=${JOBS:-$(nproc)}
FULL=0
FIGURES=0
BISECT=0
KUNIT_DEBUG=0
for a in "$@"; do
	case "$a" in
	--full) FULL=1; FIGURES=1 ;;
	--figures) FIGURES=1 ;;
	--bisect) BISECT=1 ;;
	--kunit-debug) KUNIT_DEBUG=1 ;;
	-h|--help) sed -n 2,39p "$0"; exit 0 ;;
	*) echo "unknown argument: $a" >&2; exit 2 ;;
	esac
done

PASSED=0
FAILED=0
FAILED_NAMES=()
T0=$(date +%s)
log() { echo "[kernel-port $(date +%T)] $*"; }
pass() { PASSED=$((PASSED + ${2:-1})); log "PASS: $1${2:+ ($2)}"; }
fail() { FAILED=$((FAILED + ${2:-1})); FAILED_NAMES+=("$1"); log "FAIL: $1"; }
finish() {
	local dt=$(( $(date +%s) - T0 ))
	[ ${#FAILED_NAMES[@]} -gt 0 ] && log "failed: ${FAILED_NAMES[*]}"
	echo "kernel-port: $PASSED passed, $FAILED failed (${dt}s)"
	[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
	exit $?
}

# ------------------------------------------------------------------ deps
PKGS=(build-essential gcc make patch bc bison flex libelf-dev libssl-dev
      python3 qemu-system-x86 cpio xz-utils linux-source-6.12)
[ $FULL = 1 ] || [ $BISECT = 1 ] && PKGS+=(busybox-static kmod)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing: ${missing[*]}"
	if [ "$(id -u)" != 0 ]; then
		echo "need root to install ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null &&
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
		{ fail "apt-get install"; finish; }
fi

# from_patch REGEX DIR PATCH...: the files of the patches whose path (a/...)
# matches REGEX, as the patches make them, under DIR (for code the series
# adds that is also built outside a patched tree)
from_patch() {
	local re=$1 dir=$2
	shift 2
	cat "$@" | awk -v re="$re" '/^diff --git /{ keep = ($3 ~ re) } keep' |
		patch -s -p1 -d "$dir"
}

# ------------------------------------------------------ (1) harness
harness() {
	local tmp rc
	tmp=$(mktemp -d)
	# the allocator core exactly as the first patch adds it to the kernel
	# (its mm/jitalloc_core.[ch] parts; the patch also touches MAINTAINERS)
	if ! from_patch '^a/mm/jitalloc_core[.]' "$tmp" "$HERE"/patches/0001-*.patch; then
		fail "harness: extracting mm/jitalloc_core.[ch] from patch 0001"
		rm -rf "$tmp"; return
	fi
	if ! gcc -std=gnu11 -g -O1 -Wall -Werror -fsanitize=address,undefined \
		-fno-sanitize-recover=all -fno-omit-frame-pointer \
		-I"$HERE"/harness/include -I"$tmp"/mm \
		"$HERE"/harness/tests.c "$tmp"/mm/jitalloc_core.c -o "$tmp"/harness; then
		fail "harness: build"
		rm -rf "$tmp"; return
	fi
	"$tmp"/harness > "$tmp"/out 2>&1
	rc=$?
	cat "$tmp"/out
	local np nf
	np=$(grep -c '^ok ' "$tmp"/out)
	nf=$(grep -c '^not ok ' "$tmp"/out)
	if [ $rc -eq 0 ] && [ "$nf" -eq 0 ] && [ "$np" -gt 0 ]; then
		pass "harness" "$np"
	else
		fail "harness (exit $rc)" "$(( nf > 0 ? nf : 1 ))"
	fi
	rm -rf "$tmp"
}

# ------------------------------------------------------ kernel tree
TARBALL=/usr/src/linux-source-6.12.tar.xz
SRC=$KCACHE/src/linux-source-6.12

patched_files() {	# paths touched by the given patches (none: nothing)
	[ $# -gt 0 ] || return 0
	sed -n 's,^+++ b/\([^[:space:]]*\).*,\1,p; s,^--- a/\([^[:space:]]*\).*,\1,p' "$@" | sort -u
}

# unpack_tree DIR: Debian's tree in DIR/linux-source-6.12, unpacked once
# (again when the tarball changes or an earlier sync was interrupted).
unpack_tree() {
	local dir=$1 want stamp=$1/.tarball
	mkdir -p "$dir"
	want="$(stat -c '%s %Y' "$TARBALL")"
	if [ ! -d "$dir/linux-source-6.12" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] ||
	   [ -e "$dir/.dirty" ]; then
		log "unpacking $TARBALL into $dir"
		rm -rf "$dir/linux-source-6.12" "$dir/applied" "$dir/orig"
		tar -C "$dir" -xf "$TARBALL" || return 1
		echo "$want" > "$stamp"
		rm -f "$dir/.dirty"
	fi
}

# sync_series DIR PATCH...: make DIR/linux-source-6.12 the pristine tree
# with exactly PATCH... applied, changing only files whose content changes
# (keeps later builds incremental).  DIR/orig keeps the pristine copy of
# every file a patch touched, DIR/applied the patches now applied.
sync_series() {
	local dir=$1 f tmp p
	shift
	local src=$dir/linux-source-6.12 applied=$dir/applied orig=$dir/orig
	if [ -d "$applied" ] &&
	   [ "$(cd "$applied" && ls)" = "$(for p in "$@"; do basename "$p"; done)" ] &&
	   ( for p in "$@"; do cmp -s "$p" "$applied/$(basename "$p")" || exit 1; done ); then
		log "patch series already applied in $src"
		return 0
	fi
	touch "$dir/.dirty"
	mkdir -p "$orig"
	tmp=$(mktemp -d)
	for f in $(patched_files "$@" $(ls "$applied"/*.patch 2>/dev/null)); do
		# first time this file is touched: it is still pristine in src
		if [ ! -e "$orig/$f" ] && [ ! -e "$orig/$f.absent" ]; then
			mkdir -p "$(dirname "$orig/$f")"
			if [ -e "$src/$f" ]; then cp -p "$src/$f" "$orig/$f"; else touch "$orig/$f.absent"; fi
		fi
		if [ -e "$orig/$f" ]; then
			mkdir -p "$(dirname "$tmp/$f")"
			cp -p "$orig/$f" "$tmp/$f"
		fi
	done
	for p in "$@"; do
		log "applying $(basename "$p")"
		patch -s -p1 -N -d "$tmp" --no-backup-if-mismatch < "$p" ||
			{ rm -rf "$tmp"; return 1; }
	done
	for f in $(patched_files "$@" $(ls "$applied"/*.patch 2>/dev/null)); do
		if [ -e "$tmp/$f" ]; then
			if ! cmp -s "$tmp/$f" "$src/$f"; then
				mkdir -p "$(dirname "$src/$f")"
				cp "$tmp/$f" "$src/$f"
			fi
		else
			rm -f "$src/$f"
		fi
	done
	rm -rf "$tmp" "$applied"
	mkdir -p "$applied"
	[ $# -gt 0 ] && cp "$@" "$applied"/
	rm -f "$dir/.dirty"
}

prepare_tree() {
	unpack_tree "$KCACHE/src" && sync_series "$KCACHE/src" "$HERE"/patches/*.patch
}

# ------------------------------------------------------ checkpatch
# The tree's own checkpatch.pl on every patch: no error or warning apart
# from the missing Signed-off-by lines (the series carries none).
checkpatch() {
	local p out bad=0
	for p in "$HERE"/patches/*.patch; do
		out=$(perl "$SRC/scripts/checkpatch.pl" --no-tree -q --ignore MISSING_SIGN_OFF \
			"$p" 2>&1 | grep -E '^(ERROR|WARNING):')
		if [ -n "$out" ]; then
			echo "$(basename "$p"):"; echo "$out"; bad=1
		fi
	done
	if [ $bad = 0 ]; then pass "checkpatch ($(ls "$HERE"/patches/*.patch | wc -l) patches)"
	else fail "checkpatch"; fi
}

# ------------------------------------------------------ (2) KUnit
kunit() {
	local out=$KCACHE/kunit.log np nf
	log "KUnit: building and running (log: $out)"
	( cd "$SRC" && python3 tools/testing/kunit/kunit.py run --arch=x86_64 \
		--build_dir="$KCACHE/build-kunit" \
		--kunitconfig="$HERE/kunit/kunitconfig" \
		--jobs="$JOBS" --qemu_args='-smp 2' --timeout=900 ) > "$out" 2>&1
	local rc=$?
	grep -E '^\[..:..:..\] +(\[(PASSED|FAILED|SKIPPED)\]|=+|Testing complete|# )' "$out" | \
		grep -v '^\[..:..:..\] =\+$' || true
	# make sure our suite really ran, and how many of its cases passed
	np=$(grep -cE '\[PASSED\] jit_test_' "$out")
	nf=$(grep -cE '\[(FAILED|CRASHED)\] ' "$out")
	if [ $rc -eq 0 ] && [ "$np" -gt 0 ] && [ "$nf" -eq 0 ] &&
	   grep -q 'execmem_jitalloc' "$out"; then
		pass "KUnit execmem_jitalloc" "$np"
	else
		tail -40 "$out"
		fail "KUnit (kunit.py exit $rc)" "$(( nf > 0 ? nf : 1 ))"
	fi
}

if [ $KUNIT_DEBUG = 1 ]; then
	if prepare_tree; then
		# shellcheck source=boot/full.sh
		. "$HERE"/boot/full.sh
		kunit_debug
	else
		fail "applying the patch series to $SRC"
	fi
	finish
fi

harness
if prepare_tree; then
	checkpatch
	kunit
	if [ $FIGURES = 1 ]; then
		# shellcheck source=kunit/figures.sh
		. "$HERE"/kunit/figures.sh
		kunit_figures && KUNIT_FIGURES_OK=1
	fi
	if [ $FULL = 1 ] || [ $BISECT = 1 ]; then
		# shellcheck source=boot/full.sh
		. "$HERE"/boot/full.sh
	fi
	[ $FULL = 1 ] && full_tests
	[ $BISECT = 1 ] && bisect_tests
	if [ "${KUNIT_FIGURES_OK:-0}" = 1 ]; then
		{
			echo "# kernel-port: direct-map fragmentation, stock execmem vs jitalloc"
			echo
			echo "Generated by \`kernel-port/test.sh $*\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
			echo "Debian linux-source-6.12 ($(make -s -C "$SRC" kernelversion 2>/dev/null)) with kernel-port/patches."
			echo
			write_results_kunit
			if [ -s "$KCACHE/boot/results-boot.md" ] && [ "${BOOT_RESULTS_OK:-0}" = 1 ]; then
				echo
				cat "$KCACHE/boot/results-boot.md"
			else
				echo
				echo "## 2. Boot-level measurement on a fragmented guest"
				echo
				echo "Not in this run (\`test.sh --full\` boots the stock kernel and the"
				echo "series on a fragmented guest with 1 GiB direct-map pages, loads 5000 BPF"
				echo "programs, 100 modules, kprobes and ftrace trampolines from userspace and"
				echo "measures /proc/meminfo, /proc/vmstat and the cache's statistics)."
			fi
		} > "$HERE/RESULTS.md"
		log "wrote $HERE/RESULTS.md"
	fi
else
	fail "applying the patch series to $SRC"
fi
finish
