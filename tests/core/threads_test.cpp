// Threads allocate, write, call and free concurrently, in the same and in different
// size classes; every thread checks its own functions, and the arena checks out at the end.
#include "helpers.h"

#include <atomic>
#include <thread>

using namespace jt;

namespace {

constexpr int kThreads = 4;
constexpr int kIters = 1500;

struct Failures {
    std::atomic<int> alloc{0}, wrong{0}, update{0}, free{0};
};

// Each thread keeps up to 32 live functions returning x + tag and checks all of them.
void run_thread(jit_arena *a, int id, bool same_class, bool call, Failures &f) {
    std::vector<std::pair<void *, int>> live;
    uint32_t x = 1234567u * (id + 1);
    for (int i = 0; i < kIters; i++) {
        x = x * 1103515245u + 12345;
        size_t len = same_class ? 40 : 8 + (x >> 8) % (id == 3 ? run_len(4) : 2000);
        int tag = id * 100000 + i;
        auto code = add_imm(tag, len);
        void *p = jit_arena_alloc(a, code.data(), code.size());
        if (!p) {
            f.alloc++;
            continue;
        }
        live.push_back({p, tag});
        if (i % 4 == 0) {  // patch one
            auto &[q, t] = live[x % live.size()];
            t = -t;
            if (jit_update(static_cast<uint8_t *>(q) + kAddImmOff, &t, 4) != 0)
                f.update++;
        }
        for (auto &[q, t] : live) {
            bool right = call ? call_int(q, 1) == t + 1
                              : std::memcmp(static_cast<uint8_t *>(q) + kAddImmOff, &t, 4) == 0;
            if (!right)
                f.wrong++;
        }
        if (live.size() > 32 || (x >> 20) % 3 == 0) {
            size_t k = (x >> 4) % live.size();
            if (jit_free(live[k].first) != 0)
                f.free++;
            live[k] = live.back();
            live.pop_back();
        }
    }
    for (auto &[q, t] : live)
        if (jit_free(q) != 0)
            f.free++;
}

void run_all(jit_arena *a, bool same_class, bool call) {
    Failures f;
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back(run_thread, a, t, same_class, call, std::ref(f));
    for (auto &t : ts)
        t.join();
    EXPECT_EQ(f.alloc.load(), 0);
    EXPECT_EQ(f.wrong.load(), 0);
    EXPECT_EQ(f.update.load(), 0);
    EXPECT_EQ(f.free.load(), 0);
    EXPECT_TRUE(ArenaOk(a));
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.allocations, 0u);
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.total_allocs, s.total_frees);
}

class Threads : public ::testing::TestWithParam<jit_writer> {};

TEST_P(Threads, SameSizeClass) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    run_all(a, true, can_run_during_writes(GetParam()));
}

TEST_P(Threads, MixedSizes) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    run_all(a, false, can_run_during_writes(GetParam()));
}

