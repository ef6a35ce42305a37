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
