# shellcheck shell=bash
# Parts (3) and (4) of kernel-port/test.sh --full; sourced by test.sh, uses
# its variables (HERE, KCACHE, SRC, JOBS) and helpers (log, pass, fail).
#
# (3) boots the patched kernel in qemu (TCG, 2 CPUs, 2 GiB) with a busybox
#     initramfs: module load/unload, lib/test_bpf with the JIT, a kprobe via
#     tracefs, /proc/kcore against the BPF JIT image, ptdump, debugfs stats.
# (4) in the same boots: DirectMap4k/2M/1G and direct_map_level{2,3}_splits
#     after boot, after loading 2000 BPF programs, after 40 modules, after
#     unloading; once with execmem_jitalloc=0 (the stock execmem code path,
#     see RESULTS.md) and once with the cache on.  Writes RESULTS.md.

BOOT_B=$KCACHE/build-boot
BOOT_OUT=$KCACHE/boot
NR_MODS=40

build_boot_kernel() {
	mkdir -p "$BOOT_B"
	if ! cmp -s "$HERE/boot/config" "$BOOT_B/.fragment" || [ ! -e "$BOOT_B/.config" ]; then
		cp "$HERE/boot/config" "$BOOT_B/.config"
		make -s -C "$SRC" O="$BOOT_B" ARCH=x86_64 olddefconfig || return 1
		cp "$HERE/boot/config" "$BOOT_B/.fragment"
	fi
	local line bad=0
	while read -r line; do
		case "$line" in CONFIG_*) grep -qx "$line" "$BOOT_B/.config" ||
			{ log "boot config: $line not set"; bad=1; } ;; esac
	done < "$HERE/boot/config"
	[ $bad = 0 ] || return 1
	log "building the boot kernel (log: $BOOT_OUT/build.log)"
	mkdir -p "$BOOT_OUT"
	make -C "$SRC" O="$BOOT_B" ARCH=x86_64 -j"$JOBS" bzImage modules \
		> "$BOOT_OUT/build.log" 2>&1 || { tail -30 "$BOOT_OUT/build.log"; return 1; }
}

