// jitalloc::JitRuntime on batches (include/jitalloc/asmjit.hpp): a function is one
// jit_batch, so every section of its CodeHolder and the trap tail land in one kernel
// write, the function is live only once its code is complete, and a failed add leaves
// nothing behind (no allocation made and freed).
// Kernel writes are counted with a pwritev interposer (tests/common/kernel_writes.h).
#include "../../tests/common/kernel_writes.h"

#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace asmjit;
namespace kw = jt_kernel_writes;

namespace {

class Arena {
public:
    explicit Arena(unsigned flags = 0) {
        jit_arena_options o;
        jit_arena_options_init(&o);
        o.writer = JIT_WRITER_PROC_MEM;
        o.flags = JIT_ARENA_IGNORE_ENV | flags;
        a_ = jit_arena_create(&o);
    }
    ~Arena() {
        if (a_)
            jit_arena_destroy(a_);
    }
    Arena(const Arena &) = delete;
    Arena &operator=(const Arena &) = delete;
    jit_arena *get() const { return a_; }
    struct jit_stats stats() const {
        struct jit_stats s;
        jit_arena_stats(a_, &s);
        return s;
    }

private:
    jit_arena *a_ = nullptr;
};

// int f(): loads `value` from a .data section of its own CodeHolder (rip-relative), so
// the flattened function has two sections.
Error two_section_function(jitalloc::JitRuntime &rt, int32_t value, int (**fn)()) {
    CodeHolder code;
    code.init(rt.environment());
    Section *data = nullptr;
    if (Error e = code.newSection(&data, ".data", SIZE_MAX, SectionFlags::kNone, 8))
        return e;
    x86::Assembler a(&code);
    Label constant = a.newLabel();
    a.mov(x86::eax, x86::dword_ptr(constant));
    a.ret();
    a.section(data);
    a.bind(constant);
    a.dd(static_cast<uint32_t>(value));
    return rt.add(fn, &code);
}

}  // namespace

TEST(JitRuntimeBatch, AFunctionWithTwoSectionsIsOneKernelWrite) {
    Arena arena;
    ASSERT_NE(arena.get(), nullptr);
    jitalloc::JitRuntime rt(arena.get());
    // The first function also makes the arena's first chunk, which grows in steps (each
    // step a kernel write of traps, src/chunk/growth.h): counted apart, before the loop.
    int (*warm)() = nullptr;
    ASSERT_EQ(two_section_function(rt, 1, &warm), kErrorOk);
    for (int32_t i = 0; i < 50; i++) {
        int (*fn)() = nullptr;
        uint64_t writes = kw::made_by([&] { ASSERT_EQ(two_section_function(rt, 4200 + i, &fn), kErrorOk); });
        ASSERT_NE(fn, nullptr);
        EXPECT_EQ(writes, 1u) << "function " << i;
        EXPECT_EQ(fn(), 4200 + i);
        EXPECT_GT(jit_size(reinterpret_cast<void *>(fn)), 0u);
        EXPECT_EQ(rt.release(fn), kErrorOk);
    }
    EXPECT_EQ(rt.release(warm), kErrorOk);
    EXPECT_EQ(arena.stats().allocations, 0u);
}

// A write that fails: add() reports it, and the arena is as before: no allocation was
// published (and freed again), no counter moved. Before add() used a batch it reserved a
// live allocation first, then freed it: total_allocs and total_frees moved.
TEST(JitRuntimeBatch, AFailedWriteLeavesNoTrace) {
    Arena arena;
    ASSERT_NE(arena.get(), nullptr);
    jitalloc::JitRuntime rt(arena.get());
    int (*warm)() = nullptr;  // the chunk and slab exist already
    ASSERT_EQ(two_section_function(rt, 1, &warm), kErrorOk);
    const struct jit_stats before = arena.stats();
    int (*fn)() = nullptr;
    kw::fail_next(EIO);
    uint64_t writes = kw::made_by([&] { EXPECT_NE(two_section_function(rt, 2, &fn), kErrorOk); });
    EXPECT_EQ(fn, nullptr);
    EXPECT_EQ(writes, 1u) << "only the failed write: nothing to undo in fresh memory";
    const struct jit_stats after = arena.stats();
    EXPECT_EQ(after.allocations, before.allocations);
    EXPECT_EQ(after.total_allocs, before.total_allocs);
    EXPECT_EQ(after.total_frees, before.total_frees);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
    // And the next add works.
    ASSERT_EQ(two_section_function(rt, 3, &fn), kErrorOk);
    EXPECT_EQ(fn(), 3);
    EXPECT_EQ(rt.release(fn), kErrorOk);
    EXPECT_EQ(rt.release(warm), kErrorOk);
}

