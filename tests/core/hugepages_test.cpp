// Huge pages: the share of code memory that is AnonHugePages in /proc/self/smaps for
// the proc_mem writer (private anonymous chunks with MADV_HUGEPAGE) after loading many
// small functions and patching them.
#include "helpers.h"

#include <set>

using namespace jt;

namespace {

struct HugeShare {
    uint64_t size_kb = 0, huge_kb = 0;
};

// Sums Size and AnonHugePages over the VMAs that hold any of the given chunks.
HugeShare huge_share(const std::set<uintptr_t> &chunks) {
    HugeShare h;
    for (const SmapsEntry &e : read_smaps()) {
        auto it = chunks.lower_bound(e.map.start);
        if (it == chunks.end() || *it >= e.map.end)
            continue;
        h.size_kb += e.size_kb;
        h.huge_kb += e.anon_huge_kb;
    }
    return h;
}

std::set<uintptr_t> chunks_of(const std::vector<void *> &ptrs) {
    std::set<uintptr_t> s;
    for (void *p : ptrs)
        s.insert(chunk_base(p));
    return s;
}

TEST(HugePages, ProcMemChunksAreMostlyHuge) {
    std::string mode = thp_mode();
    if (mode == "never" || mode.empty())
        GTEST_SKIP() << "transparent huge pages are '" << mode
                     << "' (/sys/kernel/mm/transparent_hugepage/enabled): nothing to measure";
    if (size_t pmd = thp_pmd_size(); pmd != kChunk)
        GTEST_SKIP() << "PMD huge pages are " << pmd / KiB << " KiB (page size "
                     << sysconf(_SC_PAGESIZE) / 1024 << " KiB): a 2 MiB chunk is never one";
    // 10000 small functions fit in the arena's first chunk, which grows in steps and
    // reaches a huge page only by the collapse once whole.
    if (std::string why = read_only_collapse_refused(); !why.empty())
        GTEST_SKIP() << why << ": the arena's first chunk, grown in steps, stays on 4 KiB pages";
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> funcs;
    for (int i = 0; i < 10000; i++) {
        auto code = add_imm(i, 24 + i % 40);
        void *p = jit_arena_alloc(a, code.data(), code.size());
        ASSERT_NE(p, nullptr);
        funcs.push_back(p);
    }
    // Patch every tenth function: /proc/self/mem writes must not split the huge page.
    for (size_t i = 0; i < funcs.size(); i += 10) {
        int32_t imm = -static_cast<int32_t>(i);
        ASSERT_EQ(jit_update(static_cast<uint8_t *>(funcs[i]) + kAddImmOff, &imm, 4), 0);
    }
    for (size_t i = 0; i < funcs.size(); i += 97) {
        ASSERT_EQ(call_int(funcs[i], 1), (i % 10 ? static_cast<int>(i) : -static_cast<int>(i)) + 1);
    }
    auto chunks = chunks_of(funcs);
    HugeShare h = huge_share(chunks);
    ASSERT_GE(h.size_kb, chunks.size() * 2048);
    double share = static_cast<double>(h.huge_kb) / static_cast<double>(chunks.size() * 2048);
    RecordProperty("anon_huge_kb", std::to_string(h.huge_kb));
    std::printf("huge-page share of %zu chunk(s): %.0f%% (%llu of %zu kB)\n", chunks.size(),
                share * 100, static_cast<unsigned long long>(h.huge_kb), chunks.size() * 2048);
    EXPECT_GE(share, 0.5) << "AnonHugePages " << h.huge_kb << " kB over " << chunks.size()
                          << " chunk(s); THP enabled=" << mode
                          << " defrag=" << thp_mode("/sys/kernel/mm/transparent_hugepage/defrag");
    for (void *p : funcs) {
        ASSERT_EQ(jit_free(p), 0);
    }
}

// JIT_ARENA_NO_HUGE_PAGES: no MADV_HUGEPAGE, so with THP in madvise mode no huge pages.
TEST(HugePages, NoHugePagesFlagIsHonoured) {
    if (thp_mode() != "madvise")
        GTEST_SKIP() << "needs THP enabled=madvise, have '" << thp_mode() << "'";
    jit_arena_options o = options(JIT_WRITER_PROC_MEM);
    o.flags |= JIT_ARENA_NO_HUGE_PAGES;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> funcs;
    for (int i = 0; i < 200; i++) {
        auto code = ret_imm(i, 64);
        funcs.push_back(jit_arena_alloc(a, code.data(), code.size()));
        ASSERT_NE(funcs.back(), nullptr);
    }
    HugeShare h = huge_share(chunks_of(funcs));
    EXPECT_EQ(h.huge_kb, 0u);
    for (void *p : funcs) {
        ASSERT_EQ(jit_free(p), 0);
    }
}

}  // namespace
