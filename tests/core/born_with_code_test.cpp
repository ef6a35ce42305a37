// A chunk made for an allocation with code is born holding that code (issue 16): the code
// goes in with the chunk's trap fill, before anything of it is executable, and the run
// holding it is taken from the buddy under the same hold of the buddy lock that adds the
// chunk (src/arena/arena.cpp grow_locked, src/poke/writer.h). What must hold, for every
// writer: the allocation holds its code and the rest of the new part traps; no mapping is
// ever writable and executable; a failure anywhere in the chunk's making returns the
// injected error and leaves nothing executable behind (and no code in free memory);
// threads racing the first allocations of a fresh arena each get their own code; fork
// copies a chunk born with code like any other.
#include "helpers.h"

#include "os/os.h"

#include <atomic>
#include <thread>

using namespace jt;
namespace os = jitalloc::os;

namespace {

class BornWithCode : public ::testing::TestWithParam<jit_writer> {};

// The mapping holding p: read+execute, never writable.
::testing::AssertionResult ReadExecOnly(const void *p) {
    auto addr = reinterpret_cast<uintptr_t>(p);
    for (const Mapping &m : read_maps())
        if (m.start <= addr && addr < m.end) {
            if (m.perms.substr(0, 3) == "r-x")
                return ::testing::AssertionSuccess();
            return ::testing::AssertionFailure() << m.line;
        }
    return ::testing::AssertionFailure() << "not mapped";
}

// A fresh arena's first allocations of each kind (slab object and page run: the first
// chunk, exposed in steps; large chunk: mapped whole), each making its own chunk: born
// with the code, the rest traps, read+execute, the arena consistent.
TEST_P(BornWithCode, FirstAllocationsOfAFreshArena) {
    for (size_t len : {size_t{100}, size_t{5000}, size_t{3 * MiB}}) {
        SCOPED_TRACE(len);
        ArenaHolder a(GetParam());
        ASSERT_NE(a.get(), nullptr) << strerror(a.error());
        auto code = ret_imm(33, len);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        ASSERT_NE(p, nullptr) << strerror(errno);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p), chunk_base(p));
        EXPECT_TRUE(same_bytes(p, code));
        EXPECT_TRUE(all_traps(p + len, jit_size(p) - len));
        EXPECT_TRUE(ReadExecOnly(p));
        EXPECT_EQ(call_int(p), 33);
        EXPECT_TRUE(ArenaOk(a));
        // Another large allocation: a chunk of its own, mapped whole, born with its code.
        auto big = ret_imm(44, 3 * MiB);
        void *q = jit_arena_alloc(a, big.data(), big.size());
        ASSERT_NE(q, nullptr);
        EXPECT_TRUE(same_bytes(q, big));
        EXPECT_TRUE(ReadExecOnly(q));
        EXPECT_EQ(call_int(q), 44);
        EXPECT_TRUE(wx_mappings().empty());
        EXPECT_EQ(jit_free(p), 0);
        EXPECT_EQ(jit_free(q), 0);
        EXPECT_TRUE(ArenaOk(a));
    }
}

// Executable mappings of the process.
std::vector<std::string> executable_lines() {
    std::vector<std::string> v;
    for (const Mapping &m : read_maps())
        if (m.executable())
            v.push_back(m.line);
    return v;
}

// Every system call of a fresh arena's first allocation refused in turn (once, or from
// there on): the allocation fails with the injected error and leaves no executable
// memory and no chunk behind, or succeeds with its code in place; never a mapping both
// writable and executable; the arena stays consistent and works once the fault is gone.
// munmap is refused once only: a kernel that never unmaps again leaves the reservation
// behind whatever the library does (its mprotect and mmap refused too).
TEST_P(BornWithCode, FailureWhileMakingTheChunkLeavesNothingExecutable) {
    const uint32_t calls = os::mask_of(os::Call::mmap) | os::mask_of(os::Call::mprotect) |
                           os::mask_of(os::Call::pwrite) | os::mask_of(os::Call::memfd_create) |
                           os::mask_of(os::Call::ftruncate);
    for (bool sticky : {false, true}) {
        const uint32_t mask = sticky ? calls : calls | os::mask_of(os::Call::munmap);
        int failures = 0;
        for (uint64_t nth = 1; nth < 40; nth++) {
            SCOPED_TRACE(testing::Message() << "call " << nth << (sticky ? " on" : " once"));
            ArenaHolder a(GetParam());
            ASSERT_NE(a.get(), nullptr);
            const std::vector<std::string> before = executable_lines();
            auto code = ret_imm(5, 200);
            os::set_fault({nth, ENOTRECOVERABLE, mask, sticky, false});
            errno = 0;
            void *p = jit_arena_alloc(a, code.data(), code.size());
            const int err = errno;
            const uint64_t injected = os::faults_injected();
            os::clear_fault();
            EXPECT_TRUE(wx_mappings().empty());
            EXPECT_TRUE(ArenaOk(a));
            if (p) {
                EXPECT_TRUE(same_bytes(p, code));
                EXPECT_EQ(call_int(p), 5);
                EXPECT_EQ(jit_free(p), 0);
                if (injected == 0)
                    break;  // every call of the allocation passed: walked them all
                continue;
            }
            failures++;
            EXPECT_GT(injected, 0u);
            EXPECT_EQ(err, ENOTRECOVERABLE);
            EXPECT_EQ(stats_of(a).chunks_mapped, 0u);
            EXPECT_EQ(executable_lines(), before);
            void *q = jit_arena_alloc(a, code.data(), code.size());
            ASSERT_NE(q, nullptr);
            EXPECT_TRUE(same_bytes(q, code));
            EXPECT_EQ(call_int(q), 5);
            EXPECT_TRUE(ArenaOk(a));
        }
        EXPECT_GT(failures, 0);
    }
}

