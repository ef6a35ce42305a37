// jitalloc::orc::MemoryManager driven directly through JITLinkMemoryManager with
// hand-built LinkGraphs: where each segment goes and with which protection, what is
// written when, allocation actions, deallocate / abandon giving everything back, bad
// graphs refused with nothing left behind. A W^X monitor runs through every test; the
// kernel writes of the strict writers are counted (tests/common/kernel_writes.h).
#include <jitalloc/orc.hpp>

#include "wx_monitor.h"
#include "../common/kernel_writes.h"

#include <gtest/gtest.h>

#include <llvm/ExecutionEngine/JITLink/JITLink.h>
#include <llvm/ExecutionEngine/Orc/Shared/WrapperFunctionUtils.h>

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <set>
#include <thread>

namespace jl = llvm::jitlink;
namespace lo = llvm::orc;
namespace kw = jt_kernel_writes;
using jitalloc::orc::MemoryManager;
using namespace llvm::BitmaskEnumDetail;  // MemProt flags combine with |, as inside LLVM

namespace {

constexpr size_t KiB = 1024, MiB = 1024 * 1024;
constexpr uint8_t kTrap = 0xCC;

// The strict monitor for writers that never make a writable view of code (temp_alias
// maps one for the length of a write), W+X only for the others.
bool strict_writer(jitalloc::Writer w) {
    return w == jitalloc::Writer::ProcMem || w == jitalloc::Writer::Memfd;
}

std::unique_ptr<MemoryManager> make_manager(jitalloc::Writer w = jitalloc::Writer::Auto) {
    jitalloc::orc::Options o;
    o.writer = w;
    o.arena_flags = JIT_ARENA_IGNORE_ENV;
    auto mm = MemoryManager::Create(o);
    if (!mm) {
        ADD_FAILURE() << llvm::toString(mm.takeError());
        return nullptr;
    }
    return std::move(*mm);
}

// "rwx" permissions of the mapping holding p (private or shared alike), "" if none.
std::string perms_of(const void *p) {
    for (const rel::Vma &v : rel::read_maps())
        if (v.start <= reinterpret_cast<uintptr_t>(p) && reinterpret_cast<uintptr_t>(p) < v.end)
            return std::string(v.perms, 3);
    return "";
}

uint64_t distance(const void *a, const void *b) {
    auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
    return x > y ? x - y : y - x;
}

std::atomic<int> g_finalize_runs{0}, g_dealloc_runs{0};

lo::shared::CWrapperFunctionResult count_finalize(const char *data, size_t size) {
    return lo::shared::WrapperFunction<lo::shared::SPSError()>::handle(data, size, [] {
               g_finalize_runs++;
               return llvm::Error::success();
           }).release();
}

lo::shared::CWrapperFunctionResult count_dealloc(const char *data, size_t size) {
    return lo::shared::WrapperFunction<lo::shared::SPSError()>::handle(data, size, [] {
               g_dealloc_runs++;
               return llvm::Error::success();
           }).release();
}

lo::shared::CWrapperFunctionResult failing_action(const char *data, size_t size) {
    return lo::shared::WrapperFunction<lo::shared::SPSError()>::handle(data, size, [] {
               return llvm::make_error<llvm::StringError>("refused", llvm::inconvertibleErrorCode());
           }).release();
}

lo::shared::WrapperFunctionCall call_to(lo::shared::CWrapperFunctionResult (*fn)(const char *, size_t)) {
    return llvm::cantFail(lo::shared::WrapperFunctionCall::Create<lo::shared::SPSArgList<>>(
        lo::ExecutorAddr::fromPtr(fn)));
}

// x86-64 `mov eax, imm32; ret`, padded with int3.
std::vector<char> ret_code(int32_t imm, size_t len) {
    std::vector<char> v(len, static_cast<char>(kTrap));
    v[0] = static_cast<char>(0xb8);
    std::memcpy(&v[1], &imm, 4);
    v[5] = static_cast<char>(0xc3);
    return v;
}

// A graph with one block in each kind of segment the manager handles.
struct TestGraph {
    std::unique_ptr<jl::LinkGraph> G;
    jl::Block *code = nullptr, *big_code = nullptr, *rodata = nullptr, *data = nullptr,
              *bss = nullptr, *finalize_code = nullptr;
    std::vector<char> code_bytes, big_code_bytes, rodata_bytes, data_bytes;

