// jitalloc::orc under LLJIT: 10 000 small modules linked into one session and every
// function called; ResourceTracker::remove giving the memory back; links on a thread
// pool with lookups and removals from several threads; a failed link abandoning its
// memory; functions named in the perf map. A strict W^X monitor runs through each test.
#include <jitalloc/orc.hpp>

#include "small_modules.h"
#include "wx_monitor.h"

#include <gtest/gtest.h>

#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/Support/TargetSelect.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

namespace lo = llvm::orc;
using jitalloc::orc::MemoryManager;

namespace {

constexpr size_t MiB = 1024 * 1024;
constexpr uint8_t kTrap = 0xCC;
using IntFn = int (*)(int);

struct Jit {
    std::unique_ptr<MemoryManager> memory;
    std::unique_ptr<lo::LLJIT> jit;

    lo::JITDylib &main() { return jit->getMainJITDylib(); }
    jitalloc::orc::Stats stats() const { return memory->stats(); }

    // The addresses of names, looked up in one go (ORC links them as it likes).
    std::vector<IntFn> lookup_all(const std::vector<std::string> &names) {
        lo::SymbolLookupSet set;
        for (const std::string &n : names)
            set.add(jit->mangleAndIntern(n));
        auto syms = jit->getExecutionSession().lookup(lo::makeJITDylibSearchOrder(&main()), std::move(set));
        std::vector<IntFn> fns;
        if (!syms) {
            ADD_FAILURE() << llvm::toString(syms.takeError());
            return fns;
        }
        for (const std::string &n : names)
            fns.push_back(reinterpret_cast<IntFn>((*syms)[jit->mangleAndIntern(n)].getAddress()));
        return fns;
    }
};

Jit make_jit(unsigned arena_flags = 0, unsigned compile_threads = 0) {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
    Jit j;
    jitalloc::orc::Options o;
    o.arena_flags = JIT_ARENA_IGNORE_ENV | arena_flags;
    j.memory = llvm::cantFail(MemoryManager::Create(o));
    lo::LLJITBuilder b;
    b.setNumCompileThreads(compile_threads);
    // The tests are about linking: the fastest code generator will do.
    auto jtmb = llvm::cantFail(lo::JITTargetMachineBuilder::detectHost());
    jtmb.setCodeGenOptLevel(llvm::CodeGenOpt::None);
    b.setJITTargetMachineBuilder(std::move(jtmb));
    llvm::cantFail(jitalloc::orc::configure(b, *j.memory));
    j.jit = llvm::cantFail(b.create());
    return j;
}

class LljitTest : public ::testing::Test {
protected:
    void SetUp() override { monitor_.start(); }
    void TearDown() override {
        monitor_.stop();
        EXPECT_GT(monitor_.scans(), 0u);
        for (const std::string &v : monitor_.violations())
            ADD_FAILURE() << v;
    }
    orct::WxMonitor monitor_{true};  // the default writer is strict
};

std::vector<std::string> names(unsigned first, unsigned count) {
    std::vector<std::string> v;
    for (unsigned i = first; i < first + count; i++)
        v.push_back(orct::function_name(i));
    return v;
}

TEST_F(LljitTest, TenThousandModulesInOneSession) {
    constexpr unsigned kModules = 10000, kChain = 100;
    Jit j = make_jit();
    const size_t maps_before = rel::read_maps().size();
    auto t0 = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < kModules; i++)
        ASSERT_FALSE(j.jit->addIRModule(orct::small_module(i, kChain)));
    std::vector<IntFn> fns = j.lookup_all(names(0, kModules));
    ASSERT_EQ(fns.size(), kModules);
    auto t1 = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < kModules; i++)
        ASSERT_EQ(fns[i](i % 7), orct::expected_result(i, i % 7, kChain)) << i;
    jitalloc::orc::Stats s = j.stats();
    EXPECT_GE(s.graphs, kModules);
    // Mappings grow with bytes, not graphs: the 10 000 graphs fit in one code chunk and
    // one block of each data kind (any growth of the process's own heap aside).
    EXPECT_EQ(s.code.chunks_mapped, 1u);
    EXPECT_EQ(s.read_write.blocks, 1u);
    EXPECT_LE(s.read_only.blocks, 1u);
    std::set<uintptr_t> holding_code;
    std::vector<rel::Vma> maps = rel::read_maps();
    for (IntFn f : fns)
        for (const rel::Vma &v : maps)
            if (v.start <= reinterpret_cast<uintptr_t>(f) && reinterpret_cast<uintptr_t>(f) < v.end)
                holding_code.insert(v.start);
    EXPECT_EQ(holding_code.size(), 1u) << "the functions are spread over several mappings";
    size_t maps_after = maps.size();
    EXPECT_LT(maps_after, maps_before + 40) << "mappings grew per graph";
    // Data within reach of the code: checked for every function's neighbourhood by the
    // small code model itself (an out-of-range fixup is a link error); here, one chunk.
    std::printf("[ info ] %u modules compiled and linked in %.1f s; %zu -> %zu mappings; code "
                "%" PRIu64 " B in use, RW data %" PRIu64 " B, R data %" PRIu64 " B\n",
                kModules, std::chrono::duration<double>(t1 - t0).count(), maps_before, maps_after,
                s.code.bytes_in_use, s.read_write.bytes_in_use, s.read_only.bytes_in_use);
}

