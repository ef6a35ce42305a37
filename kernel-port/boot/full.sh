# shellcheck shell=bash
# Parts (3) and (4) of kernel-port/test.sh --full; sourced by test.sh, uses
# its variables (HERE, KCACHE, SRC, JOBS, TARBALL) and helpers (log, pass,
# fail).
#
# Kernels from the same config (boot/config, olddefconfig), selected by
# JITALLOC_FULL_KERNELS (default "stock on"; add "off" for the option-off
# kernel):
#   stock  Debian's 6.12 tree, unpatched           ($KCACHE/build-stock)
#   off    the patched tree, CONFIG_EXECMEM_JITALLOC off  ($KCACHE/build-off)
#   on     the patched tree, option on             ($KCACHE/build-boot)
# Each is built in full (bzImage and modules) and booted in qemu (TCG,
# 2 CPUs, 3 GiB) with a busybox initramfs holding modules built for it:
# (3) module load/unload (data, rodata and ro_after_init read back; with the
#     cache, from its data pool), lib/test_bpf with the JIT, a kprobe via
#     tracefs, /proc/kcore against the BPF JIT image, ptdump, no kernel
#     warnings; for the option-on kernel with JITALLOC_FULL_HIBERNATION=1
#     (boot/config-hibernation added to every kernel's config: block layer,
#     PCI, virtio, swap) also a hibernation to a virtio swap disk and resume
#     with BPF programs, a module and a kprobe live across it;
# (4) in the same boots, on a guest made to look long-running (free memory
#     fragmented by boot/mods/frag.c, 1 GiB direct-map pages): DirectMap4k/
#     2M/1G, direct_map_level{2,3}_splits, load failures and cached chunks
#     after 5000 BPF programs, 100 modules, kprobes and ftrace trampolines;
#     the option-on kernel boots three times: with execmem_jitalloc=0, with
#     the cache, and with the cache while fail_page_alloc fails every
#     allocation of order >= 9.  Writes the boot section of RESULTS.md and
#     copies the boot logs to kernel-port/results/.
# (5) the debug boot: boot/config has PROVE_LOCKING, DEBUG_VM, DEBUG_LIST,
#     kmemleak and KFENCE (the figure boots switch KFENCE's sampling off), so
#     one more boot of the option-on kernel with KFENCE sampling runs the
#     KUnit suite at boot and the whole workload, and passes when the log has
#     no lockdep report (lockdep still on at the end), warning, BUG, KFENCE
#     or kmemleak report.  JITALLOC_FULL_KUNIT_DEBUG=1 also runs the debug
#     KUnit kernel (kunit/kunitconfig + kunit/debug.config, one more kernel
#     build: kunit_debug below; test.sh --kunit-debug runs only that).
#
# bisect_tests (--bisect): every prefix of the series compiled in
# $KCACHE/src-bisect with boot/config (the option on wherever it exists),
# see below.

BOOT_OUT=$KCACHE/boot
NR_MODS=100
STOCK_SRC=$KCACHE/src-stock/linux-source-6.12

# build-dir name -> source tree
kernel_src() { [ "$1" = build-stock ] && echo "$STOCK_SRC" || echo "$SRC"; }