    explicit TestGraph(const char *name, int32_t value) {
        G = std::make_unique<jl::LinkGraph>(name, llvm::Triple("x86_64-unknown-linux-gnu"), 8,
                                            llvm::support::little, jl::getGenericEdgeKindName);
        auto &text = G->createSection(".text", lo::MemProt::Read | lo::MemProt::Exec);
        code_bytes = ret_code(value, 100);
        code = &G->createContentBlock(text, code_bytes, lo::ExecutorAddr(0x1000), 16, 0);
        big_code_bytes = ret_code(value + 1, 3 * 4096 + 100);  // over-aligned, multi-page
        big_code = &G->createContentBlock(text, big_code_bytes, lo::ExecutorAddr(0x2000), 4096, 0);
        G->addDefinedSymbol(*code, 0, "test_function", 6, jl::Linkage::Strong, jl::Scope::Default,
                            true, true);
        auto &ro = G->createSection(".rodata", lo::MemProt::Read);
        rodata_bytes.assign(300, 'r');
        rodata = &G->createContentBlock(ro, rodata_bytes, lo::ExecutorAddr(0x10000), 8192, 0);
        auto &rw = G->createSection(".data", lo::MemProt::Read | lo::MemProt::Write);
        data_bytes.assign(40, 'd');
        data = &G->createContentBlock(rw, data_bytes, lo::ExecutorAddr(0x20000), 8, 0);
        bss = &G->createZeroFillBlock(rw, 5000, lo::ExecutorAddr(0x30000), 64, 0);
        auto &fin = G->createSection(".finalize_text", lo::MemProt::Read | lo::MemProt::Exec);
        fin.setMemDeallocPolicy(lo::MemDeallocPolicy::Finalize);
        finalize_code = &G->createContentBlock(fin, code_bytes, lo::ExecutorAddr(0x40000), 16, 0);
    }
    template <class T = uint8_t>
    T *at(jl::Block *b) const {
        return b->getAddress().toPtr<T *>();
    }
};

class ManagerTest : public ::testing::TestWithParam<jitalloc::Writer> {
protected:
    void SetUp() override {
        monitor_ = std::make_unique<orct::WxMonitor>(strict_writer(GetParam()));
        monitor_->start();
        mm_ = make_manager(GetParam());
        ASSERT_NE(mm_, nullptr);
    }
    void TearDown() override {
        mm_.reset();
        monitor_->stop();
        EXPECT_GT(monitor_->scans(), 0u);
        for (const std::string &v : monitor_->violations())
            ADD_FAILURE() << v;
    }
    std::unique_ptr<orct::WxMonitor> monitor_;
    std::unique_ptr<MemoryManager> mm_;
};

TEST_P(ManagerTest, SegmentsArePlacedProtectedAndWrittenAtFinalize) {
    TestGraph t("segments", 1234);
    t.G->allocActions().push_back({call_to(count_finalize), call_to(count_dealloc)});
    const int finalized_before = g_finalize_runs, deallocated_before = g_dealloc_runs;
    auto alloc = mm_->allocate(nullptr, *t.G);
    ASSERT_TRUE(!!alloc) << llvm::toString(alloc.takeError());

    // Laid out: alignment kept, everything within +-2 GiB of the code.
    uint8_t *code = t.at(t.code), *big = t.at(t.big_code), *ro = t.at(t.rodata),
            *rw = t.at(t.data), *bss = t.at(t.bss);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % 4096, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(ro) % 8192, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(bss) % 64, 0u);
    for (const uint8_t *p : {big, ro, rw, bss, t.at(t.finalize_code)})
        EXPECT_LT(distance(code, p), (uint64_t{2} << 30) - 32 * MiB);
    // Before finalize: code is still trap-filled and read-only, R data not there yet;
    // RW data is written in place (zero-fill reads as zero).
    EXPECT_EQ(code[0], kTrap);
    EXPECT_EQ(perms_of(code), "r-x");
    EXPECT_EQ(perms_of(ro), "r--");
    EXPECT_EQ(ro[0], 0);
    EXPECT_EQ(std::memcmp(rw, t.data_bytes.data(), t.data_bytes.size()), 0);
    EXPECT_EQ(perms_of(rw), "rw-");
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(bss[i], 0) << i;
    EXPECT_EQ(g_finalize_runs, finalized_before);
    // The code segments are allocations of the graph's batch: not live before finalize.
    EXPECT_EQ(mm_->stats().code.allocations, 0u);
    EXPECT_EQ(jit_size(code), 0u);