TEST_F(LljitTest, ResourceTrackerRemoveGivesMemoryBack) {
    constexpr unsigned kModules = 500;
    Jit j = make_jit();
    // Warm up: whatever the platform links once is part of the baseline.
    ASSERT_FALSE(j.jit->addIRModule(orct::small_module(100000, 0)));
    ASSERT_EQ(j.lookup_all(names(100000, 1)).size(), 1u);
    const jitalloc::orc::Stats before = j.stats();
    std::vector<lo::ResourceTrackerSP> trackers;
    for (unsigned i = 0; i < kModules; i++) {
        trackers.push_back(j.main().createResourceTracker());
        ASSERT_FALSE(j.jit->addIRModule(trackers.back(), orct::small_module(i, 0)));
    }
    std::vector<IntFn> fns = j.lookup_all(names(0, kModules));
    ASSERT_EQ(fns.size(), kModules);
    for (unsigned i = 0; i < kModules; i++)
        ASSERT_EQ(fns[i](1), static_cast<int>(i) + 1);
    const jitalloc::orc::Stats linked = j.stats();
    EXPECT_EQ(linked.graphs, before.graphs + kModules);
    EXPECT_GT(linked.code.bytes_in_use, before.code.bytes_in_use);
    EXPECT_GT(linked.read_write.bytes_in_use, before.read_write.bytes_in_use);

    // Remove the even half: their code is trap-filled, the odd half still runs.
    for (unsigned i = 0; i < kModules; i += 2)
        ASSERT_FALSE(trackers[i]->remove());
    for (unsigned i = 0; i < kModules; i++) {
        auto *code = reinterpret_cast<const uint8_t *>(fns[i]);
        if (i % 2 == 0)
            EXPECT_EQ(code[0], kTrap) << i;
        else
            EXPECT_EQ(fns[i](2), static_cast<int>(i) + 2) << i;
    }
    EXPECT_EQ(j.stats().graphs, before.graphs + kModules / 2);
    for (unsigned i = 1; i < kModules; i += 2)
        ASSERT_FALSE(trackers[i]->remove());
    const jitalloc::orc::Stats after = j.stats();
    EXPECT_EQ(after.graphs, before.graphs);
    EXPECT_EQ(after.code.allocations, before.code.allocations);
    EXPECT_EQ(after.code.bytes_in_use, before.code.bytes_in_use);
    EXPECT_EQ(after.read_write.bytes_in_use, before.read_write.bytes_in_use);
    EXPECT_EQ(after.read_only.bytes_in_use, before.read_only.bytes_in_use);
    EXPECT_LE(after.read_write.bytes_resident, before.read_write.bytes_resident);
    // A removed name can be defined again, in the freed memory.
    ASSERT_FALSE(j.jit->addIRModule(orct::small_module(0, 0)));
    EXPECT_EQ(j.lookup_all(names(0, 1)).at(0)(5), 5);
}