// With lazy trap fill (JIT_ARENA_LAZY_TRAP_FILL) freed functions keep their bytes; an
// add() that lands on such a slot writes the new code and the trap tail over it in one
// kernel write (before: one write of traps to reserve it, one of the code).
TEST(JitRuntimeBatch, LazyFillArenaReusesAFreedSlotInOneWrite) {
    Arena arena(JIT_ARENA_LAZY_TRAP_FILL);
    ASSERT_NE(arena.get(), nullptr);
    jitalloc::JitRuntime rt(arena.get());
    // Fill whole slabs, then free every other function: the partial slabs hold no clean
    // slot, so the next adds land on stale ones (slab.cpp: partial slabs first).
    std::vector<int (*)()> fns(2000);
    for (size_t i = 0; i < fns.size(); i++)
        ASSERT_EQ(two_section_function(rt, static_cast<int32_t>(i), &fns[i]), kErrorOk);
    for (size_t i = 1; i < fns.size(); i += 2)
        ASSERT_EQ(rt.release(fns[i]), kErrorOk);
    uint64_t most = 0, total = 0;
    for (size_t i = 1; i < fns.size(); i += 2) {
        uint64_t writes = kw::made_by(
            [&] { ASSERT_EQ(two_section_function(rt, static_cast<int32_t>(i) + 7, &fns[i]), kErrorOk); });
        most = std::max(most, writes);
        total += writes;
        EXPECT_EQ(fns[i](), static_cast<int>(i) + 7);
    }
    EXPECT_EQ(total, fns.size() / 2);
    EXPECT_EQ(most, 1u);
    for (auto fn : fns)
        EXPECT_EQ(rt.release(fn), kErrorOk);
}

// Code starts where asmjit's own runtime would put it: on 64 bytes (asmjit::JitAllocator's
// granularity), or on a section's larger alignment, so data and loops aligned relative to
// the start of the CodeHolder are aligned in memory (an aligned SSE load of a 16-byte
// constant of a 256-aligned .data section runs; misaligned, it would fault).
TEST(JitRuntimeBatch, CodeStartsAlignedAsOnAsmjitsRuntime) {
    Arena arena;
    ASSERT_NE(arena.get(), nullptr);
    jitalloc::JitRuntime rt(arena.get());
    std::vector<int (*)()> fns;
    for (int32_t i = 0; i < 20; i++) {
        int (*fn)() = nullptr;
        ASSERT_EQ(two_section_function(rt, i, &fn), kErrorOk);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(fn) % 64, 0u) << i;
        EXPECT_EQ(fn(), i);
        fns.push_back(fn);
    }
    for (int32_t i = 0; i < 5; i++) {
        CodeHolder code;
        code.init(rt.environment());
        Section *data = nullptr;
        ASSERT_EQ(code.newSection(&data, ".data", SIZE_MAX, SectionFlags::kNone, 256), kErrorOk);
        x86::Assembler a(&code);
        Label constant = a.newLabel();
        a.movaps(x86::xmm0, x86::ptr(constant));  // faults unless 16-aligned
        a.movd(x86::eax, x86::xmm0);
        a.ret();
        a.section(data);
        a.bind(constant);
        for (int k = 0; k < 4; k++)
            a.dd(static_cast<uint32_t>(700 + i));
        int (*fn)() = nullptr;
        ASSERT_EQ(rt.add(&fn, &code), kErrorOk);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(fn) % 256, 0u) << i;
        EXPECT_EQ(fn(), 700 + i);
        fns.push_back(fn);
    }
    for (auto fn : fns)
        EXPECT_EQ(rt.release(fn), kErrorOk);
    EXPECT_EQ(arena.stats().allocations, 0u);
}
