// Shared by the live-patching tests: 64 patch sites in the host's machine code
// (tests/common/host_code.h), each flipped between two variants, and threads that call
// through them meanwhile.
//
// Two kinds of site, each returning 1 with variant 0 and 2 with variant 1: a call site
// (a call to `one`, or a nop) and a jump site (a jump to `one`, or an instruction that
// falls through to `return 2`). Three layouts: half of the sites sit in one "stub table"
// allocation (32 B apart); a quarter in allocations of their own, each followed by a
// live spacer allocation of the same size (scattered: the spacer's bytes are another
// owner's); a quarter in allocations of their own handed out in a row, so those of one
// size class adjoin. A batch writes the table with one write per step, and each size
// class's scattered and adjoining sites (one slab, within 4 KiB) with one more: the
// spacers' bytes go back as they are, under the write gate (src/poke/write_gate.h).
#pragma once

#include "helpers.h"

#include <atomic>
#include <thread>

namespace jt {

class PatchRig {
public:
    static constexpr int kSites = 64;
    static constexpr size_t kLen = jt_code::kSiteLen;
    static constexpr int kTableSites = kSites / 2, kScatteredSites = kSites / 4;
    // The call sites' functions and the jump sites' are of two size classes: a group
    // (one write per step) each, spacers included.
    static constexpr int kClassGroups = 2;
    // Kernel writes of one protocol step of a batch over all sites.
    static constexpr int kWritesPerStep = 1 + kClassGroups;

    explicit PatchRig(jit_arena *a) : a_(a) {
        const std::vector<uint8_t> one = jt_code::ret_imm_code(1);
        one_ = static_cast<uint8_t *>(jit_arena_alloc(a, one.data(), one.size()));
        table_ = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, 32 * kSites / 2));
        if (!one_ || !table_)
            return;
        for (int i = 0; i < kSites; i++) {
            bool call = i % 2 == 0;
            bool in_table = i < kTableSites, scattered = !in_table && i < kTableSites + kScatteredSites;
            std::vector<uint8_t> code = call ? jt_code::call_site_fn() : jt_code::jump_site_fn();
            uint8_t *fn = in_table ? table_ + 32 * i
                                   : static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, code.size()));
            if (!fn)
                return;
            if (!in_table)
                own_.push_back(fn);
            if (scattered) {
                auto *spacer = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, code.size()));
                if (!spacer)
                    return;
                own_.push_back(spacer);
                spacers_.push_back(spacer);
            }
            Site s;
            s.fn = fn;
            s.at = fn + (call ? jt_code::kCallSiteAt : jt_code::kJumpSiteAt);
            for (int v = 0; v < 2; v++)
                jt_code::site_variant(s.variant[v], call, v, s.at, one_);
            std::memcpy(code.data() + (s.at - fn), s.variant[0], kLen);
            if (jit_update(fn, code.data(), code.size()) != 0)
                return;
            sites_.push_back(s);
        }
        ok_ = true;
    }
    ~PatchRig() {
        for (uint8_t *p : own_)
            jit_free(p);
        if (table_)
            jit_free(table_);
        if (one_)
            jit_free(one_);
    }
    PatchRig(const PatchRig &) = delete;
    PatchRig &operator=(const PatchRig &) = delete;

    bool ok() const { return ok_; }
    // Whether the last quarter's functions of each size class adjoin one another (the
    // layout kWritesPerStep counts on: a fresh arena hands out a slab's lowest free
    // object first).
    bool adjacent_quarter_adjoins() const {
        for (int i = kTableSites + kScatteredSites + 2; i < kSites; i++)
            if (sites_[i - 2].fn + jit_size(sites_[i - 2].fn) != sites_[i].fn)
                return false;
        return true;
    }
    // Whether each size class's scattered and adjoining sites, spacers included, lie
    // within 4 KiB (the layout kWritesPerStep counts on).
    bool class_groups_fit() const {
        for (int first = kTableSites; first < kTableSites + 2; first++)
            if (sites_[kSites - 2 + (first - kTableSites)].fn + jit_size(sites_[first].fn) -
                    sites_[first].fn > 4096)
                return false;
        return true;
    }
    // The spacer allocations after the scattered sites' (another owner's bytes).
    const std::vector<uint8_t *> &spacers() const { return spacers_; }
    static int expected(int variant) { return variant + 1; }
    int call(int i) const { return reinterpret_cast<int (*)()>(sites_[i].fn)(); }
    uint8_t *site(int i) const { return sites_[i].at; }
    const uint8_t *variant(int i, int v) const { return sites_[i].variant[v]; }

    // Every site to `variant`: one batch, or one jit_patch per site. 0 or errno.
    int flip(int variant, bool batch) const {
        std::vector<jit_patch_site> v;
        for (const Site &s : sites_)
            v.push_back({s.at, s.variant[variant], kLen});
        if (batch)
            return jit_arena_patch_batch(a_, v.data(), v.size()) == 0 ? 0 : errno;
        for (const jit_patch_site &s : v)
            if (jit_arena_patch(a_, s.dst, s.src, s.len) != 0)
                return errno;
        return 0;
    }
    // Number of sites that do not return expected(variant).
    int wrong(int variant) const {
        int bad = 0;
        for (int i = 0; i < kSites; i++)
            bad += call(i) != expected(variant);
        return bad;
    }