// Writes from several threads into different objects of the same page: the writer
// must not let one thread's write end another's (mprotect: RX restored mid-copy).
TEST_P(Threads, ConcurrentWritesToOnePage) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> objs;
    for (int t = 0; t < kThreads; t++) {
        objs.push_back(jit_arena_alloc(a, nullptr, 64));
        ASSERT_NE(objs.back(), nullptr);
        ASSERT_EQ(reinterpret_cast<uintptr_t>(objs.back()) / 4096,
                  reinterpret_cast<uintptr_t>(objs[0]) / 4096)
            << "objects on one page";
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 3000; i++) {
                auto bytes = pattern(64, static_cast<uint32_t>(t * 100000 + i));
                if (jit_update(objs[t], bytes.data(), bytes.size()) != 0 || !same_bytes(objs[t], bytes))
                    failures++;
            }
        });
    for (auto &t : ts)
        t.join();
    EXPECT_EQ(failures.load(), 0);
    for (void *p : objs)
        EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(Writers, Threads,
                         ::testing::Values(JIT_WRITER_PROC_MEM, JIT_WRITER_MEMFD,
                                           JIT_WRITER_MPROTECT),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

TEST(ThreadsDefault, DefaultArenaAndArenaCreationFromManyThreads) {
    Failures f;
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([&f, t] {
            // The default arena is created once, by whichever thread comes first.
            run_thread(jit_default_arena(), t, t % 2 == 0, true, f);
            ArenaHolder own;
            if (!own.get()) {
                f.alloc++;
                return;
            }
            void *p = jit_arena_alloc(own, nullptr, 100);
            if (!p || jit_free(p) != 0)
                f.free++;
        });
    for (auto &t : ts)
        t.join();
    EXPECT_EQ(f.alloc.load() + f.wrong.load() + f.update.load() + f.free.load(), 0);
    EXPECT_TRUE(ArenaOk(jit_default_arena()));
}

// Shrinking and stats readers run alongside allocating threads.
TEST(ThreadsShrink, ShrinkAndStatsConcurrently) {
    jit_arena_options o = options();
    o.retain_bytes = 0;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    std::atomic<bool> stop{false};
    std::thread shrinker([&] {
        while (!stop) {
            jit_arena_shrink(a);
            struct jit_stats s;
            jit_arena_stats(a, &s);
        }
    });
    run_all(a, false, true);
    stop = true;
    shrinker.join();
}

}  // namespace

namespace {
// Growth (arena.cpp, grow_locked) maps its chunk with the buddy lock dropped: while one
// thread is stopped inside the mapping of a new chunk, a thread on another shard still
// gets pages from the arena's chunks. Before, growth held the buddy lock for the whole
// mapping (milliseconds: a huge page faulted in, or a memfd collapsed), and the second
// thread waited for it: this test failed (the second allocation had not finished when
// the pause gave up after 5 s).
std::atomic<int> g_growth_stage{0};  // 1: grower paused inside the mapping, 2: other done
std::atomic<bool> g_other_done_while_paused{false};

void pause_grower(jitalloc::os::Call) {
    g_growth_stage.store(1);
    for (int i = 0; i < 5000 && g_growth_stage.load() != 2; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    g_other_done_while_paused.store(g_growth_stage.load() == 2);
}
}  // namespace

TEST(Threads, GrowthDoesNotStallAnotherShardsAllocations) {
    ArenaHolder a(JIT_WRITER_PROC_MEM);
    ASSERT_NE(a.get(), nullptr);
    auto small = add_imm(5, 40);
    void *first = jit_arena_alloc(a, small.data(), small.size());  // chunk 1, mostly free
    ASSERT_NE(first, nullptr);
    g_growth_stage.store(0);
    g_other_done_while_paused.store(false);
    void *big = nullptr;
    std::thread grower([&] {
        jitalloc::os::Fault f;
        f.nth = 1;
        f.mask = jitalloc::os::mask_of(jitalloc::os::Call::mmap);
        f.pause = pause_grower;
        jitalloc::os::set_fault(f);
        // 2 MiB of pages: chunk 1 has a page in use, so this needs a new chunk.
        big = jit_arena_alloc(a, nullptr, size_t{2} << 20);
    });
    while (g_growth_stage.load() != 1)
        std::this_thread::yield();
    void *other = nullptr;
    std::thread([&] {
        auto code = add_imm(7, 40);
        other = jit_arena_alloc(a, code.data(), code.size());  // a shard of its own
        g_growth_stage.store(2);
    }).join();
    grower.join();
    jitalloc::os::clear_fault();
    EXPECT_TRUE(g_other_done_while_paused.load()) << "the allocation waited for the growth";
    ASSERT_NE(other, nullptr);
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(call_int(other, 1), 8);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(other), 0);
    EXPECT_EQ(jit_free(big), 0);
    EXPECT_EQ(jit_free(first), 0);
    EXPECT_TRUE(ArenaOk(a));
}
