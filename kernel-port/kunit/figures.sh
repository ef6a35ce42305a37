# shellcheck shell=bash
# Direct-map figures from the KUnit kernel (sourced by test.sh for
# --figures and --full).  The execmem_jitalloc_dmap suite is booted twice
# more (kunit.py exec, no rebuild) on a guest made to look long-running:
# 3 GiB, a CPU with 1 GiB pages (the direct map starts with two 1 GiB
# pages), free memory fragmented by the suite itself
# (execmem_jitalloc_kunit.fragment=1), once with execmem_jitalloc=0 (stock)
# and once with the cache; writes the table.

KUNIT_FIG=$KCACHE/figures
FIG_QEMU='-smp 2 -m 3072 -cpu qemu64,+pdpe1gb'
FIG_ARGS='execmem_jitalloc_kunit.fragment=1'

dmap_val() {	# log phase key
	awk -v p="$2" -v k="$3" '{ for (i = 1; i < NF; i++) if ($i == "DMAP" && $(i+1) == p && $(i+2) == k) print $(i+3) }' "$1" | tail -1
}

fig_boot() {	# name, extra kernel args
	( cd "$SRC" && python3 tools/testing/kunit/kunit.py exec --arch=x86_64 \
		--build_dir="$KCACHE/build-kunit" --kernel_args="$FIG_ARGS $2" \
		--qemu_args="$FIG_QEMU" --timeout=1800 \
		'execmem_jitalloc_dmap' ) > "$KUNIT_FIG/kunit-$1.out" 2>&1
	local rc=$?
	cp "$KCACHE/build-kunit/test.log" "$KUNIT_FIG/kunit-$1.log" 2>/dev/null
	return $rc
}

kunit_figures() {
	local rc1 rc2
	mkdir -p "$KUNIT_FIG"
	log "KUnit kernel on a fragmented 3 GiB guest with 1 GiB pages: stock, then jitalloc"
	fig_boot stock execmem_jitalloc=0; rc1=$?
	fig_boot jit ""; rc2=$?
	if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ] ||
	   ! grep -q 'DMAP mode jitalloc=0 fragment=1' "$KUNIT_FIG/kunit-stock.log" ||
	   ! grep -q 'DMAP mode jitalloc=1 fragment=1' "$KUNIT_FIG/kunit-jit.log" ||
	   ! grep -q 'DMAP after_free ' "$KUNIT_FIG/kunit-jit.log"; then
		tail -20 "$KUNIT_FIG/kunit-stock.out" "$KUNIT_FIG/kunit-jit.out"
		fail "KUnit figures (exit $rc1 / $rc2)"
		return 1
	fi
	pass "KUnit figures on a fragmented guest, stock and jitalloc"
}

# 2 MiB pages split to 4 KiB so far (each adds 2048 kB to DirectMap4k) and
# 1 GiB pages split (each takes 1048576 kB from DirectMap1G), from start
split2m() { echo $(( ($(dmap_val "$1" "$2" DirectMap4k) - $(dmap_val "$1" start DirectMap4k)) / 2048 )); }
split1g() { echo $(( ($(dmap_val "$1" start DirectMap1G) - $(dmap_val "$1" "$2" DirectMap1G)) / 1048576 )); }