private:
    struct Site {
        uint8_t *fn = nullptr;
        uint8_t *at = nullptr;
        uint8_t variant[2][kLen] = {};
    };
    jit_arena *a_;
    uint8_t *one_ = nullptr, *table_ = nullptr;
    std::vector<uint8_t *> own_, spacers_;
    std::vector<Site> sites_;
    bool ok_ = false;
};

// Where the host has no live-patch protocol (jt_code::kLivePatch): jit_patch and
// jit_patch_batch of valid sites fail with EOPNOTSUPP and change nothing.
inline ::testing::AssertionResult refused_unchanged(const PatchRig &rig) {
    if (rig.flip(1, true) != EOPNOTSUPP || rig.flip(1, false) != EOPNOTSUPP)
        return ::testing::AssertionFailure() << "a patch did not fail with EOPNOTSUPP";
    if (int bad = rig.wrong(0))
        return ::testing::AssertionFailure() << bad << " sites changed";
    return ::testing::AssertionSuccess();
}
inline ::testing::AssertionResult refused_unchanged(jit_arena *a) {
    PatchRig rig(a);
    if (!rig.ok())
        return ::testing::AssertionFailure() << "rig: " << strerror(errno);
    return refused_unchanged(rig);
}

// The rest of a test needs the live-patch protocol: without it, check the refusal and skip.
#define JT_SKIP_WITHOUT_LIVE_PATCH(arena_or_rig)                                        \
    do {                                                                                \
        if (!jt_code::kLivePatch) {                                                     \
            EXPECT_TRUE(refused_unchanged(arena_or_rig));                               \
            GTEST_SKIP() << "no live-patch protocol for this architecture: jit_patch " \
                            "fails with EOPNOTSUPP";                                    \
        }                                                                               \
    } while (0)

// Threads calling every site in a loop until stopped; a result other than 1 or 2 counts
// as bad (a torn instruction would rather crash the test).
class Callers {
public:
    Callers(const PatchRig &rig, int n, bool altstack = false) : rig_(rig) {
        for (int t = 0; t < n; t++)
            threads_.emplace_back([this, altstack] { run(altstack); });
        while (started_.load() < n)
            std::this_thread::yield();
    }
    ~Callers() { stop(); }
    void stop() {
        stop_.store(true);
        for (auto &t : threads_)
            if (t.joinable())
                t.join();
    }
    uint64_t calls() const { return calls_.load(); }
    uint64_t bad() const { return bad_.load(); }
    std::vector<pthread_t> handles() {
        std::vector<pthread_t> v;
        for (auto &t : threads_)
            v.push_back(t.native_handle());
        return v;
    }

private:
    void run(bool altstack) {
        std::vector<uint8_t> stack(altstack ? 64 * KiB : 0);
        stack_t before{};  // a sanitizer's own alternate stack, put back at the end
        if (altstack) {
            stack_t ss{};
            ss.ss_sp = stack.data();
            ss.ss_size = stack.size();
            if (sigaltstack(&ss, &before) != 0)
                bad_.fetch_add(1);
        }
        started_.fetch_add(1);
        uint64_t n = 0;
        while (!stop_.load(std::memory_order_relaxed)) {
            for (int i = 0; i < PatchRig::kSites; i++) {
                int r = rig_.call(i);
                if (r != 1 && r != 2)
                    bad_.fetch_add(1);
            }
            n += PatchRig::kSites;
        }
        calls_.fetch_add(n);
        if (altstack) {
            if (before.ss_flags & SS_DISABLE) {
                before.ss_sp = nullptr;
                before.ss_size = 0;
            }
            sigaltstack(&before, nullptr);
        }
    }
    const PatchRig &rig_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    std::atomic<int> started_{0};
    std::atomic<uint64_t> calls_{0}, bad_{0};
};

}  // namespace jt
