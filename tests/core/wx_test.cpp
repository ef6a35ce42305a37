// W^X: no mapping of the process is ever writable and executable at once. A monitor
// thread scans /proc/self/maps without pause while worker threads allocate, write
// (jit_update), call and free code, for every writer strategy.
#include "helpers.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>

using namespace jt;

namespace {

struct Monitor {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> scans{0};
    std::mutex lock;
    std::vector<std::string> violations;  // guarded by lock
    std::thread thread;

    void start() {
        thread = std::thread([this] {
            do {
                auto bad = wx_mappings();
                if (!bad.empty()) {
                    std::lock_guard<std::mutex> g(lock);
                    if (violations.size() < 20)
                        violations.insert(violations.end(), bad.begin(), bad.end());
                }
                scans.fetch_add(1, std::memory_order_relaxed);
            } while (!stop.load(std::memory_order_relaxed));
        });
    }
    void finish() {
        // At least one full scan after every worker is done.
        uint64_t seen = scans.load();
        while (scans.load() < seen + 2)
            std::this_thread::yield();
        stop = true;
        thread.join();
    }
};

void worker(jit_arena *a, int id, bool call, std::atomic<int> &errors) {
    const size_t kLens[] = {8, 40, 100, 700, 3000, 9000, run_len(), run_len(6)};
    std::vector<void *> live;
    for (int i = 0; i < 600; i++) {
        size_t len = kLens[(i + id) % 8];
        auto code = add_imm(id * 1000 + i, len);
        void *p = jit_arena_alloc(a, code.data(), code.size());
        if (!p) {
            errors++;
            continue;
        }
        if (call && call_int(p, 1) != id * 1000 + i + 1)
            errors++;
        int32_t imm = -i;
        if (jit_update(static_cast<uint8_t *>(p) + kAddImmOff, &imm, 4) != 0)
            errors++;
        if (call && call_int(p, 1) != 1 - i)
            errors++;
        live.push_back(p);
        if (live.size() > 16 || i % 3 == 0) {
            size_t k = static_cast<size_t>(i * 7 + id) % live.size();
            if (jit_free(live[k]) != 0)
                errors++;
            live[k] = live.back();
            live.pop_back();
        }
    }
    for (void *p : live)
        if (jit_free(p) != 0)
            errors++;
}

class WX : public ::testing::TestWithParam<jit_writer> {};

TEST_P(WX, NoMappingIsEverWritableAndExecutable) {
    ASSERT_TRUE(wx_mappings().empty()) << "W+X mapping before the test: " << wx_mappings()[0];
    jit_arena_options o = options(GetParam());
    o.retain_bytes = 0;  // chunks come and go too
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());

    Monitor mon;
    mon.start();
    while (mon.scans.load() == 0)
        std::this_thread::yield();
    std::atomic<int> errors{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 3; t++)
        workers.emplace_back(worker, a.get(), t, can_run_during_writes(GetParam()), std::ref(errors));
    for (auto &t : workers)
        t.join();
    // A large allocation and a shrink, also under the monitor.
    void *big = jit_arena_alloc(a, nullptr, 5 * MiB);
    EXPECT_NE(big, nullptr);
    EXPECT_EQ(jit_free(big), 0);
    jit_arena_shrink(a);
    mon.finish();

    EXPECT_EQ(errors.load(), 0);
    EXPECT_GT(mon.scans.load(), 2u);
    for (const auto &v : mon.violations) {
        ADD_FAILURE() << "W+X mapping: " << v;
    }
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(stats_of(a).allocations, 0u);
}