    const uint64_t writes_before = kw::count();
    auto fin = (*alloc)->finalize();
    const uint64_t finalize_writes = kw::count() - writes_before;
    ASSERT_TRUE(!!fin) << llvm::toString(fin.takeError());
    // .text (a page run) and .finalize_text (a slab object) are not adjacent: one write
    // each in one commit, and one trap fill when .finalize_text is freed at its end. R
    // data is copied in by the heap, not by a kernel write.
    if (strict_writer(GetParam())) {
        EXPECT_EQ(finalize_writes, 3u);
    }
    EXPECT_EQ(std::memcmp(code, t.code_bytes.data(), t.code_bytes.size()), 0);
    EXPECT_EQ(std::memcmp(big, t.big_code_bytes.data(), t.big_code_bytes.size()), 0);
    EXPECT_EQ(std::memcmp(ro, t.rodata_bytes.data(), t.rodata_bytes.size()), 0);
    EXPECT_EQ(perms_of(code), "r-x");
    EXPECT_EQ(perms_of(ro), "r--");
    EXPECT_EQ(perms_of(big), "r-x");
    EXPECT_EQ(reinterpret_cast<int (*)()>(code)(), 1234);
    EXPECT_EQ(reinterpret_cast<int (*)()>(big)(), 1235);
    EXPECT_EQ(g_finalize_runs, finalized_before + 1);
    EXPECT_EQ(g_dealloc_runs, deallocated_before);
    // The finalize-lifetime segment is gone already: its memory holds traps again.
    EXPECT_EQ(t.at(t.finalize_code)[0], kTrap);
    jitalloc::orc::Stats s = mm_->stats();
    EXPECT_EQ(s.graphs, 1u);
    EXPECT_EQ(s.code.allocations, 1u);  // .text; .finalize_text is gone
    EXPECT_GT(s.read_only.bytes_in_use, 0u);
    EXPECT_GT(s.read_write.bytes_in_use, 5000u);

    ASSERT_FALSE(mm_->deallocate(std::move(*fin)));
    EXPECT_EQ(g_dealloc_runs, deallocated_before + 1);
    EXPECT_EQ(code[0], kTrap);
    EXPECT_EQ(big[0], kTrap);
    s = mm_->stats();
    EXPECT_EQ(s.graphs, 0u);
    EXPECT_EQ(s.code.allocations, 0u);
    EXPECT_EQ(s.read_only.bytes_in_use, 0u);
    EXPECT_EQ(s.read_write.bytes_in_use, 0u);
}

TEST_P(ManagerTest, AbandonFreesEverythingAndRunsNoAction) {
    TestGraph t("abandoned", 7);
    t.G->allocActions().push_back({call_to(count_finalize), call_to(count_dealloc)});
    const int finalized_before = g_finalize_runs, deallocated_before = g_dealloc_runs;
    auto alloc = mm_->allocate(nullptr, *t.G);
    ASSERT_TRUE(!!alloc) << llvm::toString(alloc.takeError());
    EXPECT_EQ(mm_->stats().graphs, 1u);
    uint8_t *code = t.at(t.code);
    std::promise<llvm::Error> done;
    // The code was never written: giving it back writes nothing.
    const uint64_t writes = kw::made_by([&] {
        (*alloc)->abandon([&](llvm::Error e) { done.set_value(std::move(e)); });
    });
    EXPECT_FALSE(done.get_future().get());
    EXPECT_EQ(writes, 0u);
    jitalloc::orc::Stats s = mm_->stats();
    EXPECT_EQ(s.graphs, 0u);
    EXPECT_EQ(s.code.allocations, 0u);
    EXPECT_EQ(s.read_only.bytes_in_use + s.read_write.bytes_in_use, 0u);
    EXPECT_EQ(code[0], kTrap);
    EXPECT_EQ(g_finalize_runs, finalized_before);
    EXPECT_EQ(g_dealloc_runs, deallocated_before);
}

