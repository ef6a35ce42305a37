// Stale pointers while chunks are released and re-used (issue 10, item 1).
//
// Two arenas X and Y share one placement window and keep no free chunks (retain_bytes
// 0), so a chunk is unmapped the moment its last allocation goes, and the next chunk
// either arena maps often lands on the same addresses. Per round, X allocates a few
// objects (one fresh chunk) and a large chunk, frees some of them and publishes their
// addresses as stale, then frees the rest and shrinks: its chunk is released while hammer
// threads pass the stale addresses to every lookup of the API. Meanwhile Y allocates and frees slab objects,
// page runs and large chunks over and over, checking each of its own allocations.
//
// Promised whatever the other threads do:
//  - a stale address that no arena has handed out again gets 0 / NULL / EINVAL from
//    jit_size, jit_arena_of, jit_free (double free), jit_arena_free and jit_update;
//  - a stale jit_arena_free(X, p) / jit_arena_update(X, p) never reaches an allocation
//    of Y that re-uses the range (Y's allocations keep their bytes and free cleanly);
//  - no crash, no sanitizer report.
// The stale addresses are chosen so they cannot be the start of a Y allocation (X's
// 48-byte objects at offset 48 of a page; Y allocates 64-byte objects, page runs and
// large chunks) except where the test says so (X's 64-byte object, X's large chunk).
#include "rel_common.h"

#include <gtest/gtest.h>

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace {

// REL_STALE_ROUNDS overrides the count (the arm64 emulator runs fewer: tests/arm64/run.sh).
const int kRounds = [] {
    const char *e = std::getenv("REL_STALE_ROUNDS");
    return e && std::atoi(e) > 0 ? std::atoi(e) : rel::kSanitized ? 400 : 2000;
}();
constexpr size_t kLarge = (size_t{2} << 20) + 4096;
constexpr size_t kCodeLen = 8;  // code at the start of each allocation; the rest is traps
const uint8_t kTrapByte = 0xCC;

// The first error a thread saw, kept for the report.
struct Errors {
    std::atomic<int> count{0};
    std::mutex lock;
    std::string first;
    void add(const std::string &what) {
        if (count.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> g(lock);
            first = what;
        }
    }
};

std::string at(const char *what, const void *p) {
    char b[128];
    std::snprintf(b, sizeof b, "%s (%p, errno %d)", what, p, errno);
    return b;
}

void code_for(uint8_t tag, uint8_t *out) {
    for (size_t i = 0; i < kCodeLen; i++)
        out[i] = static_cast<uint8_t>(tag + i);
}

// A new allocation of len bytes holding code_for(tag) and then traps.
uint8_t *alloc_tagged(jit_arena *a, size_t len, uint8_t tag) {
    uint8_t code[64];
    std::memset(code, kTrapByte, sizeof code);
    code_for(tag, code);
    if (len <= sizeof code)
        return static_cast<uint8_t *>(jit_arena_alloc(a, code, len));
    auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, len));
    if (p && jit_arena_update(a, p, code, kCodeLen) != 0) {
        jit_arena_free(a, p);
        return nullptr;
    }
    return p;
}

// Stale addresses of the current round, published by X between its frees.
struct Stale {
    std::atomic<uint8_t *> s48{nullptr};  // X's 48-byte object: never a Y start
    std::atomic<uint8_t *> s64{nullptr};  // X's 64-byte object: Y may start one there
    std::atomic<uint8_t *> large{nullptr};  // X's large chunk: Y may map one there
    std::atomic<uint64_t> round{0};
    std::atomic<int> busy{0};  // hammers between reading the addresses and done with them
    std::atomic<bool> stop{false};
};

void expect_einval(Errors &err, int rc, const char *what, const void *p) {
    if (rc != -1 || errno != EINVAL)
        err.add(at(what, p));
}

// A stale address of X where Y may have started an allocation since: X must not reach
// it; the pointer-based lookups may name Y, never X.
void hammer_reusable(jit_arena *x, jit_arena *y, uint8_t *p, Errors &err) {
    expect_einval(err, jit_arena_free(x, p), "jit_arena_free(X) (double free)", p);
    expect_einval(err, jit_arena_update(x, p + 48, &kTrapByte, 1), "jit_arena_update(X)", p);
    jit_arena *owner = jit_arena_of(p);
    if (owner != nullptr && owner != y)
        err.add(at("jit_arena_of names X for a freed address", p));
    (void)jit_size(p);
}

