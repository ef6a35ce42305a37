// Shared pieces of the workloads: generated functions, size distributions, and what
// /proc/self/smaps says about code memory.
#pragma once

#include <jitalloc/jitalloc.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace bench {

// A private arena with the proc_mem writer (the default's) that ignores JITALLOC_*
// environment flags; nullptr if it cannot be created.
jit_arena *proc_mem_arena();

using Fn = int (*)(int);

// A function of `len` bytes (>= 8): `lea eax, [rdi + imm]; ret`, then int3 padding.
// Returns a buffer valid until the next call on this thread.
const uint8_t *make_function(size_t len, int32_t imm);

// Sizes like real BPF programs: half under 500 B, three quarters under 2 KiB, 95%
// under 8 KiB, a tail to 64 KiB.
size_t bpf_size(std::mt19937_64 &rng);
// Uniform in [lo, hi].
size_t uniform_size(std::mt19937_64 &rng, size_t lo, size_t hi);

// Code memory as the kernel sees it: every executable mapping that is anonymous or a
// memfd / shm object (not the program's own files).
struct CodeMemory {
    uint64_t mapped = 0;     // bytes of executable mappings
    uint64_t resident = 0;   // bytes resident (mincore: faulted anon pages, memfd page cache)
    uint64_t rss = 0;        // smaps Rss of those mappings
    uint64_t huge = 0;       // smaps AnonHugePages + ShmemPmdMapped + FilePmdMapped
    size_t mappings = 0;
};
CodeMemory code_memory();

}  // namespace bench