TEST_P(ManagerTest, FailedFinalizeActionFreesTheGraph) {
    TestGraph t("refused", 7);
    t.G->allocActions().push_back({call_to(count_finalize), call_to(count_dealloc)});
    t.G->allocActions().push_back({call_to(failing_action), {}});
    const int deallocated_before = g_dealloc_runs;
    auto alloc = mm_->allocate(nullptr, *t.G);
    ASSERT_TRUE(!!alloc) << llvm::toString(alloc.takeError());
    auto fin = (*alloc)->finalize();
    ASSERT_FALSE(!!fin);
    EXPECT_NE(llvm::toString(fin.takeError()).find("refused"), std::string::npos);
    // The action that had run is undone; nothing of the graph is left.
    EXPECT_EQ(g_dealloc_runs, deallocated_before + 1);
    jitalloc::orc::Stats s = mm_->stats();
    EXPECT_EQ(s.graphs, 0u);
    EXPECT_EQ(s.code.allocations, 0u);
    EXPECT_EQ(s.read_only.bytes_in_use + s.read_write.bytes_in_use, 0u);
}

// Many graphs share pages: a thousand small graphs take a few code chunks and data
// blocks, not a mapping (or a page) each; freeing them all gives the pages back.
TEST_P(ManagerTest, SmallGraphsSharePagesAndGiveThemBack) {
    std::vector<std::unique_ptr<jl::LinkGraph>> graphs;
    std::vector<jl::JITLinkMemoryManager::FinalizedAlloc> allocs;
    std::vector<uintptr_t> placed;  // every block of every graph
    std::vector<char> code = ret_code(0, 48), ro(24, 'r'), rw(40, 'w');
    for (int i = 0; i < 1000; i++) {
        auto G = std::make_unique<jl::LinkGraph>("small" + std::to_string(i),
                                                 llvm::Triple("x86_64-unknown-linux-gnu"), 8,
                                                 llvm::support::little, jl::getGenericEdgeKindName);
        jl::Block *blocks[] = {
            &G->createContentBlock(G->createSection(".text", lo::MemProt::Read | lo::MemProt::Exec),
                                   code, lo::ExecutorAddr(0x1000), 16, 0),
            &G->createContentBlock(G->createSection(".got", lo::MemProt::Read), ro,
                                   lo::ExecutorAddr(0x2000), 8, 0),
            &G->createContentBlock(G->createSection(".data", lo::MemProt::Read | lo::MemProt::Write),
                                   rw, lo::ExecutorAddr(0x3000), 8, 0)};
        auto alloc = mm_->allocate(nullptr, *G);
        ASSERT_TRUE(!!alloc) << llvm::toString(alloc.takeError());
        auto fin = (*alloc)->finalize();
        ASSERT_TRUE(!!fin) << llvm::toString(fin.takeError());
        for (jl::Block *b : blocks)
            placed.push_back(b->getAddress().getValue());
        allocs.push_back(std::move(*fin));
        graphs.push_back(std::move(G));
    }
    jitalloc::orc::Stats s = mm_->stats();
    EXPECT_EQ(s.code.chunks_mapped, 1u);
    EXPECT_EQ(s.read_only.blocks, 1u);
    EXPECT_EQ(s.read_write.blocks, 1u);
    EXPECT_LE(s.read_only.bytes_resident, 8 * 4 * KiB);   // 1000 x 32 B: 8 pages
    EXPECT_LE(s.read_write.bytes_resident, 12 * 4 * KiB); // 1000 x 48 B: 12 pages
    // The 3000 segments live in three mappings: code, R data, RW data.
    std::set<uintptr_t> holding;
    for (const rel::Vma &v : rel::read_maps())
        for (uintptr_t a : placed)
            if (v.start <= a && a < v.end)
                holding.insert(v.start);
    EXPECT_EQ(holding.size(), 3u);
    ASSERT_FALSE(mm_->deallocate(std::move(allocs)));
    s = mm_->stats();
    EXPECT_EQ(s.graphs, 0u);
    EXPECT_EQ(s.read_only.bytes_resident + s.read_write.bytes_resident, 0u);
    EXPECT_GT(mm_->shrink(), 0u);
    s = mm_->stats();
    EXPECT_EQ(s.code.chunks_mapped + s.read_only.blocks + s.read_write.blocks, 0u);
    EXPECT_EQ(s.code.bytes_mapped + s.read_only.bytes_mapped + s.read_write.bytes_mapped, 0u);
}