# The unpatched tree, unpacked once (again when the tarball changes).
prepare_stock_tree() {
	local want stamp=$KCACHE/src-stock/.tarball
	want="$(stat -c '%s %Y' "$TARBALL")"
	if [ -d "$STOCK_SRC" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	log "unpacking an unpatched $TARBALL into $KCACHE/src-stock"
	rm -rf "$KCACHE/src-stock"
	mkdir -p "$KCACHE/src-stock"
	tar -C "$KCACHE/src-stock" -xf "$TARBALL" && echo "$want" > "$stamp"
}

# $1 = build dir name, $2 = on|off (CONFIG_EXECMEM_JITALLOC)
HIBERNATION=${JITALLOC_FULL_HIBERNATION:-0}
kernel_config() {
	local f=("$HERE/boot/config")
	[ "$HIBERNATION" = 1 ] && f+=("$HERE/boot/config-hibernation")
	if [ "$2" = on ]; then
		cat "${f[@]}"
	else
		cat "${f[@]}" | grep -v EXECMEM_JITALLOC
		[ "$1" = build-stock ] || echo '# CONFIG_EXECMEM_JITALLOC is not set'
	fi
}

build_kernel() {	# $1 = build dir name, $2 = on|off
	local b=$KCACHE/$1 src line bad=0
	src=$(kernel_src "$1")
	mkdir -p "$b" "$BOOT_OUT"
	kernel_config "$1" "$2" > "$b/.fragment.new"
	if ! cmp -s "$b/.fragment.new" "$b/.fragment" || [ ! -e "$b/.config" ]; then
		cp "$b/.fragment.new" "$b/.config"
		make -s -C "$src" O="$b" ARCH=x86_64 olddefconfig || return 1
		cp "$b/.fragment.new" "$b/.fragment"
	fi
	while read -r line; do
		case "$line" in CONFIG_*) grep -qx "$line" "$b/.config" ||
			{ log "$1 config: $line not set"; bad=1; } ;; esac
	done < "$b/.fragment"
	if [ "$2" = off ] && grep -q '^CONFIG_EXECMEM_JITALLOC=y' "$b/.config"; then
		log "$1 config: CONFIG_EXECMEM_JITALLOC is on"; bad=1
	fi
	[ $bad = 0 ] || return 1
	log "building kernel $1 (log: $BOOT_OUT/$1.log)"
	make -C "$src" O="$b" ARCH=x86_64 -j"$JOBS" bzImage modules \
		> "$BOOT_OUT/$1.log" 2>&1 || { tail -30 "$BOOT_OUT/$1.log"; return 1; }
}

