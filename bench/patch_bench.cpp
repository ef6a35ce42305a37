// Live-patching benchmarks: 64 patch sites retargeted in one jit_patch_batch against 64
// jit_patch calls, with and without a second thread calling through the sites, and the
// floor of a strict-W^X write measured in the same run.
//
//   patch/batch/layout:<0|1|2>/spinner:<0|1>   one batch of 64 sites
//   patch/single/layout:<0|1|2>/spinner:<0|1>  64 jit_patch calls
//   patch/update/layout:<0|1|2>/spinner:<0|1>  64 jit_update calls (no protocol: not
//                                              safe under callers; a reference)
//   patch/floor/spinner:<0|1>                        one raw pwrite of 5 bytes to
//                                                    /proc/self/mem into a ROX THP page
//                                                    (the floor_proc_mem contender)
// layout:1 table      the 64 sites are 5-byte branches 16 bytes apart in one allocation
//                     (a stub table: one merged write per protocol step)
// layout:0 adjacent   each site in a 16-byte allocation of its own, allocated in a row,
//                     so they adjoin (one merged write per protocol step)
// layout:2 scattered  each site in a 16-byte allocation of its own followed by a live
//                     16-byte allocation without a site (another owner's bytes between
//                     every two sites: one write per site and step)
// An iteration patches every site once (alternating between two targets, so no write
// is a no-op); times are per iteration, i.e. per 64 sites. With spinner:1 the second
// thread calls through all 64 sites in a loop, so it runs into the int3s.
#include "patch_bench.h"

#include "contender.h"
#include "workload.h"


#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <cstring>
#include <thread>
#include <vector>

namespace bench {

namespace {

constexpr int kSites = 64;

// 64 sites: each `jmp rel32` to one of two targets (mov eax, 1 / 2; ret).
class Sites {
public:
    enum Layout { adjacent = 0, table = 1, scattered = 2 };
    Sites(jit_arena *a, int layout) : a_(a) {
        const bool table = layout == Layout::table;
        static const uint8_t t1[] = {0xB8, 1, 0, 0, 0, 0xC3}, t2[] = {0xB8, 2, 0, 0, 0, 0xC3};
        target_[0] = static_cast<uint8_t *>(jit_arena_alloc(a, t1, sizeof t1));
        target_[1] = static_cast<uint8_t *>(jit_arena_alloc(a, t2, sizeof t2));
        if (table)
            table_ = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, 16 * kSites));
        for (int i = 0; i < kSites; i++) {
            uint8_t *at = table ? table_ + 16 * i : static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, 16));
            if (!at || !target_[0] || !target_[1])
                return;
            if (!table)
                own_.push_back(at);
            if (layout == Layout::scattered) {
                void *spacer = jit_arena_alloc(a, nullptr, 16);
                if (!spacer)
                    return;
                own_.push_back(static_cast<uint8_t *>(spacer));
            }
            site_.push_back(at);
            for (int v = 0; v < 2; v++) {
                int32_t rel = static_cast<int32_t>(target_[v] - (at + 5));
                jmp_[i][v][0] = 0xE9;
                std::memcpy(&jmp_[i][v][1], &rel, 4);
            }
            if (jit_update(at, jmp_[i][0], 5) != 0)
                return;
        }
        ok_ = true;
    }
    ~Sites() {
        for (uint8_t *p : own_)
            jit_free(p);
        for (uint8_t *p : {table_, target_[0], target_[1]})
            if (p)
                jit_free(p);
    }
    bool ok() const { return ok_; }
    const uint8_t *jmp(int i, int v) const { return jmp_[i][v]; }
    uint8_t *site(int i) const { return site_[i]; }
    int call(int i) const { return reinterpret_cast<int (*)()>(site_[i])(); }

private:
    jit_arena *a_;
    uint8_t *target_[2] = {}, *table_ = nullptr;
    std::vector<uint8_t *> own_, site_;
    uint8_t jmp_[kSites][2][5] = {};
    bool ok_ = false;
};

