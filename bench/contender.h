// One small interface for every allocator the benchmarks compare ("contenders").
//
// A contender loads machine code into executable memory and hands back a callable
// address; it can unload it, patch it in place, and say how much metadata it keeps.
// Every workload in bench_main.cpp is written once against this interface, so each
// contender does exactly the same work per iteration.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

class Contender {
public:
    virtual ~Contender() = default;
    // Allocates executable memory, copies len bytes of code into it, makes it runnable.
    // nullptr on failure.
    virtual void *load(const void *code, size_t len) = 0;
    // Frees what load returned (len: the length passed to load).
    virtual void unload(void *p, size_t len) = 0;
    // Overwrites [dst, dst+len) of live code. false on failure.
    virtual bool update(void *dst, const void *src, size_t len) = 0;
    // Reserves len bytes to be written with update() (the path jitalloc::JitRuntime takes:
    // reserve, relocate, write); unload() frees it. nullptr where not supported.
    virtual void *reserve(size_t) { return nullptr; }
    // Loads n functions at once: code[i] of len[i] bytes, the address in out[i]. false on
    // failure (nothing loaded). Default: n loads. jitalloc: one jit_batch; floors: the n
    // functions packed into one buffer and one raw pwrite (the least a strict W^X batch
    // can cost); asmjit: the default (its writes are memcpys through the RW view).
    virtual bool load_many(const void *const *code, const size_t *len, size_t n, void **out) {
        for (size_t i = 0; i < n; i++)
            if (!(out[i] = load(code[i], len[i]))) {
                while (i--)
                    unload(out[i], len[i]);
                return false;
            }
        return true;
    }
    // After a batch of loads, before the code runs (ideal: flips the region to RX).
    virtual void seal() {}
    // Out-of-band metadata bytes the allocator holds (0 where the kernel keeps it).
    virtual size_t metadata_bytes() = 0;
    // Never writable and executable at once, no persistent writable view.
    virtual bool strict_wx() const = 0;
    // Can unload / update (the ideal layout cannot).
    virtual bool can_free() const { return true; }
    // A counter that moves whenever the allocator maps new address space for code (chunk
    // growth): the latency benchmark reads it around each operation, outside the timed
    // window, to count growth apart. Must be O(1). 0 where not known.
    virtual uint64_t growth_counter() { return 0; }
    // Chunks (code memory blocks) given back to the OS so far; O(1); 0 where not known.
    virtual uint64_t release_counter() { return 0; }
    // Gives free code memory back to the OS; the bytes given back (0 where the allocator
    // has no such call: asmjit releases empty blocks by itself on free).
    virtual size_t shrink() { return 0; }
};

// Names, in report order: jitalloc_<writer>, asmjit_default, asmjit_dual,
// asmjit_dual_pools_fill, naive_mmap, ideal_thp.
const std::vector<std::string> &contender_names();

// Placement. jitalloc's default (JIT_PLACE_NEAR_LIBRARY) maps its 2 MiB chunks as close
// as it can to libjitalloc's code, which is linked into this program, so its code sits a
// few MiB from the calling code; the kernel puts everything else (asmjit, naive, the
// ideal region) in the mmap area, far away. That distance alone changes call speed at
// small n (see bench/RESULTS.md, calls), so the calls benchmark also runs:
//   jitalloc_anywhere  jitalloc, proc_mem writer, JIT_PLACE_ANYWHERE (placed like the
//                      others: where the kernel puts it)
//   ideal_near         the ideal packed layout of ideal_thp, in 2 MiB THP chunks placed
//                      by the library's own placement code for a default arena
//                      (jitalloc::make_placement + reserve_range)
// so each layout is compared with the ideal at the same placement.
const std::vector<std::string> &placement_contender_names();

// The floor: what one strict W^X write costs with nothing around it. Each load and each
// update is one raw pwrite into trap-filled ROX code memory (unload does nothing), so a
// strict writer's figure divided by its floor's is what the allocator adds:
//   floor_proc_mem  /proc/self/mem into private anonymous THP memory (like proc_mem)
//   floor_memfd     the memfd behind a shared ROX view (like memfd and temp_alias)
// Loads are placed one after another in a 32 MiB region and wrap around.
// bench/report.py measures proc_mem and mprotect against floor_proc_mem, memfd and
// temp_alias against floor_memfd.
const std::vector<std::string> &floor_contender_names();

// Lazy trap fill (JIT_ARENA_LAZY_TRAP_FILL, issue 11 item 5): a freed slab object keeps
// its bytes until its slot is reused, and the trap tail is folded into the write that
// reuses it, so a load+unload cycle makes one kernel write instead of two:
//   jitalloc_proc_mem_lazy, jitalloc_memfd_lazy
// They run where that matters (load_unload, churn); bench/report.py measures them
// against their writer's floor and against asmjit dual+pools+fill.
const std::vector<std::string> &lazy_contender_names();

// A fresh contender; nullptr (with a message on stderr) if it cannot work here.
std::unique_ptr<Contender> make_contender(const std::string &name);

}  // namespace bench