build_initramfs() {
	local d=$BOOT_OUT/initramfs m i
	rm -rf "$d" "$BOOT_OUT/mods"
	mkdir -p "$d/bin" "$d/lib/modules" "$d/proc" "$d/sys" "$d/dev" "$BOOT_OUT/mods"
	# NR_MODS copies of one small module, under different names
	: > "$BOOT_OUT/mods/Kbuild"
	for i in $(seq -w 1 $NR_MODS); do
		sed "s/jm_/jm${i}_/g" "$HERE/boot/mods/jm.c" > "$BOOT_OUT/mods/jm$i.c"
		echo "obj-m += jm$i.o" >> "$BOOT_OUT/mods/Kbuild"
	done
	make -s -C "$SRC" O="$BOOT_B" ARCH=x86_64 M="$BOOT_OUT/mods" -j"$JOBS" modules \
		> "$BOOT_OUT/mods.log" 2>&1 || { tail -20 "$BOOT_OUT/mods.log"; return 1; }
	cp "$BOOT_OUT"/mods/jm*.ko "$d/lib/modules/"
	cp "$BOOT_B/lib/test_bpf.ko" "$d/lib/modules/" || return 1
	cp /bin/busybox "$d/bin/busybox" || return 1
	gcc -static -O2 -Wall -o "$d/bin/jittool" "$HERE/boot/jittool.c" || return 1
	install -m 0755 "$HERE/boot/init" "$d/init"
	( cd "$d" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$BOOT_OUT/initramfs.cpio.gz"
}

# The series must build with the option off too: compile every file the
# series touches (outside the new ones) in a config without it.
OFF_OBJS="mm/execmem.o mm/vmalloc.o lib/iov_iter.o kernel/bpf/core.o
	arch/x86/kernel/ftrace.o arch/x86/kernel/kprobes/core.o
	arch/x86/kernel/alternative.o kernel/module/strict_rwx.o
	arch/x86/mm/pat/set_memory.o"
build_option_off() {
	local b=$KCACHE/build-off
	mkdir -p "$b" "$BOOT_OUT"
	grep -v -e EXECMEM_JITALLOC -e '^CONFIG_KUNIT=' "$HERE/boot/config" > "$b/.config"
	echo '# CONFIG_EXECMEM_JITALLOC is not set' >> "$b/.config"
	make -s -C "$SRC" O="$b" ARCH=x86_64 olddefconfig > "$BOOT_OUT/off.log" 2>&1 &&
	! grep -q '^CONFIG_EXECMEM_JITALLOC=y' "$b/.config" &&
	make -C "$SRC" O="$b" ARCH=x86_64 -j"$JOBS" $OFF_OBJS >> "$BOOT_OUT/off.log" 2>&1 ||
		{ tail -20 "$BOOT_OUT/off.log"; return 1; }
}

run_qemu() {	# $1 = 0 (stock path) or 1 (jitalloc)
	local log=$BOOT_OUT/boot-jit$1.log
	log "booting with execmem_jitalloc=$1 (log: $log)"
	timeout 1500 qemu-system-x86_64 -m 2048 -smp 2 -nographic -no-reboot \
		-kernel "$BOOT_B/arch/x86/boot/bzImage" \
		-initrd "$BOOT_OUT/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 execmem_jitalloc=$1 kunit.filter_glob=execmem_jitalloc" \
		< /dev/null > "$log" 2>&1
	tr -d '\r' < "$log" > "$log.txt"
}

check_boot_log() {	# $1 = mode
	local t=$BOOT_OUT/boot-jit$1.log.txt name
	if ! grep -q '^BOOTTEST DONE' "$t"; then
		tail -40 "$t"
		fail "boot (execmem_jitalloc=$1) did not finish"
		return
	fi
	while read -r _ res name; do
		if [ "$res" = PASS ]; then pass "boot jit=$1: $name"; else fail "boot jit=$1: $name"; fi
	done < <(grep '^CHECK ' "$t")
	if grep -q '^DMESG ' "$t"; then
		grep '^DMESG ' "$t"
		fail "boot jit=$1: kernel warnings"
	else
		pass "boot jit=$1: no kernel warnings"
	fi
}

mval() {	# mode phase key
	awk -v p="$2" -v k="$3" '$1 == "MEASURE" && $2 == p && $3 == k { print $4 }' \
		"$BOOT_OUT/boot-jit$1.log.txt"
}

write_results() {	# boot section of RESULTS.md, see test.sh
	local r=$BOOT_OUT/results-boot.md phase k
	{
		echo "## 2. Boot-level measurement (test.sh --full)"
		echo
		echo "Kernel config kernel-port/boot/config (olddefconfig), qemu-system-x86_64"
		echo "(TCG, default CPU model, no 1 GiB pages), 2 CPUs, 2 GiB RAM, busybox initramfs."
		echo
		echo "Both columns boot the same patched kernel: **stock** is \`execmem_jitalloc=0\`,"
		echo "with which execmem_alloc()/execmem_free(), bpf_prog_pack, kprobes, ftrace and"
		echo "the module loader take the unpatched code paths (vmalloc + set_memory_rox);"
		echo "**jitalloc** is the default (the cache on; module text included)."
		echo
		echo "Phases: *boot* (init starts; with the cache on, the KUnit suite has run at"
		echo "boot, including its stock-path fallback cases); *before_load* (after the"
		echo "functional checks: a module, lib/test_bpf, a kprobe, kcore, ptdump); after"
		echo "loading 2000 JITed BPF socket filters (8..407 instructions, kept loaded);"
		echo "after loading $NR_MODS small modules on top; after closing the programs and"
		echo "unloading the modules (and, for jitalloc, writing the debugfs shrink file)."
		echo
		echo "| phase | metric | stock | jitalloc |"
		echo "|---|---|---:|---:|"
		for phase in boot before_load after_2000_bpf after_modules after_unload; do
			for k in DirectMap4k DirectMap2M DirectMap1G direct_map_level2_splits direct_map_level3_splits; do
				echo "| $phase | $k | $(mval 0 $phase $k) | $(mval 1 $phase $k) |"
			done
		done
		echo
		echo "DirectMap values are kB (from /proc/meminfo); splits are cumulative counts"
		echo "from /proc/vmstat since boot."
		echo
		echo "Change caused by the 2000 BPF programs (before_load -> after_2000_bpf) and"
		echo "by the $NR_MODS modules (after_2000_bpf -> after_modules):"
		echo
		echo "| metric | BPF, stock | BPF, jitalloc | modules, stock | modules, jitalloc |"
		echo "|---|---:|---:|---:|---:|"
		for k in DirectMap4k direct_map_level2_splits direct_map_level3_splits; do
			echo "| $k | $(( $(mval 0 after_2000_bpf $k) - $(mval 0 before_load $k) )) | $(( $(mval 1 after_2000_bpf $k) - $(mval 1 before_load $k) )) | $(( $(mval 0 after_modules $k) - $(mval 0 after_2000_bpf $k) )) | $(( $(mval 1 after_modules $k) - $(mval 1 after_2000_bpf $k) )) |"
		done
		echo
		echo "With the cache, module text no longer splits the direct map; module rodata"
		echo "and ro_after_init (set_memory_ro() on vmalloc memory) still do, which is what"
		echo "remains in the jitalloc column.  Splits are never undone (after_unload)."
		echo
		echo "jitalloc cache statistics (debugfs) after the 2000 programs and the modules:"
		echo
		echo '```'
		awk '$1 == "STATS" && $2 == "after_modules" { $1 = ""; $2 = ""; sub(/^  /, ""); print }' \
			"$BOOT_OUT/boot-jit1.log.txt"
		echo '```'
	} > "$r"
	BOOT_RESULTS_OK=1
}

full_tests() {
	if ! build_boot_kernel; then fail "--full: boot kernel build"; return; fi
	pass "build with the option on (boot kernel)"
	if ! build_initramfs; then fail "--full: initramfs"; return; fi
	run_qemu 0
	check_boot_log 0
	run_qemu 1
	check_boot_log 1
	if grep -q '^BOOTTEST DONE' "$BOOT_OUT/boot-jit0.log.txt" &&
	   grep -q '^BOOTTEST DONE' "$BOOT_OUT/boot-jit1.log.txt"; then
		write_results
	fi
	log "compiling the touched files with CONFIG_EXECMEM_JITALLOC off"
	if build_option_off; then pass "build with the option off"; else fail "build with the option off"; fi
}
