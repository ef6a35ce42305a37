// Placement: code near the library by default, inside a small window on request (ENOMEM
// once it is full), and rel32 calls from JIT code to host functions.
#include "helpers.h"

using namespace jt;

namespace {

uintptr_t distance(uintptr_t a, uintptr_t b) { return a > b ? a - b : b - a; }

// Every byte of [p, p+len) within range of `near`.
::testing::AssertionResult Within(const void *p, size_t len, const void *near, size_t range) {
    auto lo = reinterpret_cast<uintptr_t>(p), hi = lo + len - 1;
    auto n = reinterpret_cast<uintptr_t>(near);
    if (distance(lo, n) <= range && distance(hi, n) <= range)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << p << "+" << len << " is not within " << range
                                         << " of " << near;
}

TEST(Placement, DefaultArenaIsNearTheLibrary) {
    const void *lib = reinterpret_cast<const void *>(&jit_alloc);
    std::vector<void *> ptrs;
    for (size_t len : {size_t{16}, size_t{9000}, size_t{2} * MiB, size_t{5} * MiB}) {
        void *p = jit_alloc(nullptr, len);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(Within(p, jit_size(p), lib, JIT_DEFAULT_NEAR_RANGE));
        ptrs.push_back(p);
    }
    EXPECT_TRUE(ArenaOk(jit_default_arena()));
    for (void *p : ptrs) {
        EXPECT_EQ(jit_free(p), 0);
    }
}

// A window of free address space: reserve, then release, a 64 MiB range and use its
// middle as the placement address.
const void *free_window_center() {
    void *r = mmap(nullptr, 64 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return nullptr;
    munmap(r, 64 * MiB);
    return static_cast<uint8_t *>(r) + 32 * MiB;
}

// An arena whose code goes within `range` of `near`.
jit_arena_options window_options(const void *near, size_t range) {
    jit_arena_options o = options();
    o.placement = JIT_PLACE_NEAR_ADDRESS;
    o.near = near;
    o.near_range = range;
    return o;
}

TEST(Placement, SmallWindowFillsUpWithEnomem) {
    const void *near = free_window_center();
    ASSERT_NE(near, nullptr);
    const size_t range = 8 * MiB;
    ArenaHolder a(window_options(near, range));
    ASSERT_NE(a.get(), nullptr);
    std::vector<void *> ptrs;
    int err = 0;
    for (int i = 0; i < 64; i++) {
        errno = 0;
        void *p = jit_arena_alloc(a, nullptr, 2 * MiB);
        if (!p) {
            err = errno;
            break;
        }
        EXPECT_TRUE(Within(p, 2 * MiB, near, range));
        ptrs.push_back(p);
    }
    EXPECT_EQ(err, ENOMEM);
    // The window is 16 MiB wide: at most 8 chunks fit, and at least one did.
    EXPECT_GE(ptrs.size(), 1u);
    EXPECT_LE(ptrs.size(), 8u);
    struct jit_stats before = stats_of(a);
    EXPECT_EQ(before.chunks_mapped, ptrs.size());
    // Large allocations and small ones needing a new chunk fail the same way.
    errno = 0;
    EXPECT_EQ(jit_arena_alloc(a, nullptr, 3 * MiB), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(jit_arena_alloc(a, nullptr, 64), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    EXPECT_TRUE(SameStats(before, stats_of(a)));
    EXPECT_TRUE(ArenaOk(a));  // also checks every chunk lies in the window
    // Freeing makes room again, in the same window.
    ASSERT_EQ(jit_free(ptrs.back()), 0);
    ptrs.pop_back();
    jit_arena_shrink(a);
    void *p = jit_arena_alloc(a, nullptr, 64);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(Within(p, 64, near, range));
    ptrs.push_back(p);
    for (void *q : ptrs) {
        EXPECT_EQ(jit_free(q), 0);
    }
}

TEST(Placement, AnywhereWorks) {
    jit_arena_options o = options();
    o.placement = JIT_PLACE_ANYWHERE;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr);
    void *p = jit_arena_alloc(a, nullptr, 100);
    void *q = jit_arena_alloc(a, nullptr, 3 * MiB);
    ASSERT_TRUE(p && q);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % kChunk, 0u);
    EXPECT_TRUE(ArenaOk(a));
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(q), 0);
}

// The permissions of the one mapping that covers [p, p+len), "" if none does.
std::string perms_covering(const void *p, size_t len) {
    auto lo = reinterpret_cast<uintptr_t>(p);
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
        unsigned long start = 0, end = 0;
        char perms[5] = {};
        if (std::sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) == 3 && start <= lo &&
            lo + len <= end)
            return perms;
    }
    return "";
}