// Threads racing the first allocations of a fresh arena, some in one size class, some
// each in its own: every allocation holds its own code, no free memory holds code.
TEST_P(BornWithCode, ThreadsRacingTheFirstAllocations) {
    constexpr int kThreads = 4;
    const size_t kLens[kThreads] = {100, 100, 2000, 9000};
    for (int round = 0; round < 25; round++) {
        ArenaHolder a(GetParam());
        ASSERT_NE(a.get(), nullptr);
        std::atomic<int> ready{0};
        void *got[kThreads] = {};
        std::vector<std::vector<uint8_t>> codes;
        for (int t = 0; t < kThreads; t++)
            codes.push_back(ret_imm(round * 10 + t, kLens[t]));
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; t++)
            threads.emplace_back([&, t] {
                ready.fetch_add(1);
                while (ready.load() < kThreads)
                    std::this_thread::yield();
                got[t] = jit_arena_alloc(a, codes[t].data(), codes[t].size());
            });
        for (auto &th : threads)
            th.join();
        for (int t = 0; t < kThreads; t++) {
            ASSERT_NE(got[t], nullptr);
            EXPECT_TRUE(same_bytes(got[t], codes[t]));
            EXPECT_EQ(call_int(got[t]), round * 10 + t);
        }
        EXPECT_TRUE(ArenaOk(a));
        EXPECT_TRUE(wx_mappings().empty());
        for (void *p : got)
            EXPECT_EQ(jit_free(p), 0);
        EXPECT_TRUE(ArenaOk(a));
    }
}

// fork() after a first allocation born with its code: the child runs it, changes it and
// allocates in its own copy; the parent's code is untouched (memfd writers copy the
// chunk for the child, anonymous chunks are copy-on-write).
TEST_P(BornWithCode, ForkCopiesAChunkBornWithCode) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    auto code = add_imm(7, 128);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    int rc = in_child([&] {
        if (call_int(p, 1) != 8)
            return 1;
        int32_t imm = 100;
        if (jit_update(static_cast<uint8_t *>(p) + kAddImmOff, &imm, 4) != 0 || call_int(p, 1) != 101)
            return 2;
        auto other = ret_imm(3, 300);
        void *q = jit_arena_alloc(a, other.data(), other.size());
        if (!q || call_int(q) != 3)
            return 3;
        if (!wx_mappings().empty() || jit_arena_check(a, nullptr, 0) != 0)
            return 4;
        return 0;
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(call_int(p, 1), 8);
    EXPECT_TRUE(same_bytes(p, code));
    EXPECT_EQ(jit_free(p), 0);
}

// fork() while another thread makes fresh arenas and their first allocations: the
// child never sees a half-made chunk (the fork gate waits for the allocation), nothing in
// it is writable and executable, and its own first allocations are born with code too.
TEST_P(BornWithCode, ForkWhileAnotherThreadMakesFirstAllocations) {
    if (kForkWhileAllocatingHangs)
        GTEST_SKIP() << "the sanitizer's allocator deadlocks in a child forked while another "
                        "thread allocates";
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0};
    std::thread maker([&] {
        for (int i = 0; !stop.load(); i++) {
            ArenaHolder a(GetParam());
            auto code = ret_imm(i % 200, 64 + static_cast<size_t>(i % 5) * 1000);
            void *p = a.get() ? jit_arena_alloc(a, code.data(), code.size()) : nullptr;
            if (!p || !same_bytes(p, code) || call_int(p) != i % 200)
                errors++;
        }
    });
    for (int f = 0; f < 20; f++) {
        int rc = in_child([&] {
            if (!wx_mappings().empty())
                return 1;
            ArenaHolder a(GetParam());
            auto code = ret_imm(f, 200);
            void *p = a.get() ? jit_arena_alloc(a, code.data(), code.size()) : nullptr;
            if (!p || !same_bytes(p, code) || call_int(p) != f)
                return 2;
            return jit_arena_check(a, nullptr, 0) == 0 ? 0 : 3;
        });
        EXPECT_EQ(rc, 0) << "fork " << f;
    }
    stop = true;
    maker.join();
    EXPECT_EQ(errors.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(All, BornWithCode, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

}  // namespace