// The first allocations of fresh arenas, each making a chunk born holding its code
// (written with the chunk's trap fill while the new part is not executable yet, see
// src/arena/arena.cpp grow_locked), from two threads at once, under the monitor.
TEST_P(WX, FirstAllocationsOfFreshArenasNeverWritableAndExecutable) {
    Monitor mon;
    mon.start();
    while (mon.scans.load() == 0)
        std::this_thread::yield();
    std::atomic<int> errors{0};
    auto make = [&](int id) {
        for (int i = 0; i < 40; i++) {
            ArenaHolder a(GetParam());
            const size_t len = i % 3 == 0 ? 100 : i % 3 == 1 ? 6000 : 3 * MiB;
            auto code = ret_imm(id * 100 + i, len);
            void *p = a.get() ? jit_arena_alloc(a, code.data(), code.size()) : nullptr;
            if (!p || !same_bytes(p, code) || call_int(p) != id * 100 + i)
                errors++;
        }
    };
    std::thread other(make, 1);
    make(0);
    other.join();
    mon.finish();
    EXPECT_EQ(errors.load(), 0);
    for (const auto &v : mon.violations)
        ADD_FAILURE() << "W+X mapping: " << v;
}

INSTANTIATE_TEST_SUITE_P(All, WX, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

// The persistent alias writer keeps a RW view of code memory (hence strict_wx == 0),
// but that view is never executable and the code view never writable.
TEST(WXPersistentAlias, AliasIsWritableButNeverExecutable) {
    ArenaHolder a(JIT_WRITER_PERSISTENT_ALIAS);
    ASSERT_NE(a.get(), nullptr);
    auto code = ret_imm(5, 64);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    uintptr_t base = chunk_base(p);
    bool saw_code_view = false, saw_alias = false;
    for (const Mapping &m : read_maps()) {
        if (m.start <= base && base < m.end) {
            saw_code_view = true;
            EXPECT_TRUE(m.executable()) << m.perms;
            EXPECT_FALSE(m.writable()) << m.perms;
        } else if (m.path.find("jitalloc") != std::string::npos && m.writable()) {
            saw_alias = true;
            EXPECT_FALSE(m.executable()) << m.perms << " " << m.path;
        }
    }
    EXPECT_TRUE(saw_code_view);
    EXPECT_TRUE(saw_alias) << "persistent alias writer without a RW view?";
    EXPECT_TRUE(wx_mappings().empty());
    EXPECT_EQ(jit_free(p), 0);
}

// What the README says where the API is introduced: the pointer jit_alloc returns is
// read-only, a store through it faults (write with jit_update instead), for every writer.
TEST(WXStoreDeathTest, StoreThroughTheReturnedPointerFaults) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    static jit_writer w;
    for (jit_writer each : kAllWriters) {
        w = each;
        SCOPED_TRACE(writer_name(w));
        // Exit 42 from a SIGSEGV handler: the sanitizers would turn a plain fault into
        // a report and exit 1.
        EXPECT_EXIT(
            {
                struct sigaction sa {};
                sa.sa_handler = [](int) { std::_Exit(42); };
                sigaction(SIGSEGV, &sa, nullptr);
                ArenaHolder a(w);
                auto code = ret_imm(1);
                auto *p = static_cast<volatile uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
                if (!p)
                    std::_Exit(3);
                p[0] = 0xc3;  // must fault
                std::_Exit(0);
            },
            ::testing::ExitedWithCode(42), "");
    }
}

// Code views of the strict writers are read-only and executable between writes.
TEST(WXStrict, CodeViewIsReadExecOnly) {
    for (jit_writer w : kAllWriters) {
        SCOPED_TRACE(writer_name(w));
        ArenaHolder a(w);
        ASSERT_NE(a.get(), nullptr);
        void *p = jit_arena_alloc(a, nullptr, 100);
        ASSERT_NE(p, nullptr);
        auto code = ret_imm(1);
        ASSERT_EQ(jit_update(p, code.data(), code.size()), 0);
        auto addr = reinterpret_cast<uintptr_t>(p);
        bool found = false;
        for (const Mapping &m : read_maps())
            if (m.start <= addr && addr < m.end) {
                found = true;
                EXPECT_EQ(m.perms.substr(0, 3), "r-x");
            }
        EXPECT_TRUE(found);
        EXPECT_EQ(jit_free(p), 0);
    }
}

}  // namespace