TEST_P(ManagerTest, WritableExecutableSegmentIsRefused) {
    auto G = std::make_unique<jl::LinkGraph>("wx", llvm::Triple("x86_64-unknown-linux-gnu"), 8,
                                             llvm::support::little, jl::getGenericEdgeKindName);
    std::vector<char> code = ret_code(1, 16);
    G->createContentBlock(G->createSection(".text", lo::MemProt::Read | lo::MemProt::Exec), code,
                          lo::ExecutorAddr(0x1000), 16, 0);
    G->createContentBlock(
        G->createSection(".wxtext", lo::MemProt::Read | lo::MemProt::Write | lo::MemProt::Exec),
        code, lo::ExecutorAddr(0x2000), 16, 0);
    auto alloc = mm_->allocate(nullptr, *G);
    ASSERT_FALSE(!!alloc);
    std::string why = llvm::toString(alloc.takeError());
    EXPECT_NE(why.find("writable and executable"), std::string::npos) << why;
    jitalloc::orc::Stats s = mm_->stats();
    EXPECT_EQ(s.graphs, 0u);
    EXPECT_EQ(s.code.allocations, 0u);
}

// ORC links on a thread pool: graphs allocated, finalized, called and freed from four
// threads at once, sharing chunks, data pages and the R pages' protection flips.
TEST_P(ManagerTest, ConcurrentGraphs) {
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 150; i++) {
                int value = t * 1000 + i;
                TestGraph g("concurrent", value);
                auto alloc = mm_->allocate(nullptr, *g.G);
                if (!alloc) {
                    llvm::consumeError(alloc.takeError());
                    bad++;
                    continue;
                }
                auto fin = (*alloc)->finalize();
                if (!fin) {
                    llvm::consumeError(fin.takeError());
                    bad++;
                    continue;
                }
                if (reinterpret_cast<int (*)()>(g.at(g.code))() != value ||
                    std::memcmp(g.at(g.rodata), g.rodata_bytes.data(), g.rodata_bytes.size()) != 0)
                    bad++;
                if (llvm::Error e = mm_->deallocate(std::move(*fin))) {
                    llvm::consumeError(std::move(e));
                    bad++;
                }
            }
        });
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(bad, 0);
    jitalloc::orc::Stats s = mm_->stats();
    EXPECT_EQ(s.graphs, 0u);
    EXPECT_EQ(s.total_graphs, 600u);
    EXPECT_EQ(s.code.allocations, 0u);
    EXPECT_EQ(s.read_only.bytes_in_use + s.read_write.bytes_in_use, 0u);
}

INSTANTIATE_TEST_SUITE_P(Writers, ManagerTest,
                         ::testing::Values(jitalloc::Writer::ProcMem, jitalloc::Writer::Memfd,
                                           jitalloc::Writer::TempAlias,
                                           jitalloc::Writer::PersistentAlias,
                                           jitalloc::Writer::Mprotect),
                         [](const auto &info) {
                             return std::string(jit_writer_name(static_cast<jit_writer>(info.param)));
                         });

TEST(Manager, BadWriterIsAnError) {
    jitalloc::orc::Options o;
    o.writer = static_cast<jitalloc::Writer>(99);
    auto mm = MemoryManager::Create(o);
    ASSERT_FALSE(!!mm);
    EXPECT_EQ(llvm::errorToErrorCode(mm.takeError()), std::errc::invalid_argument);
}

}  // namespace