write_results_kunit() {	# writes the KUnit section of RESULTS.md to stdout
	local stock=$KUNIT_FIG/kunit-stock.log jit=$KUNIT_FIG/kunit-jit.log phase k
	echo "## 1. Fragmented-host measurement (KUnit kernel, suite execmem_jitalloc_dmap)"
	echo
	echo "The patched KUnit kernel (kernel-port/kunit/kunitconfig) booted in qemu (TCG,"
	echo "\`$FIG_QEMU\`: the direct map starts with $(( $(dmap_val "$stock" start DirectMap1G) / 1048576 ))"
	echo "(stock) and $(( $(dmap_val "$jit" start DirectMap1G) / 1048576 )) (jitalloc) 1 GiB pages, as real servers have; the count"
	echo "varies from boot to boot, probably with where physical KASLR puts the"
	echo "kernel image) with \`$FIG_ARGS\`: before measuring, the suite makes"
	echo "the guest look like a long-running host — it takes order-0 pages until"
	echo "384 MiB are left free and frees every other one in random order, so free"
	echo "memory is single pages scattered over the whole direct map (their buddies"
	echo "held) plus 384 MiB untouched.  Then 5000 bpf_prog_pack_alloc() calls (JIT"
	echo "image sizes of 8..407-instruction programs, written with"
	echo "bpf_arch_text_copy()), the execmem calls and permission changes the module"
	echo "loader makes for 100 small modules (3 pages of text made ROX, 1 page of"
	echo "rodata made read-only, 2 pages of data made NX: set_memory_ro() and"
	echo "set_memory_nx() on the stock path, execmem_jitalloc_make_ro() on data-pool"
	echo "memory as module_enable_rodata_ro() does with the cache), 10 kprobe"
	echo "instruction pages and 10 ftrace trampolines (one page each, made ROX as"
	echo "alloc_insn_page() and create_trampoline() do on the stock path); then"
	echo "everything is freed (and the cache drained and shrunk)."
	echo
	echo "* **stock**: booted with \`execmem_jitalloc=0\`: execmem_alloc(), bpf_prog_pack"
	echo "  and the other callers run the unpatched code (vmalloc + set_memory_rox())."
	echo "  Upstream (6.17) still serves BPF this way (its ROX cache covers modules,"
	echo "  ftrace and kprobes, not BPF), so the stock BPF rows stand for upstream too."
	echo "* **jitalloc**: the cache on."
	echo
	echo "| phase | metric | stock | jitalloc |"
	echo "|---|---|---:|---:|"
	for phase in start fragmented after_bpf after_modules after_probes after_free; do
		for k in DirectMap4k DirectMap2M DirectMap1G; do
			echo "| $phase | $k | $(dmap_val "$stock" $phase $k) | $(dmap_val "$jit" $phase $k) |"
		done
		[ $phase = start ] && continue
		echo "| $phase | 2 MiB pages split (from start) | $(split2m "$stock" $phase) | $(split2m "$jit" $phase) |"
		echo "| $phase | 1 GiB pages split (from start) | $(split1g "$stock" $phase) | $(split1g "$jit" $phase) |"
		echo "| $phase | cached chunks x 2 MiB | – | $(dmap_val "$jit" $phase cached_chunks) |"
	done
	echo
	echo "DirectMap values in kB.  Load failures: none in either column (every"
	echo "allocation is asserted).  KUnit suites run before init, and x86 counts"
	echo "direct_map_level{2,3}_splits only once system_state is SYSTEM_RUNNING, so"
	echo "the splits here are computed from DirectMap4k (+2048 kB per 2 MiB page split"
	echo "to 4 KiB) and DirectMap1G (-1048576 kB per 1 GiB page split to 2 MiB);"
	echo "splits are never undone.  On the stock path set_memory_ro() on vmalloc'd"
	echo "module rodata splits its direct-map alias, and freeing module rodata and"
	echo "data (vfree() with VM_FLUSH_RESET_PERMS invalidates and restores the"
	echo "direct map page by page) splits more regions (after_free).  With the cache"
	echo "module text, rodata and data all come from chunks out of the direct map.  A"
	echo "chunk taken out of a 1 GiB direct-map page splits that page into 2 MiB"
	echo "entries once (its own entry becomes a not-present 2 MiB one; later chunks"
	echo "in the same 1 GiB region split nothing); upstream's cache, read-only in"
	echo "the direct map, splits it as well.  In this run the jitalloc column's"
	if [ "$(split1g "$jit" after_free)" -gt 0 ]; then
		echo "chunks came (in part) from a 1 GiB page: $(split1g "$jit" after_free) 1 GiB split(s)."
	else
		echo "chunks all came from memory mapped with 2 MiB pages: no 1 GiB split."
	fi
	echo
	echo "Per phase (splits caused by that phase):"
	echo
	echo "| load | 2 MiB splits stock | 2 MiB splits jitalloc | 1 GiB splits stock | 1 GiB splits jitalloc |"
	echo "|---|---:|---:|---:|---:|"
	local prev=fragmented
	for phase in after_bpf after_modules after_probes; do
		echo "| $phase | $(( $(split2m "$stock" $phase) - $(split2m "$stock" $prev) )) | $(( $(split2m "$jit" $phase) - $(split2m "$jit" $prev) )) | $(( $(split1g "$stock" $phase) - $(split1g "$stock" $prev) )) | $(( $(split1g "$jit" $phase) - $(split1g "$jit" $prev) )) |"
		prev=$phase
	done
}
