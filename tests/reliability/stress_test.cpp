// Concurrency stress (issue 6, part 3): 2..8 threads doing alloc / call / update / free /
// shrink / stats on one arena for a fixed number of operations, handing allocations to
// each other, while a monitor thread scans /proc/self/maps throughout and fails on any
// writable + executable mapping. Runs under ThreadSanitizer in CI.
//
//   REL_STRESS_OPS   operations per thread (default 6000; 1500 under sanitizers)
#include "rel_common.h"
#include "../common/host_code.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr long kDefaultOps = 1500;
#else
constexpr long kDefaultOps = 6000;
#endif

long ops_per_thread() {
    const char *e = std::getenv("REL_STRESS_OPS");
    return e ? std::atol(e) : kDefaultOps;
}

struct Fn {
    uint8_t *p;
    size_t len;
    uint32_t imm;
};

// Returns imm, then filler up to len.
std::vector<uint8_t> code_for(uint32_t imm, size_t len) {
    return jt_code::ret_imm(static_cast<int32_t>(imm), len);
}

// (writer, threads, extra arena flags)
class Stress : public ::testing::TestWithParam<std::tuple<jit_writer, int, unsigned>> {};

TEST_P(Stress, ThreadsWithWxMonitor) {
    const jit_writer w = std::get<0>(GetParam());
    const int nthreads = std::get<1>(GetParam());
    // The mprotect writer makes the page non-executable while it writes: other threads
    // may not run code on it then (documented), so that variant reads instead of calls.
    const bool can_call = w != JIT_WRITER_MPROTECT;
    jit_arena *a = rel::make_arena(w, JIT_PLACE_NEAR_LIBRARY,
                                   JIT_ARENA_IGNORE_ENV | std::get<2>(GetParam()),
                                   JIT_DEFAULT_RETAIN_BYTES);
    ASSERT_NE(a, nullptr) << std::strerror(errno);

    std::atomic<bool> done{false};
    std::atomic<long> scans{0};
    std::mutex wx_lock;
    std::string wx_found;
    std::thread monitor([&] {
        while (!done.load()) {
            std::string s = rel::find_wx();
            if (!s.empty()) {
                std::lock_guard<std::mutex> g(wx_lock);
                wx_found = s;
            }
            scans++;
        }
    });

    std::mutex q_lock;
    std::deque<Fn> handoff;  // allocations passed between threads
    std::atomic<long> errors{0}, calls{0};
    std::mutex err_lock;
    std::string first_error;
    auto report = [&](const std::string &what) {
        errors++;
        std::lock_guard<std::mutex> g(err_lock);
        if (first_error.empty())
            first_error = what;
    };

    const long nops = ops_per_thread();
    auto worker = [&](int id) {
        std::mt19937 rng(1234u + static_cast<unsigned>(id));
        std::vector<Fn> mine;
        auto check_fn = [&](const Fn &f) {
            if (can_call) {
                uint32_t got = reinterpret_cast<uint32_t (*)()>(f.p)();
                calls++;
                if (got != f.imm)
                    report("call returned a stale value");
            } else if (std::memcmp(f.p + jt_code::kRetImmOff, &f.imm, 4) != 0) {
                report("code bytes stale");
            }
        };
        for (long i = 0; i < nops; i++) {
            unsigned r = rng() % 100;
            if (r < 30 || mine.empty()) {
                size_t len = rng() % 50 == 0 ? 4096 + rng() % 20000 : jt_code::kRetImmLen + rng() % 600;
                uint32_t imm = rng();
                auto v = code_for(imm, len);
                void *p = jit_arena_alloc(a, v.data(), len);
                if (!p) {
                    report(std::string("alloc: ") + std::strerror(errno));
                    continue;
                }
                Fn f{static_cast<uint8_t *>(p), len, imm};
                check_fn(f);
                mine.push_back(f);
            } else if (r < 55) {
                check_fn(mine[rng() % mine.size()]);
            } else if (r < 75) {
                Fn &f = mine[rng() % mine.size()];
                uint32_t imm = rng();
                if (jit_update(f.p + jt_code::kRetImmOff, &imm, 4) != 0) {
                    report(std::string("update: ") + std::strerror(errno));
                    continue;
                }
                f.imm = imm;
                check_fn(f);
            } else if (r < 90) {
                size_t k = rng() % mine.size();
                if (jit_free(mine[k].p) != 0)
                    report(std::string("free: ") + std::strerror(errno));
                mine[k] = mine.back();
                mine.pop_back();
            } else if (r < 95) {
                // hand one over / take one
                std::lock_guard<std::mutex> g(q_lock);
                if (rng() % 2 && !mine.empty()) {
                    handoff.push_back(mine.back());
                    mine.pop_back();
                } else if (!handoff.empty()) {
                    mine.push_back(handoff.front());
                    handoff.pop_front();
                }
            } else if (r < 97) {
                jit_arena_shrink(a);
            } else {
                struct jit_stats s;
                if (jit_arena_stats(a, &s) != 0)
                    report("stats failed");
            }
        }
        for (const Fn &f : mine) {
            check_fn(f);
            if (jit_free(f.p) != 0)
                report("final free");
        }
    };
    std::vector<std::thread> ts;
    for (int t = 0; t < nthreads; t++)
        ts.emplace_back(worker, t);
    for (auto &t : ts)
        t.join();
    for (const Fn &f : handoff)
        EXPECT_EQ(jit_free(f.p), 0);
    // let the monitor see the final state at least once more
    long s0 = scans.load();
    while (scans.load() < s0 + 2)
        std::this_thread::yield();
    done = true;
    monitor.join();

    EXPECT_EQ(errors.load(), 0) << first_error;
    EXPECT_EQ(wx_found, "") << "writable+executable mapping seen";
    EXPECT_EQ(rel::check(a), "");
    struct jit_stats s = rel::stats(a);
    EXPECT_EQ(s.allocations, 0u);
    std::printf("%s x%d: %ld ops/thread, %ld calls, %ld maps scans, %llu updates\n",
                jit_writer_name(w), nthreads, nops, calls.load(), scans.load(),
                static_cast<unsigned long long>(s.total_updates));
    EXPECT_EQ(jit_arena_destroy(a), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Writers, Stress,
    ::testing::Values(std::make_tuple(JIT_WRITER_PROC_MEM, 2, 0u), std::make_tuple(JIT_WRITER_PROC_MEM, 8, 0u),
                      std::make_tuple(JIT_WRITER_MEMFD, 4, 0u), std::make_tuple(JIT_WRITER_TEMP_ALIAS, 4, 0u),
                      std::make_tuple(JIT_WRITER_PERSISTENT_ALIAS, 3, 0u),
                      std::make_tuple(JIT_WRITER_MPROTECT, 4, 0u),
                      std::make_tuple(JIT_WRITER_PROC_MEM, 4, unsigned{JIT_ARENA_LAZY_TRAP_FILL}),
                      std::make_tuple(JIT_WRITER_MEMFD, 3, unsigned{JIT_ARENA_LAZY_TRAP_FILL})),
    [](const auto &info) {
        return std::string(jit_writer_name(std::get<0>(info.param))) + "_x" +
               std::to_string(std::get<1>(info.param)) +
               (std::get<2>(info.param) & JIT_ARENA_LAZY_TRAP_FILL ? "_lazy" : "");
    });

}  // namespace