// jit_arena_map_near: data pages in the code's window, with the protection asked for,
// never code memory; the window fills up the same way for data as for code.
TEST(Placement, DataMappedNearTheArenasCode) {
    const void *near = free_window_center();
    ASSERT_NE(near, nullptr);
    const size_t range = 8 * MiB;
    ArenaHolder a(window_options(near, range));
    ASSERT_NE(a.get(), nullptr);
    void *code = jit_arena_alloc(a, nullptr, 64);
    ASSERT_NE(code, nullptr);
    auto *rw = static_cast<uint8_t *>(jit_arena_map_near(a, 2 * MiB, PROT_READ | PROT_WRITE));
    auto *ro = static_cast<uint8_t *>(jit_arena_map_near(a, 4 * KiB, PROT_READ));
    ASSERT_NE(rw, nullptr);
    ASSERT_NE(ro, nullptr);
    EXPECT_TRUE(Within(rw, 2 * MiB, near, range));
    EXPECT_TRUE(Within(ro, 4 * KiB, near, range));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(rw) % kChunk, 0u);
    // Every mapping starts 2 MiB aligned, also one smaller than a chunk (on a 16 KiB-page
    // kernel an address 4 KiB below the last chunk is not even page aligned).
    EXPECT_EQ(reinterpret_cast<uintptr_t>(ro) % kChunk, 0u);
    rw[0] = 1;
    rw[2 * MiB - 1] = 2;
    EXPECT_EQ(ro[0], 0);
    EXPECT_EQ(jit_size(rw), 0u);
    EXPECT_EQ(jit_arena_of(rw), nullptr);
    errno = 0;
    EXPECT_EQ(jit_free(rw), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(perms_covering(rw, 2 * MiB), "rw-p");
    EXPECT_EQ(perms_covering(ro, 4 * KiB), "r--p");
    // Fill the rest of the 16 MiB window: ENOMEM, as for code.
    std::vector<std::pair<void *, size_t>> maps_made = {{rw, 2 * MiB}, {ro, 4 * KiB}};
    int err = 0;
    for (int i = 0; i < 16; i++) {
        errno = 0;
        void *p = jit_arena_map_near(a, 2 * MiB, PROT_NONE);
        if (!p) {
            err = errno;
            break;
        }
        EXPECT_TRUE(Within(p, 2 * MiB, near, range));
        maps_made.push_back({p, 2 * MiB});
    }
    EXPECT_EQ(err, ENOMEM);
    for (auto [p, len] : maps_made)
        EXPECT_EQ(munmap(p, len), 0);
    EXPECT_EQ(jit_free(code), 0);
}

TEST(Placement, DataMappingRejectsBadArguments) {
    ArenaHolder a;
    ASSERT_NE(a.get(), nullptr);
    struct Case {
        jit_arena *arena;
        size_t len;
        int prot;
    } cases[] = {{nullptr, 4096, PROT_READ},
                 {a, 0, PROT_READ},
                 {a, 100, PROT_READ},
                 {a, size_t{2} << 30, PROT_READ},
                 {a, 4096, PROT_READ | PROT_EXEC},
                 {a, 4096, PROT_EXEC},
                 {a, 4096, PROT_WRITE},
                 {a, 4096, 0x100}};
    for (const Case &c : cases) {
        errno = 0;
        EXPECT_EQ(jit_arena_map_near(c.arena, c.len, c.prot), nullptr) << c.len << " " << c.prot;
        EXPECT_EQ(errno, EINVAL) << c.len << " " << c.prot;
    }
}

extern "C" __attribute__((noinline)) int jt_host_add1000(int x) { return x + 1000; }

// A function that calls the host function with the architecture's direct call (x passes
// through in the first argument register).
std::vector<uint8_t> call_host_code(const uint8_t *at, const void *host) {
#if defined(__x86_64__)
    // sub rsp,8; call rel32 host; add rsp,8; ret
    std::vector<uint8_t> v = {0x48, 0x83, 0xec, 0x08, 0xe8, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x08, 0xc3};
    intptr_t rel = reinterpret_cast<intptr_t>(host) - reinterpret_cast<intptr_t>(at + 9);
    EXPECT_EQ(rel, static_cast<int32_t>(rel)) << "host function out of rel32 reach";
    int32_t r32 = static_cast<int32_t>(rel);
    std::memcpy(&v[5], &r32, 4);
    return v;
#elif defined(__aarch64__)
    // stp x29, x30, [sp, #-16]!; bl host; ldp x29, x30, [sp], #16; ret
    intptr_t rel = reinterpret_cast<intptr_t>(host) - reinterpret_cast<intptr_t>(at + 4);
    EXPECT_TRUE(a64::branch_reaches(rel)) << "host function out of bl reach";
    return a64::bytes({a64::push_frame(), a64::bl(rel), a64::pop_frame(), a64::ret()});
#endif
}

// The default window keeps code in direct-call reach (rel32 / bl) of host code.
TEST(Placement, DirectCallToHostFunction) {
    const void *host = reinterpret_cast<const void *>(&jt_host_add1000);
    for (int arena_kind = 0; arena_kind < 2; arena_kind++) {
        SCOPED_TRACE(arena_kind ? "arena near the host function" : "default arena");
        std::unique_ptr<ArenaHolder> own;
        jit_arena *a = jit_default_arena();
        if (arena_kind) {
            jit_arena_options o = options();
            o.placement = JIT_PLACE_NEAR_ADDRESS;
            o.near = host;
            o.near_range = 64 * MiB;
            own = std::make_unique<ArenaHolder>(o);
            a = own->get();
        }
        ASSERT_NE(a, nullptr);
        std::vector<void *> ptrs;
        // Page runs and large chunks too: every path stays in reach.
        for (size_t len : {size_t{14}, run_len(), size_t{3} * MiB}) {
            auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, len));
            ASSERT_NE(p, nullptr) << len;
            auto code = call_host_code(p, host);
            ASSERT_EQ(jit_update(p, code.data(), code.size()), 0);
            EXPECT_EQ(call_int(p, 5), 1005) << len;
            ptrs.push_back(p);
        }
        for (void *p : ptrs) {
            EXPECT_EQ(jit_free(p), 0);
        }
    }
}

}  // namespace