build_initramfs() {	# $1 = build dir name; writes $BOOT_OUT/$1.cpio.gz
	local b=$KCACHE/$1 d=$BOOT_OUT/initramfs-$1 mods=$BOOT_OUT/mods-$1 i src
	src=$(kernel_src "$1")
	rm -rf "$d" "$mods.new"
	mkdir -p "$d/bin" "$d/lib/modules" "$d/proc" "$d/sys" "$d/dev" "$mods" "$mods.new"
	# NR_MODS copies of one small module, under different names; frag.ko
	# with the series' fragmenting code (in every kernel, stock too).
	# Written to $mods.new first, and only changed files are replaced in
	# $mods, so a later run rebuilds only what changed.
	cp "$HERE/boot/mods/frag.c" "$mods.new/frag.c"
	from_patch '^a/mm/execmem_jitalloc_frag[.]h$' "$mods.new" "$HERE"/patches/*.patch ||
		return 1
	echo "obj-m += frag.o" > "$mods.new/Kbuild"
	for i in $(seq -w 1 $NR_MODS); do
		sed "s/jm_/jm${i}_/g" "$HERE/boot/mods/jm.c" > "$mods.new/jm$i.c"
		echo "obj-m += jm$i.o" >> "$mods.new/Kbuild"
	done
	( cd "$mods.new" && find . -type f ) | while read -r i; do
		cmp -s "$mods.new/$i" "$mods/$i" && continue
		mkdir -p "$(dirname "$mods/$i")"
		cp "$mods.new/$i" "$mods/$i"
	done
	rm -rf "$mods.new"
	make -s -C "$src" O="$b" ARCH=x86_64 M="$mods" -j"$JOBS" modules \
		> "$mods/build.log" 2>&1 || { tail -20 "$mods/build.log"; return 1; }
	cp "$mods"/jm*.ko "$mods/frag.ko" "$d/lib/modules/"
	cp "$b/lib/test_bpf.ko" "$d/lib/modules/" || return 1
	cp /bin/busybox "$d/bin/busybox" || return 1
	gcc -static -O2 -Wall -o "$d/bin/jittool" "$HERE/boot/jittool.c" || return 1
	install -m 0755 "$HERE/boot/init" "$d/init"
	( cd "$d" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$BOOT_OUT/$1.cpio.gz"
}

# $1 = build dir name, $2 = log name, $3 = extra kernel arguments,
# further arguments go to qemu.  3 GiB and a CPU with 1 GiB pages: the
# direct map has two 1 GiB pages ([1G, 3G)), as real servers have.
run_qemu() {
	local b=$1 log=$BOOT_OUT/boot-$2.log args=$3
	shift 3
	log "booting $b ($args) (log: $log)"
	timeout 2400 qemu-system-x86_64 -m 3072 -smp 2 -cpu qemu64,+pdpe1gb \
		-nographic -no-reboot \
		-kernel "$KCACHE/$b/arch/x86/boot/bzImage" \
		-initrd "$BOOT_OUT/$b.cpio.gz" \
		-append "console=ttyS0 panic=-1 kunit.filter_glob=execmem_jitalloc $args" \
		"$@" < /dev/null > "$log" 2>&1
	tr -d '\r' < "$log" > "$log.txt"
}

check_boot_log() {	# $1 = log name; CHECK lines -> pass/fail
	local t=$BOOT_OUT/boot-$1.log.txt name
	if ! grep -q '^BOOTTEST DONE' "$t"; then
		tail -40 "$t"
		fail "boot $1 did not finish"
		return 1
	fi
	while read -r _ res name; do
		if [ "$res" = PASS ]; then pass "boot $1: $name"; else fail "boot $1: $name"; fi
	done < <(grep '^CHECK ' "$t")
	if grep -q '^DMESG ' "$t"; then
		grep '^DMESG ' "$t"
		fail "boot $1: kernel warnings"
	else
		pass "boot $1: no kernel warnings"
	fi
}

# Hibernate the option-on kernel to a virtio swap disk, then boot it again
# to restore the image (boot/init explains the two steps).
hibernation_test() {
	local disk=$BOOT_OUT/swap.img
	rm -f "$disk"
	truncate -s 1G "$disk"
	local drive=(-drive "file=$disk,format=raw,if=virtio")
	run_qemu build-boot hibernate "jtest_cache=1 jtest=hibernate" "${drive[@]}"
	local t=$BOOT_OUT/boot-hibernate.log.txt
	grep '^CHECK ' "$t" | while read -r _ res name; do
		if [ "$res" = PASS ]; then log "  before hibernation: $name"; else log "  before hibernation FAILED: $name"; fi
	done
	if ! grep -q '^HIBERNATING' "$t" || grep -q '^CHECK FAIL' "$t" ||
	   grep -q '^RESUMED' "$t"; then
		tail -40 "$t"
		fail "hibernation: the image was not written"
		return
	fi
	pass "hibernation: image written ($(grep -c '^CHECK PASS' "$t") checks before)"
	run_qemu build-boot resume "jtest_cache=1 jtest=resume" "${drive[@]}"
	if ! grep -q '^RESUMED' "$BOOT_OUT/boot-resume.log.txt"; then
		tail -40 "$BOOT_OUT/boot-resume.log.txt"
		fail "hibernation: the image was not restored"
		return
	fi
	pass "hibernation: image restored"
	check_boot_log resume
	rm -f "$disk"
}

lval() {	# boot MEASURE|STATS phase key: a value init printed
	awk -v t="$2" -v p="$3" -v k="$4" '$1 == t && $2 == p && $3 == k { print $4 }' \
		"$BOOT_OUT/boot-$1.log.txt"
}
mval() { lval "$1" MEASURE "$2" "$3"; }	# boot phase key

FULL_KERNELS=${JITALLOC_FULL_KERNELS:-stock on}
has_kernel() { case " $FULL_KERNELS " in *" $1 "*) return 0 ;; esac; return 1; }
# the figure boots, in RESULTS.md column order
BOOTS=""
has_kernel stock && BOOTS+="stock "
has_kernel off && BOOTS+="off "
has_kernel on && BOOTS+="jit0 jit1 jitfail"
declare -A BOOT_LABEL=([stock]=stock [off]=off [jit0]="on, =0" [jit1]=jitalloc [jitfail]="no 2M page")
PHASES="boot before_load fragmented after_bpf after_modules after_probes after_unload"
delta() { delta_of "$2" "$3" "$4" "$1"; }	# boot key from to
# boot phase pool: cached 2 MiB chunks of the cache's code or data pool at a
# phase (the order-9 line of that pool's table in the stats)
chunks() {
	awk -v p="$2" -v pool="$3" '$1 == "STATS" && $2 == p {
		if ($3 == "pool") cur = $4; else if (cur == pool && $3 == "9") v = $5
	} END { print v }' "$BOOT_OUT/boot-$1.log.txt"
}
stat_val() { lval "$1" STATS "$2" "$3"; }	# boot phase key
table_head() {	# first column's name
	local m
	echo -n "| $1 | metric "
	for m in $BOOTS; do echo -n "| ${BOOT_LABEL[$m]} "; done
	echo "|"
	echo -n "|---|---"
	for m in $BOOTS; do echo -n "|---:"; done
	echo "|"
}
row() {	# label, then a command printing the value for a boot
	local label=$1 m
	shift
	echo -n "| $label "
	for m in $BOOTS; do echo -n "| $("$@" "$m") "; done
	echo "|"
}
sum_failures() {	# boot: load failures over all phases (BPF, modules, probes)
	local m=$1 ph out="" v
	[ -e "$BOOT_OUT/boot-$m.log.txt" ] || { echo –; return; }
	# per phase, "–" where the log has no value (a boot that did not get
	# there, or a log from before the probes line reached it)
	for ph in after_bpf after_modules after_probes; do
		v=$(mval "$m" "$ph" load_failures)
		out+="${out:+, }${v:-–}"
	done
	echo "$out"
}

write_results() {	# boot section of RESULTS.md, see test.sh
	local r=$BOOT_OUT/results-boot.md phase k
	{
		echo "## 2. Boot-level measurement on a fragmented guest (test.sh --full)"
		echo
		echo "Kernel config kernel-port/boot/config (olddefconfig), qemu-system-x86_64"
		echo "(TCG, \`-cpu qemu64,+pdpe1gb\`: the direct map has one 1 GiB page, [1G, 2G)),"
		echo "2 CPUs, 3 GiB RAM, busybox initramfs.  After the functional checks the guest"
		echo "is made to look like a long-running host: boot/mods/frag.c takes order-0"
		echo "pages until 384 MiB are left free and frees every other one in random"
		echo "order (free memory: single pages scattered over the whole direct map,"
		echo "their buddies held, plus 384 MiB untouched).  Then 5000 JITed BPF socket"
		echo "filters (8..407 instructions, kept loaded), $NR_MODS small modules, 10 kprobes"
		echo "and 10 ftrace trampolines (one function-tracer instance per function)."
		echo "The boot kernels have lockdep, DEBUG_VM, kmemleak and KFENCE on (the debug"
		echo "boot, part 5, uses them); the figure boots pass \`kfence.sample_interval=0\`,"
		echo "so no KFENCE pool (mapped with 4 KiB pages) is set up.  None of these"
		echo "options changes how the direct map is mapped.  Columns:"
		echo
		has_kernel stock && {
		echo "* **stock**: Debian's linux-source-6.12, unpatched, same config."
		echo "  Upstream (6.17) still serves BPF from vmalloc + set_memory_rox() as"
		echo "  6.12 does (its ROX cache covers modules, ftrace and kprobes only), so the"
		echo "  stock BPF rows stand for upstream too;"
		}
		has_kernel off && echo "* **off**: the series applied, CONFIG_EXECMEM_JITALLOC off;"
		echo "* **on, =0**: the option on, booted with \`execmem_jitalloc=0\`: every caller"
		echo "  takes its unpatched path (vmalloc + set_memory_rox()/set_memory_ro()), so"
		echo "  this column is the stock path in the series' kernel$(has_kernel stock || echo "; the unpatched kernel was not built in this run (JITALLOC_FULL_KERNELS=$FULL_KERNELS), so this column stands for stock 6.12 and, for BPF, for upstream 6.17 too, which serves BPF the same way")$(has_kernel stock && echo ";")"
		echo "* **jitalloc**: the option on (the cache serves BPF, kprobes, ftrace, module"
		echo "  text and module data);"
		echo "* **no 2M page**: the same, with fail_page_alloc failing every allocation of"
		echo "  order >= 9 made by the loading processes: every chunk is built from"
		echo "  lower-order blocks (composite) or the stock path serves."
		echo
		local ref=jit0 rl="on, =0"
		has_kernel stock && { ref=stock; rl=stock; }
		if has_kernel on; then
		echo "**Summary**: 2 MiB direct-map pages split by the 5000 BPF programs: $rl"
		echo "$(delta $ref direct_map_level2_splits fragmented after_bpf), jitalloc $(delta jit1 direct_map_level2_splits fragmented after_bpf); 1 GiB pages split: $rl"
		echo "$(delta $ref direct_map_level3_splits fragmented after_bpf), jitalloc $(delta jit1 direct_map_level3_splits fragmented after_bpf).  Over the whole workload (BPF, modules,"
		echo "probes): 2 MiB splits $rl $(delta $ref direct_map_level2_splits fragmented after_probes), jitalloc $(delta jit1 direct_map_level2_splits fragmented after_probes), no-2M-page $(delta jitfail direct_map_level2_splits fragmented after_probes); 1 GiB splits $rl $(delta $ref direct_map_level3_splits fragmented after_probes), jitalloc $(delta jit1 direct_map_level3_splits fragmented after_probes), no-2M-page $(delta jitfail direct_map_level3_splits fragmented after_probes); load"
		echo "failures (BPF, modules, probes) $rl $(sum_failures $ref), jitalloc $(sum_failures jit1), no-2M-page $(sum_failures jitfail)."
		echo
		fi
		table_head phase
		for phase in $PHASES; do
			for k in DirectMap4k DirectMap2M DirectMap1G direct_map_level2_splits direct_map_level3_splits; do
				row "$phase | $k" mval_of "$phase" "$k"
			done
			case $phase in after_bpf|after_modules|after_probes)
				row "$phase | load failures" mval_of "$phase" load_failures ;;
			esac
			row "$phase | cached code chunks x 2 MiB" chunks_of "$phase" code
			row "$phase | cached data chunks x 2 MiB" chunks_of "$phase" data
		done
		echo
		echo "DirectMap values are kB (/proc/meminfo); splits are cumulative counts"
		echo "from /proc/vmstat since boot; cached chunks from the debugfs stats (–: the"
		echo "cache is off)."
		echo
		echo "Change per phase:"
		echo
		table_head load
		for k in direct_map_level2_splits direct_map_level3_splits DirectMap4k; do
			row "fragmenting | $k" delta_of "$k" before_load fragmented
			row "5000 BPF | $k" delta_of "$k" fragmented after_bpf
			row "$NR_MODS modules | $k" delta_of "$k" after_bpf after_modules
			row "kprobes, ftrace | $k" delta_of "$k" after_modules after_probes
		done
		echo
		echo "On the stock path each module's text is made ROX and its rodata and"
		echo "ro_after_init read-only with set_memory_*(), which splits the direct-map"
		echo "alias of every page; with the cache, text comes from the code pool and"
		echo "data, rodata and ro_after_init from the data pool (the"
		echo "module_data_from_cache check), chunks that are not in the direct map."
		echo
		echo "jitalloc cache statistics after the workload (jitalloc; no 2M page):"
		echo
		echo '```'
		for m in jit1 jitfail; do
			awk '$1 == "STATS" && $2 == "after_probes" && $3 == "pool" { pool = $4 }
			     $1 == "STATS" && $2 == "after_probes" && $3 ~ /^(allocated_pages|composite_chunks|stock_fallbacks|trap_filled_bytes|collapsed_mappings|direct_map_)/ { print pool, $3, $4 }' \
				"$BOOT_OUT/boot-$m.log.txt" | sed "s/^/$m: /"
		done
		echo '```'
		if grep -q '^RESUMED' "$BOOT_OUT/boot-resume.log.txt" 2>/dev/null; then
			echo
			echo "### Hibernation (option-on kernel, cache on)"
			echo
			echo "300 BPF programs, a module and a kprobe live; hibernated to a virtio swap"
			echo "disk, restored by a second boot.  The restored kernel ran every program"
			echo "again (same result, same JIT image, same bytes through /proc/kcore).  The"
			echo "chunks are mapped read-only in the direct map by a PM notifier under the"
			echo "pool lock for the snapshot and taken out again after it."
			echo
			echo "| metric | before hibernation | after resume |"
			echo "|---|---:|---:|"
			for k in DirectMap4k DirectMap2M direct_map_level2_splits; do
				echo "| $k | $(mval hibernate before_hibernate $k) | $(mval resume after_resume $k) |"
			done
			for k in direct_map_present_pages direct_map_split_chunks; do
				echo "| cache $k | $(lval hibernate STATS before_hibernate $k) | $(lval resume STATS after_resume $k) |"
			done
		fi
	} > "$r"
	BOOT_RESULTS_OK=1
}
mval_of() { local v; v=$(mval "$3" "$1" "$2"); echo "${v:-–}"; }	# phase key boot
chunks_of() { local v; v=$(chunks "$3" "$1" "$2"); echo "${v:-–}"; }	# phase pool boot
delta_of() {	# key from to boot
	local a b
	a=$(mval "$4" "$2" "$1"); b=$(mval "$4" "$3" "$1")
	if [ -n "$a" ] && [ -n "$b" ]; then echo $((b - a)); else echo –; fi
}

# kunit_debug_boot KERNEL LOG DIR: boots KERNEL as kunit.py would (qemu
# TCG, 1 GiB, serial console), without kunit_shutdown, with an initramfs
# (in DIR) holding kunit/debug-init.c as /init; the console goes to LOG.
# Returns qemu's status (0: /init rebooted), 3 if the initramfs failed.
kunit_debug_boot() {
	local kernel=$1 klog=$2 ird=$3 t0 rc
	rm -rf "$ird"; mkdir -p "$ird/root"
	if ! gcc -static -O2 -Wall -Wextra -Werror "$HERE/kunit/debug-init.c" -o "$ird/root/init" ||
	   ! ( cd "$ird/root" && echo init | cpio -o -H newc --quiet > "$ird/initrd.cpio" ); then
		return 3
	fi
	t0=$(date +%s)
	timeout 3000 qemu-system-x86_64 -nodefaults -m 1024 -smp 2 -bios qboot.rom \
		-kernel "$kernel" -initrd "$ird/initrd.cpio" \
		-append 'console=ttyS0 kunit.enable=1 panic=-1' \
		-no-reboot -nographic -serial stdio < /dev/null > "$klog" 2>&1
	rc=$?
	log "debug KUnit boot: $(( $(date +%s) - t0 ))s (qemu exit $rc)"
	return $rc
}

# (5) KUnit in a debug kernel (also test.sh --kunit-debug): kunitconfig +
# kunit/debug.config (lockdep, DEBUG_VM, DEBUG_LIST, kmemleak, KFENCE,
# generic KASAN) built by kunit.py, and booted here as kunit.py boots it but
# without kunit_shutdown, with kunit/debug-init.c as /init: once the
# built-in suites are done it has kmemleak scan (which needs a few seconds
# and two scans to report anything, more than a kunit.py run gives it) and
# prints the suspects and lockdep's debug_locks.  kunit.py parses the log.
# Passes when every case passes, kmemleak lists no suspect, lockdep is still
# on, and the log has no lockdep, KASAN, KFENCE, DEBUG_VM/DEBUG_LIST or
# kmemleak report, warning, BUG or oops.
KUNIT_DEBUG_BAD='WARNING:|BUG:|BUG at|Oops|general protection|Kernel panic|possible circular locking|possible recursive locking|inconsistent lock state|lock held when returning|suspicious RCU usage|KASAN|KFENCE:|kmemleak: .*(unknown|Trying|suspected)|list_(add|del) corruption|page dumped because'
kunit_debug() {
	local out=$KCACHE/kunit-debug.log b=$KCACHE/build-kunit-debug ird=$KCACHE/kunit-debug-initrd
	local klog=$KCACHE/build-kunit-debug/test.log rc
	log "KUnit in a debug kernel (lockdep, DEBUG_VM, kmemleak, KFENCE, KASAN) (log: $out)"
	if ! ( cd "$SRC" && python3 tools/testing/kunit/kunit.py build --arch=x86_64 \
		--build_dir="$b" \
		--kunitconfig="$HERE/kunit/kunitconfig" --kunitconfig="$HERE/kunit/debug.config" \
		--jobs="$JOBS" ) > "$out" 2>&1; then
		tail -20 "$out"; fail "KUnit debug kernel: build"; return
	fi
	kunit_debug_boot "$b/arch/x86/boot/bzImage" "$klog" "$ird"
	rc=$?
	[ $rc = 3 ] && { fail "KUnit debug kernel: initramfs"; return; }
	kunit_debug_check "$klog" "$out" $rc
}
# kunit_debug_check LOG OUT RC: the verdict on a debug KUnit boot's console
# LOG (kunit.py's parse of it appended to OUT; RC: qemu's status)
kunit_debug_check() {
	local klog=$1 out=$2 rc=$3 np nf bad suspects locks
	( cd "$SRC" && python3 tools/testing/kunit/kunit.py parse "$klog" ) >> "$out" 2>&1
	grep -E '^\[..:..:..\] +(\[(PASSED|FAILED|SKIPPED|CRASHED)\]|Testing complete|# )' "$out" || true
	np=$(grep -cE '\[PASSED\] jit_test_' "$out")
	nf=$(grep -cE '\[(FAILED|CRASHED)\] ' "$out")
	bad=$(grep -E "$KUNIT_DEBUG_BAD" "$klog")
	suspects=$(sed -n 's/.*DEBUGINIT kmemleak suspects \(-\?[0-9]*\).*/\1/p' "$klog")
	locks=$(sed -n 's/.*DEBUGINIT debug_locks \(-\?[0-9]*\).*/\1/p' "$klog")
	grep 'DEBUGINIT' "$klog" | head -40
	if [ "$rc" -eq 0 ] && [ "$np" -gt 0 ] && [ "$nf" -eq 0 ] && [ -z "$bad" ] &&
	   [ "$suspects" = 0 ] && [ "$locks" = 1 ] && grep -q 'DEBUGINIT done' "$klog"; then
		pass "KUnit debug kernel: $np cases, no lockdep, KASAN, KFENCE, kmemleak or warning report" "$np"
	else
		echo "$bad" | head -40; tail -20 "$out"
		fail "KUnit debug kernel (qemu exit $rc, $np passed, $nf failed, $(printf '%s' "$bad" | grep -c .) report lines, kmemleak suspects '${suspects}', debug_locks '${locks}')" "$(( nf > 0 ? nf : 1 ))"
	fi
}

