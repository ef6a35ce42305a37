# shellcheck shell=bash
# Direct-map figures from the KUnit kernel (sourced by test.sh for
# --figures and --full).  The execmem_jitalloc_dmap suite runs in every KUnit
# boot; part (2) has just booted with the cache on, this boots the same
# kernel again with execmem_jitalloc=0 (no rebuild) and writes the table.

KUNIT_FIG=$KCACHE/figures

dmap_val() {	# log phase key
	awk -v p="$2" -v k="$3" '{ for (i = 1; i < NF; i++) if ($i == "DMAP" && $(i+1) == p && $(i+2) == k) print $(i+3) }' "$1" | tail -1
}

kunit_figures() {
	local stock=$KUNIT_FIG/kunit-stock.log jit=$KUNIT_FIG/kunit-jit.log rc
	mkdir -p "$KUNIT_FIG"
	cp "$KCACHE/build-kunit/test.log" "$jit" 2>/dev/null
	log "KUnit kernel again with execmem_jitalloc=0 (stock path) for the figures"
	( cd "$SRC" && python3 tools/testing/kunit/kunit.py exec --arch=x86_64 \
		--build_dir="$KCACHE/build-kunit" --kernel_args=execmem_jitalloc=0 \
		--qemu_args='-smp 2' --timeout=900 ) > "$KUNIT_FIG/kunit-stock.out" 2>&1
	rc=$?
	cp "$KCACHE/build-kunit/test.log" "$stock" 2>/dev/null
	if [ $rc -ne 0 ] || ! grep -q 'DMAP mode jitalloc=0' "$stock" ||
	   ! grep -q 'DMAP mode jitalloc=1' "$jit"; then
		tail -20 "$KUNIT_FIG/kunit-stock.out"
		fail "KUnit figures (stock run exit $rc)"
		return 1
	fi
	pass "KUnit figures, stock and jitalloc"
}

write_results_kunit() {	# writes the KUnit section of RESULTS.md to stdout
	local stock=$KUNIT_FIG/kunit-stock.log jit=$KUNIT_FIG/kunit-jit.log phase k
	echo "## 1. Allocation-level measurement (KUnit kernel, suite execmem_jitalloc_dmap)"
	echo
	echo "The same patched KUnit kernel (kernel-port/kunit/kunitconfig), booted in qemu"
	echo "(TCG, default CPU model, so the direct map uses 2 MiB pages, no 1 GiB pages;"
	echo "2 CPUs, 1 GiB) once with \`execmem_jitalloc=0\` (**stock**: execmem_alloc(),"
	echo "bpf_prog_pack and the module text path run the unpatched code: vmalloc +"
	echo "set_memory_rox()) and once with the cache on (**jitalloc**)."
	echo "The test makes 2000 bpf_prog_pack_alloc() calls (JIT image sizes 64..1660"
	echo "bytes, written with bpf_arch_text_copy()), then the execmem calls the module"
	echo "loader makes for 40 small modules (3 pages of text made ROX as"
	echo "module_enable_text_rox() does, 1 page of rodata set_memory_ro(), 2 pages of"
	echo "data set_memory_nx()), then frees everything (and, with the cache, drains and"
	echo "shrinks it)."
	echo
	echo "| phase | metric | stock | jitalloc |"
	echo "|---|---|---:|---:|"
	for phase in start after_2000_bpf after_modules after_free; do
		for k in DirectMap4k DirectMap2M direct_map_level2_splits direct_map_level3_splits; do
			echo "| $phase | $k | $(dmap_val "$stock" $phase $k) | $(dmap_val "$jit" $phase $k) |"
		done
	done
	echo
	echo "DirectMap values in kB; splits are cumulative since boot.  KUnit suites run"
	echo "before init, and x86 counts direct_map_level{2,3}_splits only once"
	echo "system_state is SYSTEM_RUNNING, so here the splits show up in DirectMap4k"
	echo "only (each 2 MiB direct-map page split to 4 KiB adds 2048 kB to DirectMap4k)."
	echo "A freshly booted guest hands vmalloc mostly physically contiguous pages, so"
	echo "a 2 MiB BPF pack touches few 2 MiB regions of the direct map; on a long-running"
	echo "machine with fragmented free memory the stock path splits many more."
	echo "Increase from start:"
	echo
	echo "| phase | metric | stock | jitalloc |"
	echo "|---|---|---:|---:|"
	for phase in after_2000_bpf after_modules after_free; do
		for k in DirectMap4k direct_map_level2_splits; do
			echo "| $phase | $k | $(( $(dmap_val "$stock" $phase $k) - $(dmap_val "$stock" start $k) )) | $(( $(dmap_val "$jit" $phase $k) - $(dmap_val "$jit" start $k) )) |"
		done
	done
	echo
	echo "Module rodata and data stay on the stock path in both columns, so the"
	echo "jitalloc column still shows their splits."
}