// LLJIT with a compile thread pool: ORC materializes (compiles, allocates, finalizes)
// on pool threads while four threads add, look up, call and remove modules.
TEST_F(LljitTest, ConcurrentLinksLookupsAndRemovals) {
    constexpr unsigned kThreads = 4, kPerThread = 150;
    Jit j = make_jit(0, 2);
    const jitalloc::orc::Stats before = j.stats();
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < kThreads; t++)
        threads.emplace_back([&, t] {
            unsigned first = (t + 1) * 10000;
            std::vector<lo::ResourceTrackerSP> trackers;
            for (unsigned i = first; i < first + kPerThread; i++) {
                trackers.push_back(j.main().createResourceTracker());
                if (llvm::Error e = j.jit->addIRModule(trackers.back(), orct::small_module(i, 0))) {
                    llvm::consumeError(std::move(e));
                    bad++;
                }
            }
            for (unsigned i = first; i < first + kPerThread; i++) {
                auto addr = j.jit->lookup(orct::function_name(i));
                if (!addr) {
                    llvm::consumeError(addr.takeError());
                    bad++;
                } else if (addr->toPtr<IntFn>()(3) != static_cast<int>(i) + 3) {
                    bad++;
                }
            }
            for (auto &rt : trackers)
                if (llvm::Error e = rt->remove()) {
                    llvm::consumeError(std::move(e));
                    bad++;
                }
        });
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(bad, 0);
    const jitalloc::orc::Stats after = j.stats();
    EXPECT_EQ(after.graphs, before.graphs);
    EXPECT_EQ(after.total_graphs, before.total_graphs + kThreads * kPerThread);
    EXPECT_EQ(after.code.allocations, before.code.allocations);
    EXPECT_EQ(after.read_write.bytes_in_use, before.read_write.bytes_in_use);
}

// A graph whose external symbol cannot be resolved is abandoned after allocation:
// nothing of it stays.
TEST_F(LljitTest, FailedLinkAbandonsItsMemory) {
    Jit j = make_jit();
    ASSERT_FALSE(j.jit->addIRModule(orct::small_module(1, 0)));
    ASSERT_EQ(j.lookup_all(names(1, 1)).size(), 1u);
    const jitalloc::orc::Stats before = j.stats();
    ASSERT_FALSE(j.jit->addIRModule(orct::parse_module(
        "declare i32 @jitalloc_no_such_function(i32)\n"
        "define i32 @unlinkable(i32 %x) {\n"
        "  %r = call i32 @jitalloc_no_such_function(i32 %x)\n  ret i32 %r\n}\n",
        "unlinkable")));
    auto addr = j.jit->lookup("unlinkable");
    ASSERT_FALSE(!!addr);
    llvm::consumeError(addr.takeError());
    const jitalloc::orc::Stats after = j.stats();
    EXPECT_EQ(after.graphs, before.graphs);
    EXPECT_EQ(after.total_graphs, before.total_graphs + 1);
    EXPECT_EQ(after.code.allocations, before.code.allocations);
    EXPECT_EQ(after.read_write.bytes_in_use, before.read_write.bytes_in_use);
}

// With JIT_ARENA_PERF_MAP the arena names each code segment after its function.
TEST_F(LljitTest, PerfMapNamesJitFunctions) {
    const std::string map = "/tmp/perf-" + std::to_string(getpid()) + ".map";
    {
        Jit j = make_jit(JIT_ARENA_PERF_MAP);
        ASSERT_FALSE(j.jit->addIRModule(orct::parse_module(
            "define i32 @jitalloc_perf_visible(i32 %x) {\n  ret i32 %x\n}\n", "perf")));
        auto addr = j.jit->lookup("jitalloc_perf_visible");
        ASSERT_TRUE(!!addr) << llvm::toString(addr.takeError());
        std::ifstream f(map);
        std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        char start[32];
        std::snprintf(start, sizeof start, "%" PRIxPTR " ", addr->getValue());
        EXPECT_NE(text.find(std::string(start)), std::string::npos) << text;
        EXPECT_NE(text.find(" jitalloc_perf_visible\n"), std::string::npos) << text;
    }
    unlink(map.c_str());
}

}  // namespace