# --bisect: every prefix 0..n of the series (0: the pristine tree) in
# $KCACHE/src-bisect (only changed files touched), configured with
# boot/config (the option must be on wherever it exists), compiles every C
# file the series touches and every x86/generic file that includes
# <linux/execmem.h>, with no warning or error in them; and each symbol the
# series defines (global in one of those objects at some prefix, not at
# prefix 0) that an object of a prefix references is defined at that prefix
# -- the link step, for the series' own symbols.  Not a full vmlinux per
# prefix: that is twelve kernel builds, the objects are a few dozen.
bisect_objects() {	# the objects to compile in tree $1 (files that exist there)
	local src=$1 f
	{
		patched_files "$HERE"/patches/*.patch | grep '\.c$'
		( cd "$src" && grep -rl --include='*.c' '#include <linux/execmem.h>' mm arch/x86 kernel )
	} | sort -u | while read -r f; do
		[ -e "$src/$f" ] && echo "${f%.c}.o"
	done
}
bisect_symbols() {	# $1 = build dir, objects...: "D sym" / "U sym" lines
	local b=$1 o
	shift
	for o in "$@"; do
		[ -e "$b/$o" ] && nm "$b/$o"
	done | awk '$1 == "U" { print "U", $2 } NF == 3 && $2 ~ /^[TDBRGSVW]$/ { print "D", $3 }' | sort -u
}
bisect_tests() {
	local dir=$KCACHE/src-bisect b=$KCACHE/build-bisect k n patches objs name log
	patches=("$HERE"/patches/*.patch)
	n=${#patches[@]}
	unpack_tree "$dir" || { fail "--bisect: unpacking"; return; }
	mkdir -p "$b" "$BOOT_OUT"
	rm -f "$BOOT_OUT"/bisect-*.syms
	for k in $(seq 0 "$n"); do
		if [ "$k" = 0 ]; then name=pristine
		else name=$(basename "${patches[$((k - 1))]}" .patch | cut -c1-4); fi
		log=$BOOT_OUT/bisect-$k.log
		sync_series "$dir" "${patches[@]:0:$k}" || { fail "bisect $name: applying"; continue; }
		cp "$HERE/boot/config" "$b/.config"
		make -s -C "$dir/linux-source-6.12" O="$b" ARCH=x86_64 olddefconfig ||
			{ fail "bisect $name: config"; continue; }
		if grep -q '^config EXECMEM_JITALLOC$' "$dir/linux-source-6.12/mm/Kconfig" &&
		   ! grep -q '^CONFIG_EXECMEM_JITALLOC=y' "$b/.config"; then
			fail "bisect $name: CONFIG_EXECMEM_JITALLOC cannot be enabled"; continue
		fi
		mapfile -t objs < <(bisect_objects "$dir/linux-source-6.12")
		log "bisect $name: compiling ${#objs[@]} objects (log: $log)"
		# make recompiles what this prefix changed (warnings of the rest
		# were seen at the prefix that last changed them); objects of the
		# series' own files start afresh, so none is left from a longer
		# prefix of an earlier run
		[ "$k" = 0 ] && ( cd "$b" && patched_files "${patches[@]}" | sed -n 's/\.c$/.o/p' | xargs rm -f )
		if ! make -C "$dir/linux-source-6.12" O="$b" ARCH=x86_64 -j"$JOBS" "${objs[@]}" > "$log" 2>&1 ||
		   grep -E '(warning|error):' "$log"; then
			tail -20 "$log"
			fail "bisect $name compiles"; continue
		fi
		bisect_symbols "$b" "${objs[@]}" > "$BOOT_OUT/bisect-$k.syms"
		pass "bisect $name: ${#objs[@]} objects compile$(grep -q '^CONFIG_EXECMEM_JITALLOC=y' "$b/.config" && echo ' (option on)')"
	done
	# the series' symbols: defined at some prefix, not in the pristine tree
	cat "$BOOT_OUT"/bisect-[1-9]*.syms | awk '$1 == "D" { print $2 }' | sort -u |
		comm -23 - <(awk '$1 == "D" { print $2 }' "$BOOT_OUT/bisect-0.syms" | sort -u) \
		> "$BOOT_OUT/bisect-series.syms"
	for k in $(seq 1 "$n"); do
		local s=$BOOT_OUT/bisect-$k.syms missing
		[ -s "$s" ] || continue
		missing=$(awk '$1 == "U" { print $2 }' "$s" | sort -u |
			comm -12 - "$BOOT_OUT/bisect-series.syms" |
			comm -23 - <(awk '$1 == "D" { print $2 }' "$s" | sort -u))
		if [ -n "$missing" ]; then
			fail "bisect $k: undefined: $(echo $missing)"
		else
			pass "bisect $k: every symbol of the series it uses is defined"
		fi
	done
}

# (5) the debug boot: the option-on kernel with KFENCE sampling on; the
# kernel log must have no report of lockdep, KFENCE, kmemleak, DEBUG_VM or
# DEBUG_LIST, and lockdep must still be on at the end (it turns itself off
# after its first report)
debug_boot() {
	local t=$BOOT_OUT/boot-debug.log.txt bad
	run_qemu build-boot debug "jtest_cache=1 jtest_debug=1"
	check_boot_log debug
	bad=$(grep -E 'WARNING:|BUG:|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|KFENCE: |kmemleak: [0-9]+ new suspected|list_(add|del) corruption|page dumped because' "$t")
	if grep -q '^CHECK PASS lockdep_still_on' "$t" && grep -q '^CHECK PASS kunit_at_boot' "$t" &&
	   grep -q '^CHECK PASS kmemleak_no_suspects' "$t" && [ -z "$bad" ]; then
		pass "debug boot: KUnit at boot and workload, no lockdep, KFENCE, kmemleak, DEBUG_VM or warning report"
	else
		echo "$bad" | head -20
		fail "debug boot: a report in the kernel log"
	fi
}

# the boot logs of this run, for kernel-port/results/
save_logs() {
	local dst=$HERE/results k
	mkdir -p "$dst"
	for k in "$@"; do
		[ -e "$BOOT_OUT/boot-$k.log.txt" ] && cp "$BOOT_OUT/boot-$k.log.txt" "$dst/boot-$k.log"
	done
}

full_tests() {
	local k ok=1 kernels=()
	[ "${JITALLOC_FULL_KUNIT_DEBUG:-0}" = 1 ] && kunit_debug
	has_kernel stock && kernels+=("build-stock off")
	has_kernel off && kernels+=("build-off off")
	has_kernel on && kernels+=("build-boot on")
	if has_kernel stock && ! prepare_stock_tree; then
		fail "--full: unpacking the stock tree"; return
	fi
	for k in "${kernels[@]}"; do
		set -- $k
		if build_kernel "$1" "$2"; then
			pass "kernel $1 (option $2) builds"
		else
			fail "kernel $1 (option $2) builds"; ok=0; continue
		fi
		build_initramfs "$1" || { fail "--full: initramfs for $1"; ok=0; }
	done
	[ $ok = 1 ] || return
	# no KFENCE pool in the figure boots (it is mapped with 4 KiB pages), and
	# no boot-time KUnit run (the debug boot has it): its stock-path cases
	# would split the direct map before the first measurement in one column;
	# nokaslr: the kernel image stays at 16 MiB, so the 1 GiB direct-map
	# page [1G, 2G) is whole at boot in every column (with physical KASLR
	# the image could land there and split it as its permissions are set)
	local fig="jtest_frag=1 kfence.sample_interval=0 kunit.enable=0 nokaslr"
	has_kernel stock && run_qemu build-stock stock "jtest_cache=0 $fig"
	has_kernel off && run_qemu build-off off "jtest_cache=0 $fig"
	if has_kernel on; then
		run_qemu build-boot jit0 "jtest_cache=0 $fig execmem_jitalloc=0"
		run_qemu build-boot jit1 "jtest_cache=1 $fig"
		run_qemu build-boot jitfail "jtest_cache=1 $fig jtest_failhuge=1"
	fi
	for k in $BOOTS; do check_boot_log $k || ok=0; done
	save_logs $BOOTS
	if has_kernel on; then
		debug_boot
		save_logs debug
		if [ "$HIBERNATION" = 1 ]; then
			hibernation_test
			save_logs hibernate resume
		fi
	fi
	[ $ok = 1 ] && write_results
}