// Calls through every site until destroyed.
class SiteCaller {
public:
    explicit SiteCaller(const Sites &s) : t_([this, &s] {
        started_.store(true);
        while (!stop_.load(std::memory_order_relaxed))
            for (int i = 0; i < kSites; i++)
                sum_ += s.call(i);
    }) {
        while (!started_.load())
            std::this_thread::yield();
    }
    ~SiteCaller() {
        stop_.store(true);
        t_.join();
        benchmark::DoNotOptimize(sum_);
    }

private:
    std::atomic<bool> stop_{false}, started_{false};
    int sum_ = 0;
    std::thread t_;
};

enum class How { batch, single, update };

void patch_sites(benchmark::State &state, How how) {
    const int layout = static_cast<int>(state.range(0));
    const bool spin = state.range(1) != 0;
    jit_arena *a = proc_mem_arena();
    if (!a) {
        state.SkipWithError("no proc_mem arena");
        return;
    }
    {
        Sites s(a, layout);
        if (!s.ok()) {
            state.SkipWithError("setup failed");
            jit_arena_destroy(a);
            return;
        }
        std::unique_ptr<SiteCaller> caller;
        if (spin)
            caller = std::make_unique<SiteCaller>(s);
        int v = 1;
        jit_patch_site batch[kSites];
        for (auto _ : state) {
            bool ok = true;
            if (how == How::batch) {
                for (int i = 0; i < kSites; i++)
                    batch[i] = {s.site(i), s.jmp(i, v), 5};
                ok = jit_arena_patch_batch(a, batch, kSites) == 0;
            } else {
                for (int i = 0; i < kSites && ok; i++)
                    ok = (how == How::single ? jit_arena_patch(a, s.site(i), s.jmp(i, v), 5)
                                             : jit_arena_update(a, s.site(i), s.jmp(i, v), 5)) == 0;
            }
            if (!ok) {
                state.SkipWithError("patch failed");
                break;
            }
            v ^= 1;
        }
        caller.reset();
    }
    jit_arena_destroy(a);
    state.SetItemsProcessed(state.iterations() * kSites);
}

// The floor (contender floor_proc_mem, contender.h): one raw pwrite of 5 bytes into a
// ROX THP page through /proc/self/mem, with a thread calling a function on that page.
void floor_pwrite(benchmark::State &state) {
    const bool spin = state.range(0) != 0;
    std::unique_ptr<Contender> floor = make_contender("floor_proc_mem");
    static const uint8_t ret[] = {0xC3};
    void *fn = floor ? floor->load(ret, sizeof ret) : nullptr;
    void *site = floor ? floor->load(ret, sizeof ret) : nullptr;
    if (!fn || !site) {
        state.SkipWithError("floor_proc_mem unavailable");
        return;
    }
    std::atomic<bool> stop{false};
    std::thread spinner;
    if (spin)
        spinner = std::thread([&] {
            while (!stop.load(std::memory_order_relaxed))
                reinterpret_cast<void (*)()>(fn)();
        });
    const uint8_t bytes[2][5] = {{0xE9, 1, 0, 0, 0}, {0xE9, 2, 0, 0, 0}};
    int v = 0;
    for (auto _ : state) {
        if (!floor->update(site, bytes[v], 5)) {
            state.SkipWithError("pwrite failed");
            break;
        }
        v ^= 1;
    }
    stop.store(true);
    if (spinner.joinable())
        spinner.join();
    state.SetItemsProcessed(state.iterations());
}

}  // namespace

void register_patch(bool quick) {
    const double t = quick ? 0.1 : 0.5;
    struct Kind {
        const char *name;
        How how;
    };
    for (Kind k : {Kind{"batch", How::batch}, Kind{"single", How::single}, Kind{"update", How::update}}) {
        auto *b = benchmark::RegisterBenchmark((std::string("patch/") + k.name).c_str(),
                                               [how = k.how](benchmark::State &s) { patch_sites(s, how); });
        b->ArgNames({"layout", "spinner"})->ArgsProduct({{1, 0, 2}, {0, 1}})->MinTime(t);
    }
    benchmark::RegisterBenchmark("patch/floor", floor_pwrite)
        ->ArgName("spinner")->Arg(0)->Arg(1)->MinTime(t);
}

}  // namespace bench
