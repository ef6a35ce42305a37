// Observers hear of a free only after it succeeded (issue 10, item 7).
//  - A jit_free that fails (the writer refuses the trap fill; for a large allocation the
//    unmap) leaves the allocation live, in the perf map and in GDB's JIT list.
//  - The record goes before the memory can be handed out again: threads freeing and
//    re-allocating the same addresses leave exactly the live set in both lists.
#include "rel_common.h"
#include "../core/helpers.h"

#include "observe/observe.h"
#include "os/os.h"

#include <jitalloc/gdb_jit.h>

#include <gtest/gtest.h>

#include <string_view>
#include <thread>

namespace os = jitalloc::os;

namespace {

constexpr unsigned kObserved = JIT_ARENA_IGNORE_ENV | JIT_ARENA_PERF_MAP | JIT_ARENA_GDB_JIT;

std::string perf_map_path() { return "/tmp/perf-" + std::to_string(getpid()) + ".map"; }

std::string perf_map() { return jt::read_file(perf_map_path().c_str()); }

// Lines of the perf map naming `name` exactly.
int perf_entries(const std::string &map, const std::string &name) {
    int n = 0;
    for (size_t pos = 0; (pos = map.find(" " + name + "\n", pos)) != std::string::npos; pos++)
        n++;
    return n;
}

// Entries of GDB's JIT list with a symbol named `name`, or (whole_name false) whose name
// starts with it: string table entries are NUL-delimited.
int gdb_entries(const std::string &name, bool whole_name = true) {
    std::string needle;
    needle += '\0';
    needle += name;
    if (whole_name)
        needle += '\0';
    int n = 0;
    for (const jit_code_entry *e = jitalloc::observe_gdb_descriptor().first_entry; e; e = e->next_entry)
        if (std::string_view(e->symfile_addr, e->symfile_size).find(needle) != std::string_view::npos)
            n++;
    return n;
}

struct Kind {
    const char *what;
    size_t len;
    os::Call fails;  // the call that makes the free fail
};

const Kind kKinds[] = {
    {"small", 64, os::Call::pwrite},                        // slab object: trap fill
    {"pages", 3 * 4096 + 100, os::Call::pwrite},            // page run: trap fill
    {"large", (size_t{2} << 20) + 4096, os::Call::munmap},  // large chunk: the unmap
};

TEST(ObserveFree, FailedFreeStaysObservedAndLive) {
    jit_arena *a = rel::make_arena(JIT_WRITER_PROC_MEM, JIT_PLACE_NEAR_LIBRARY, kObserved);
    ASSERT_NE(a, nullptr);
    for (const Kind &k : kKinds) {
        SCOPED_TRACE(k.what);
        std::string name = std::string("rel_observe_failed_") + k.what;
        std::vector<uint8_t> code(k.len, 0x90);  // written code: registered whatever the policy
        code.back() = 0xC3;
        void *p = jit_arena_alloc_named(a, code.data(), code.size(), name.c_str());
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(1, perf_entries(perf_map(), name));
        ASSERT_EQ(1, gdb_entries(name));

        os::Fault f;
        f.nth = 1;
        f.error = EIO;
        f.mask = os::mask_of(k.fails);
        os::set_fault(f);
        int rc = jit_arena_free(a, p);
        int err = errno;
        uint64_t injected = os::faults_injected();
        os::clear_fault();
        ASSERT_EQ(1u, injected);
        EXPECT_EQ(-1, rc);
        EXPECT_EQ(EIO, err);

        // Still live, still named for the profiler and the debugger.
        EXPECT_GT(jit_size(p), 0u);
        EXPECT_EQ(a, jit_arena_of(p));
        EXPECT_EQ(1, perf_entries(perf_map(), name));
        EXPECT_EQ(1, gdb_entries(name));
        EXPECT_EQ("", rel::check(a));

        // The retried free succeeds and takes it out of both.
        EXPECT_EQ(0, jit_arena_free(a, p));
        EXPECT_EQ(0, perf_entries(perf_map(), name));
        EXPECT_EQ(0, gdb_entries(name));
    }
    EXPECT_EQ(0, jit_arena_destroy(a));
    ::unlink(perf_map_path().c_str());
}

// Frees and allocations of one size on several threads reuse each other's addresses at
// once. If an observer heard of a free after the memory was handed out again, the new
// allocation's record would be dropped (missing from the lists) and the old one leaked.
TEST(ObserveFree, ReusedAddressesLeaveExactlyTheLiveSet) {
    jit_arena *a = rel::make_arena(JIT_WRITER_PROC_MEM, JIT_PLACE_NEAR_LIBRARY, kObserved);
    ASSERT_NE(a, nullptr);
    constexpr int kRounds = rel::kSanitized ? 300 : 2000;
    constexpr int kThreads = 3, kKeep = 4;
    std::vector<std::vector<std::pair<void *, std::string>>> kept(kThreads);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    std::vector<uint8_t> code(5000, 0x90);
    code.back() = 0xC3;
    for (int t = 0; t < kThreads; t++)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kRounds; i++) {
                std::string name = "rel_reuse_" + std::to_string(t) + "_" + std::to_string(i);
                size_t len = i % 8 == 7 ? code.size() : 48;  // page runs and slab objects
                void *p = jit_arena_alloc_named(a, code.data() + code.size() - len, len, name.c_str());
                if (!p) {
                    failures++;
                    continue;
                }
                if (i >= kRounds - kKeep)
                    kept[t].emplace_back(p, name);
                else if (jit_arena_free(a, p) != 0)
                    failures++;
            }
        });
    for (auto &th : threads)
        th.join();
    ASSERT_EQ(0, failures.load());

    std::string map = perf_map();
    size_t live = 0;
    for (auto &list : kept)
        for (auto &[p, name] : list) {
            EXPECT_EQ(1, perf_entries(map, name)) << name;
            EXPECT_EQ(1, gdb_entries(name)) << name;
            live++;
        }
    EXPECT_EQ(static_cast<int>(live), gdb_entries("rel_reuse_", false));
    for (auto &list : kept)
        for (auto &[p, name] : list)
            EXPECT_EQ(0, jit_arena_free(a, p));
    EXPECT_EQ(0, gdb_entries("rel_reuse_", false));
    EXPECT_EQ(std::string::npos, perf_map().find("rel_reuse_"));
    EXPECT_EQ(0, jit_arena_destroy(a));
    ::unlink(perf_map_path().c_str());
}

}  // namespace
