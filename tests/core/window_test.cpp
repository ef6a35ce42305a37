// Placement windows (jit_arena_window, jit_arena_reaches) and placement near several
// targets (JIT_PLACE_NEAR_ADDRESSES): every code and near-data byte lies in the window,
// the window is where the reach of every target overlaps, and targets no one window can
// serve are rejected (EINVAL at creation, ENOMEM when the window is full).
#include "helpers.h"

#include <cstdio>

using namespace jt;

namespace {

constexpr size_t GiB = size_t{1} << 30;

uintptr_t addr(const void *p) { return reinterpret_cast<uintptr_t>(p); }
uintptr_t dist(uintptr_t a, uintptr_t b) { return a > b ? a - b : b - a; }

// One allocation of each layout: a slab object, a page run, a large allocation.
std::vector<std::pair<void *, size_t>> one_of_each(jit_arena *a) {
    std::vector<std::pair<void *, size_t>> v;
    for (size_t len : {size_t{64}, 100 * KiB, 3 * MiB}) {
        void *p = jit_arena_alloc(a, nullptr, len);
        EXPECT_NE(p, nullptr) << len << ": " << strerror(errno);
        if (p)
            v.emplace_back(p, jit_size(p));
    }
    return v;
}

struct jit_window window_of(jit_arena *a) {
    struct jit_window w;
    std::memset(&w, 0, sizeof w);
    EXPECT_EQ(jit_arena_window(a, &w), 0);
    return w;
}

TEST(Window, NearLibraryHoldsTheLibraryAndEveryByte) {
    ArenaHolder a;
    ASSERT_NE(a.get(), nullptr);
    auto w = window_of(a);
    const uintptr_t lib = addr(reinterpret_cast<const void *>(&jit_alloc));
    EXPECT_EQ(w.placement, JIT_PLACE_NEAR_LIBRARY);
    // the architecture's direct call: x86-64 rel32 2 GiB, arm64 bl 128 MiB
    EXPECT_EQ(w.call_reach, jitalloc::arch::kDirectBranchReach);
    EXPECT_LE(w.lo, lib);
    EXPECT_GT(w.hi, lib);
    EXPECT_LE(w.hi - w.lo, 2 * JIT_DEFAULT_NEAR_RANGE);
    EXPECT_EQ(w.center, lib);
    for (auto [p, n] : one_of_each(a)) {
        EXPECT_GE(addr(p), w.lo);
        EXPECT_LE(addr(p) + n, w.hi);
    }
    void *data = jit_arena_map_near(a, 4096, PROT_READ | PROT_WRITE);
    ASSERT_NE(data, nullptr);
    EXPECT_GE(addr(data), w.lo);
    EXPECT_LE(addr(data) + 4096, w.hi);
    munmap(data, 4096);
    EXPECT_EQ(jit_arena_reaches(a, reinterpret_cast<const void *>(&jit_alloc)), 1);
    // Beyond the window's reach on either side.
    if (w.lo > 3 * GiB) {
        EXPECT_EQ(jit_arena_reaches(a, reinterpret_cast<void *>(w.lo - 3 * GiB)), 0);
    }
    EXPECT_EQ(jit_arena_reaches(a, reinterpret_cast<void *>(w.hi + 3 * GiB)), 0);
    // arm64: a target 1 GiB past the window is far out of bl's reach (within rel32's)
    if (jitalloc::arch::kDirectBranchReach < GiB) {
        EXPECT_EQ(jit_arena_reaches(a, reinterpret_cast<void *>(w.hi + GiB)), 0);
    }
    // Just out of reach of the window's low end.
    EXPECT_EQ(jit_arena_reaches(a, reinterpret_cast<void *>(w.lo + w.call_reach)), 0);
}

TEST(Window, AnywhereIsAllOfUserSpace) {
    auto o = options();
    o.placement = JIT_PLACE_ANYWHERE;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    auto w = window_of(a);
    EXPECT_EQ(w.placement, JIT_PLACE_ANYWHERE);
    EXPECT_EQ(w.center, 0u);
    EXPECT_EQ(w.lo, 2 * MiB);
    EXPECT_EQ(w.hi, uintptr_t{1} << jitalloc::arch::kUserAddressBits);
    EXPECT_EQ(jit_arena_reaches(a, reinterpret_cast<const void *>(&jit_alloc)), 0);
}

TEST(Window, NullArgumentsAreEinval) {
    struct jit_window w;
    errno = 0;
    EXPECT_EQ(jit_arena_window(nullptr, &w), -1);
    EXPECT_EQ(errno, EINVAL);
    ArenaHolder a;
    errno = 0;
    EXPECT_EQ(jit_arena_window(a, nullptr), -1);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(jit_arena_reaches(nullptr, &w), -1);
    EXPECT_EQ(errno, EINVAL);
}

jit_arena_options near_all(const void *const *targets, size_t n, size_t range = 0) {
    auto o = options();
    o.placement = JIT_PLACE_NEAR_ADDRESSES;
    o.near_addresses = targets;
    o.near_count = n;
    o.near_range = range;
    return o;
}

// Three targets up to 1.5 GiB apart (48 MiB where the default range is arm64's 96 MiB):
// every code and data byte lies within the range of each of them, and direct calls reach
// them all.
TEST(Window, NearSeveralAddressesKeepsEveryByteNearEach) {
    const uintptr_t base = addr(reinterpret_cast<const void *>(&jit_alloc));
    const uintptr_t step = JIT_DEFAULT_NEAR_RANGE > GiB ? GiB : 32 * MiB;
    const void *targets[] = {reinterpret_cast<const void *>(base),
                             reinterpret_cast<const void *>(base + step),
                             reinterpret_cast<const void *>(base - step / 2)};
    auto o = near_all(targets, 3);
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    auto w = window_of(a);
    EXPECT_EQ(w.placement, JIT_PLACE_NEAR_ADDRESSES);
    EXPECT_EQ(w.lo, base + step - JIT_DEFAULT_NEAR_RANGE);
    EXPECT_EQ(w.hi, base - step / 2 + JIT_DEFAULT_NEAR_RANGE);
    auto allocs = one_of_each(a);
    void *data = jit_arena_map_near(a, 8192, PROT_READ);
    ASSERT_NE(data, nullptr);
    allocs.emplace_back(data, 8192);
    for (auto [p, n] : allocs) {
        for (const void *t : targets) {
            EXPECT_LE(dist(addr(p), addr(t)), JIT_DEFAULT_NEAR_RANGE) << p << " vs " << t;
            EXPECT_LE(dist(addr(p) + n, addr(t)), JIT_DEFAULT_NEAR_RANGE) << p << " vs " << t;
        }
    }
    munmap(data, 8192);
    for (const void *t : targets)
        EXPECT_EQ(jit_arena_reaches(a, t), 1) << t;
    // The targets array was read at creation only.
    targets[0] = nullptr;
    void *p = jit_arena_alloc(a, nullptr, 16);
    ASSERT_NE(p, nullptr);
    EXPECT_GE(addr(p), w.lo);
}

TEST(Window, TargetsNoWindowCoversAreEinval) {
    const uintptr_t base = addr(reinterpret_cast<const void *>(&jit_alloc));
    auto expect_rejected = [](const jit_arena_options &o, const char *what) {
        errno = 0;
        jit_arena *a = jit_arena_create(&o);
        EXPECT_EQ(a, nullptr) << what;
        EXPECT_EQ(errno, EINVAL) << what;
        if (a)
            jit_arena_destroy(a);
    };
    const void *apart[] = {reinterpret_cast<const void *>(base), reinterpret_cast<const void *>(base + 4 * GiB)};
    expect_rejected(near_all(apart, 2), "4 GiB apart");
    // With a 64 MiB range, 127 MiB apart leaves less than a chunk between them.
    const void *close[] = {reinterpret_cast<const void *>(base), reinterpret_cast<const void *>(base + 127 * MiB)};
    expect_rejected(near_all(close, 2, 64 * MiB), "127 MiB apart, range 64 MiB");
    // A libc function and this program's own code: far apart when libc is shared.
    const void *mixed[] = {reinterpret_cast<const void *>(&jit_alloc), reinterpret_cast<const void *>(&std::printf)};
    if (dist(addr(mixed[0]), addr(mixed[1])) > 4 * GiB)
        expect_rejected(near_all(mixed, 2), "jit_alloc and printf");
    expect_rejected(near_all(apart, 0), "no targets");
    expect_rejected(near_all(nullptr, 2), "NULL list");
    const void *one[JIT_MAX_NEAR_ADDRESSES + 1];
    for (auto &t : one)
        t = reinterpret_cast<const void *>(base);
    expect_rejected(near_all(one, JIT_MAX_NEAR_ADDRESSES + 1), "too many targets");
    const void *with_null[] = {reinterpret_cast<const void *>(base), nullptr};
    expect_rejected(near_all(with_null, 2), "a NULL target");
    const void *kernel[] = {reinterpret_cast<const void *>(base), reinterpret_cast<const void *>(~uintptr_t{0} - 4096)};
    expect_rejected(near_all(kernel, 2), "a kernel address");
    // The most targets is fine.
    ArenaHolder many(near_all(one, JIT_MAX_NEAR_ADDRESSES));
    EXPECT_NE(many.get(), nullptr);
}

// A window that exists but is full of other mappings: allocation fails with ENOMEM,
// and succeeds once the space is free.
TEST(Window, FullWindowIsEnomem) {
    const size_t span = 16 * MiB;
    void *raw = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ASSERT_NE(raw, MAP_FAILED);
    uintptr_t x = (addr(raw) + 2 * MiB - 1) & ~(2 * MiB - 1);  // 4 MiB inside the mapping
    const size_t range = 64 * MiB;
    const void *targets[] = {reinterpret_cast<const void *>(x + 4 * MiB - range),
                             reinterpret_cast<const void *>(x + range)};
    auto o = near_all(targets, 2, range);
    o.retain_bytes = 0;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    auto w = window_of(a);
    EXPECT_EQ(w.lo, x);
    EXPECT_EQ(w.hi, x + 4 * MiB);
    errno = 0;
    EXPECT_EQ(jit_arena_alloc(a, nullptr, 64), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    ASSERT_EQ(munmap(raw, span), 0);
    void *p = jit_arena_alloc(a, nullptr, 64);
    ASSERT_NE(p, nullptr) << strerror(errno);
    EXPECT_GE(addr(p), x);
    EXPECT_LT(addr(p), x + 4 * MiB);
}

}  // namespace