void hammer(jit_arena *x, jit_arena *y, Stale &st, Errors &err) {
    uint64_t seen = 0;
    while (!st.stop.load()) {
        uint64_t r = st.round.load();
        if (r == seen) {
            sched_yield();
            continue;
        }
        st.busy.fetch_add(1);
        uint8_t *s48 = st.s48.load(), *s64 = st.s64.load(), *large = st.large.load();
        if (!s48 && !s64 && !large) {
            st.busy.fetch_sub(1);
            seen = r;
            continue;
        }
        if (s48) {
            errno = 0;
            if (jit_size(s48) != 0)
                err.add(at("jit_size of a stale address", s48));
            if (jit_arena_of(s48) != nullptr)
                err.add(at("jit_arena_of of a stale address", s48));
            expect_einval(err, jit_free(s48), "jit_free (double free)", s48);
            expect_einval(err, jit_arena_free(x, s48), "jit_arena_free(X) (double free)", s48);
            expect_einval(err, jit_arena_free(y, s48), "jit_arena_free(Y) of X's address", s48);
            expect_einval(err, jit_arena_update(x, s48, &kTrapByte, 1), "jit_arena_update(X)", s48);
            // Inside a Y allocation this is a legal write of a trap over a trap.
            if (jit_update(s48, &kTrapByte, 1) != 0 && errno != EINVAL)
                err.add(at("jit_update of a stale address", s48));
        }
        if (s64)
            hammer_reusable(x, y, s64, err);
        if (large)
            hammer_reusable(x, y, large, err);
        st.busy.fetch_sub(1);
    }
}

// Y: batches of slab objects, page runs and (every few batches) a large chunk, each
// checked before it is freed; the batch frees empty Y, so its chunks are released too.
void churn_y(jit_arena *y, Stale &st, Errors &err, unsigned seed) {
    struct Live {
        uint8_t *p;
        size_t len;
        uint8_t tag;
    };
    std::vector<uint8_t> code(kCodeLen);
    for (unsigned batch = seed; !st.stop.load(); batch++) {
        std::vector<Live> live;
        for (unsigned i = 0; i < 10; i++) {
            size_t len = i < 6 ? 64 : i < 9 ? 8192 : (batch % 4 == 0 ? kLarge : 0);
            if (!len)
                continue;
            auto tag = static_cast<uint8_t>(batch * 16 + i);
            uint8_t *p = alloc_tagged(y, len, tag);
            if (!p) {
                err.add(at("Y alloc failed", nullptr));
                continue;
            }
            live.push_back({p, len, tag});
        }
        for (const Live &l : live) {
            code_for(l.tag, code.data());
            if (std::memcmp(l.p, code.data(), kCodeLen) != 0)
                err.add(at("Y allocation lost its code", l.p));
            if (jit_arena_of(l.p) != y || jit_size(l.p) < l.len)
                err.add(at("Y allocation no longer live", l.p));
            if (jit_arena_free(y, l.p) != 0)
                err.add(at("Y free failed", l.p));
        }
        if (batch % 2)
            jit_arena_shrink(y);  // Y's chunks go too, and come back where X's were
    }
}

TEST(StaleLookup, ReleasedAndReusedChunks) {
    jit_arena *x = rel::make_arena(JIT_WRITER_AUTO, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_IGNORE_ENV, 0);
    jit_arena *y = rel::make_arena(JIT_WRITER_AUTO, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_IGNORE_ENV, 0);
    ASSERT_NE(x, nullptr);
    ASSERT_NE(y, nullptr);
    Stale st;
    Errors err;
    std::vector<std::thread> threads;
    threads.emplace_back(churn_y, y, std::ref(st), std::ref(err), 0u);
    for (int i = 0; i < 2; i++)
        threads.emplace_back(hammer, x, y, std::ref(st), std::ref(err));

    uint64_t releases_before = rel::stats(x).chunks_released;
    for (int round = 0; round < kRounds && err.count.load() == 0; round++) {
        uint8_t *o48[3], *o64[3];
        for (int i = 0; i < 3; i++) {
            o48[i] = alloc_tagged(x, 48, 0x40);
            o64[i] = alloc_tagged(x, 64, 0x40);
            ASSERT_TRUE(o48[i] && o64[i]);
        }
        uint8_t *large = alloc_tagged(x, kLarge, 0x40);
        ASSERT_NE(large, nullptr);
        ASSERT_EQ(o48[0] + 48, o48[1]) << "X's objects are not where the test expects them";
        ASSERT_EQ(0, jit_arena_free(x, o48[1]));
        ASSERT_EQ(0, jit_arena_free(x, o64[1]));
        ASSERT_EQ(0, jit_arena_free(x, large));
        st.s48.store(o48[1]);
        st.s64.store(o64[1]);
        st.large.store(large);
        st.round.fetch_add(1);
        // X's chunk is released while the hammers run: by the shrink (a class keeps one
        // empty slab cached), and the large chunk already went with its free.
        for (int i : {0, 2}) {
            ASSERT_EQ(0, jit_arena_free(x, o48[i]));
            ASSERT_EQ(0, jit_arena_free(x, o64[i]));
        }
        jit_arena_shrink(x);
        st.s48.store(nullptr);
        st.s64.store(nullptr);
        st.large.store(nullptr);
        while (st.busy.load() != 0)
            sched_yield();
    }
    st.stop.store(true);
    for (auto &t : threads)
        t.join();
    EXPECT_EQ(0, err.count.load()) << err.first;
    struct jit_stats sx = rel::stats(x);
    EXPECT_EQ(0u, sx.allocations);
    EXPECT_GT(sx.chunks_released - releases_before, static_cast<uint64_t>(kRounds / 2))
        << "X's chunks were not released: the race was not exercised";
    EXPECT_EQ("", rel::check(x));
    EXPECT_EQ("", rel::check(y));
    EXPECT_EQ(0, jit_arena_destroy(x));
    EXPECT_EQ(0, jit_arena_destroy(y));
}

}  // namespace
