// The C++ API (jitalloc.hpp): Arena::create, load, reserve, Code::update with spans,
// RAII free, moves, and errors reported as values.
#include <jitalloc/jitalloc.hpp>

#include "helpers.h"

#include <array>
#include <cstring>
#include <string_view>

using namespace jt;
namespace ja = jitalloc;

namespace {

std::span<const std::byte> bytes_of(const std::vector<uint8_t> &v) {
    return std::as_bytes(std::span<const uint8_t>(v));
}

uint64_t live_allocations(const ja::Arena &a) {
    struct jit_stats s;
    EXPECT_EQ(a.stats(s), 0);
    return s.allocations;
}

TEST(CppApi, CreateLoadUpdateRaii) {
    auto r = ja::Arena::create(ja::ArenaOptions().writer(ja::Writer::Memfd).name("cpp"));
    ASSERT_TRUE(r.ok()) << strerror(r.error());
    ja::Arena arena = std::move(r).value();
    ASSERT_NE(arena.get(), nullptr);
    {
        auto code = add_imm(5, 20);
        auto loaded = arena.load(bytes_of(code), "add5");
        ASSERT_TRUE(loaded);
        ja::Code &c = loaded.value();
        EXPECT_TRUE(c);
        EXPECT_EQ(c.size(), 32u);
        EXPECT_TRUE(same_bytes(c.data(), code));
        EXPECT_EQ(c.as<int (*)(int)>()(1), 6);
        int32_t imm = 50;
        EXPECT_EQ(c.update(kAddImmOff, std::as_bytes(std::span<const int32_t>(&imm, 1))), 0);
        EXPECT_EQ(c.as<int (*)(int)>()(1), 51);
        EXPECT_EQ(live_allocations(arena), 1u);
    }
    // The handle freed the code when it went out of scope.
    EXPECT_EQ(live_allocations(arena), 0u);
    struct jit_stats s;
    ASSERT_EQ(arena.stats(s), 0);
    EXPECT_EQ(s.writer, JIT_WRITER_MEMFD);
    EXPECT_EQ(s.total_frees, 1u);
}

TEST(CppApi, ReserveThenUpdate) {
    auto arena = ja::Arena::create();
    ASSERT_TRUE(arena);
    auto r = arena->reserve(100);
    ASSERT_TRUE(r);
    ja::Code c = std::move(r).value();
    EXPECT_EQ(c.size(), 112u);
    EXPECT_TRUE(all_traps(c.data(), c.size()));
    auto code = ret_imm(31);
    EXPECT_EQ(c.update(0, bytes_of(code)), 0);
    EXPECT_EQ(c.as<int (*)(int)>()(0), 31);
    // Out of range: errno value returned, nothing written.
    auto snap = snapshot(c.data(), c.size());
    EXPECT_EQ(c.update(c.size() - 2, bytes_of(code)), EINVAL);
    EXPECT_EQ(c.update(c.size() + 1, bytes_of(code)), EINVAL);
    EXPECT_EQ(c.update(0, std::span<const std::byte>()), EINVAL);
    EXPECT_EQ(c.update(SIZE_MAX, bytes_of(code)), EINVAL);
    EXPECT_TRUE(same_bytes(c.data(), snap));
    EXPECT_EQ(c.reset(), 0);
    EXPECT_FALSE(c);
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.update(0, bytes_of(code)), EINVAL);  // empty handle
    EXPECT_EQ(c.reset(), 0);                         // resetting an empty handle is fine
}

TEST(CppApi, MovesTransferOwnership) {
    auto arena = ja::Arena::create();
    ASSERT_TRUE(arena);
    ja::Code a = std::move(arena->reserve(16)).value();
    void *p = a.data();
    ja::Code b(std::move(a));
    EXPECT_FALSE(a);
    EXPECT_EQ(b.data(), p);
    ja::Code c = std::move(arena->reserve(16)).value();
    void *q = c.data();
    c = std::move(b);  // frees q
    EXPECT_EQ(c.data(), p);
    EXPECT_EQ(jit_size(q), 0u);
    EXPECT_EQ(live_allocations(arena.value()), 1u);

    void *raw = c.release();
    EXPECT_FALSE(c);
    EXPECT_EQ(jit_size(raw), 16u);
    EXPECT_EQ(jit_free(raw), 0);

    // Moving arenas: the moved-from one is empty, the moved-to one owns the pool.
    ja::Arena moved = std::move(arena).value();
    EXPECT_EQ(arena->get(), nullptr);
    EXPECT_NE(moved.get(), nullptr);
}

TEST(CppApi, ErrorsAreValues) {
    auto bad = ja::Arena::create(ja::ArenaOptions().near_range(size_t{3} << 30));
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error(), EINVAL);
    auto bad_flags = ja::Arena::create(ja::ArenaOptions().add_flags(0x80));
    EXPECT_EQ(bad_flags.error(), EINVAL);

    auto arena = ja::Arena::create(ja::ArenaOptions().max_bytes(2 * MiB).retain_bytes(0));
    ASSERT_TRUE(arena);
    auto empty = arena->load(std::span<const std::byte>());
    EXPECT_FALSE(empty);
    EXPECT_EQ(empty.error(), EINVAL);
    auto huge = arena->reserve(4 * MiB);
    EXPECT_EQ(huge.error(), ENOMEM);
    auto too_big = arena->reserve(JIT_MAX_ALLOC_SIZE + 1);
    EXPECT_EQ(too_big.error(), EINVAL);
    EXPECT_EQ(live_allocations(arena.value()), 0u);

    // A handle whose free fails keeps its pointer.
    ja::Code stray(reinterpret_cast<void *>(0x1000));
    EXPECT_EQ(stray.reset(), EINVAL);
    EXPECT_TRUE(stray);
    stray.release();
}

TEST(CppApi, GlobalArenaIsNeverDestroyed) {
    void *p = jit_alloc(nullptr, 16);
    ASSERT_NE(p, nullptr);
    {
        auto g = ja::Arena::global();
        ASSERT_TRUE(g);
        EXPECT_EQ(g->get(), jit_default_arena());
        auto c = g->reserve(32);
        ASSERT_TRUE(c);
        EXPECT_EQ(jit_arena_of(c->data()), jit_default_arena());
    }
    EXPECT_EQ(jit_size(p), 16u);  // still alive after the Arena object died
    EXPECT_EQ(jit_free(p), 0);
}

TEST(CppApi, ShrinkAndOptions) {
    ja::ArenaOptions o;
    o.writer(ja::Writer::ProcMem).anywhere().retain_bytes(SIZE_MAX);
    auto arena = ja::Arena::create(o);
    ASSERT_TRUE(arena);
    { auto c = arena->reserve(3 * 4096); ASSERT_TRUE(c); }
    EXPECT_EQ(arena->shrink(), 2 * MiB);
    auto near = ja::Arena::create(ja::ArenaOptions().near(reinterpret_cast<const void *>(&jit_alloc)).near_range(64 * MiB));
    ASSERT_TRUE(near);
    auto c = near->reserve(64);
    ASSERT_TRUE(c);
    auto d = reinterpret_cast<intptr_t>(c->data()) - reinterpret_cast<intptr_t>(&jit_alloc);
    EXPECT_LE(d < 0 ? -d : d, static_cast<intptr_t>(64 * MiB));
}

// A Code that outlives its Arena: arena B gets A's addresses back (placement tries the
// last chunk's address first), and the stale handle must touch none of B's code.
// Before Code remembered its arena, stale.reset() returned 0 and freed B's function.
TEST(CppApi, CodeOutlivingItsArenaTouchesNothing) {
    ja::Code stale;
    {
        auto a = ja::Arena::create(ja::ArenaOptions().name("A"));
        ASSERT_TRUE(a);
        auto c = a->load(ret_imm(1));
        ASSERT_TRUE(c);
        stale = std::move(c).value();
    }  // arena A destroyed: its code memory is unmapped
    void *old = stale.data();
    ASSERT_NE(old, nullptr);

    auto b = ja::Arena::create(ja::ArenaOptions().name("B"));
    ASSERT_TRUE(b);
    std::vector<ja::Code> mine;
    size_t at_old = SIZE_MAX;
    for (int i = 0; i < 256 && at_old == SIZE_MAX; i++) {
        auto c = b->load(ret_imm(100 + i));
        ASSERT_TRUE(c);
        mine.push_back(std::move(c).value());
        if (mine.back().data() == old)
            at_old = mine.size() - 1;
    }
    ASSERT_NE(at_old, SIZE_MAX) << "arena B never reused arena A's address " << old;
    ASSERT_NE(stale.arena_id(), b->id());

    auto before = snapshot(old, mine[at_old].size());
    EXPECT_EQ(stale.size(), 0u);
    EXPECT_EQ(stale.update(kRetImmOff, std::array<uint8_t, 4>{9, 9, 9, 9}), EINVAL);
    const auto nine = ret_imm(9);
    EXPECT_EQ(stale.patch(0, std::as_bytes(std::span(nine))), EINVAL);
    EXPECT_EQ(stale.reset(), EINVAL);
    EXPECT_TRUE(same_bytes(old, before)) << "the stale handle wrote into arena B's code";
    EXPECT_EQ(jit_size(old), mine[at_old].size()) << "the stale handle freed arena B's code";
    EXPECT_EQ(jit_arena_of(old), b->get());
    EXPECT_EQ(call_int(old), 100 + static_cast<int>(at_old));
    stale = ja::Code();  // its destructor frees nothing either
    EXPECT_EQ(jit_size(old), mine[at_old].size());
    EXPECT_EQ(mine[at_old].reset(), 0);  // B's own handle still frees it
}

// A Code adopted as arena A's but pointing into arena B frees and updates nothing.
TEST(CppApi, CodeOfAnotherArenaIsRefused) {
    auto a = ja::Arena::create();
    auto b = ja::Arena::create();
    ASSERT_TRUE(a && b);
    void *p = jit_arena_alloc(b->get(), nullptr, 16);
    ASSERT_NE(p, nullptr);
    ja::Code wrong(a->get(), p);
    EXPECT_EQ(wrong.size(), 0u);
    EXPECT_EQ(wrong.update(0, {0xc3}), EINVAL);
    EXPECT_EQ(wrong.reset(), EINVAL);
    EXPECT_EQ(jit_size(p), 16u);
    EXPECT_TRUE(all_traps(p, 16));
    wrong.release();
    ja::Code right(p);  // adopts p with the arena that owns it now
    EXPECT_EQ(right.arena_id(), b->id());
    EXPECT_EQ(right.reset(), 0);
    EXPECT_EQ(jit_size(p), 0u);
}

TEST(CppApi, ArenaIdsAreNeverReused) {
    uint64_t first;
    {
        auto a = ja::Arena::create();
        ASSERT_TRUE(a);
        first = a->id();
        EXPECT_NE(first, 0u);
        EXPECT_EQ(jit_arena_by_id(first), a->get());
    }
    errno = 0;
    EXPECT_EQ(jit_arena_by_id(first), nullptr);
    EXPECT_EQ(errno, EINVAL);
    auto b = ja::Arena::create();
    ASSERT_TRUE(b);
    EXPECT_GT(b->id(), first);
    EXPECT_EQ(jit_arena_by_id(first), nullptr);
    EXPECT_EQ(jit_arena_by_id(0), nullptr);
    EXPECT_EQ(jit_arena_id(nullptr), 0u);
    EXPECT_NE(jit_arena_id(jit_default_arena()), 0u);
}

// Result: has_value / operator bool / error, and value(), * and -> on a value.
TEST(CppApi, ResultAccessors) {
    auto arena = ja::Arena::create();
    ASSERT_TRUE(arena.has_value());
    EXPECT_EQ(arena.error(), 0);
    auto c = arena->reserve(16);
    ASSERT_TRUE(c);
    EXPECT_EQ((*c).data(), c->data());
    EXPECT_EQ(c.value().data(), c->data());
    const auto &cc = c;
    EXPECT_EQ(cc->size(), 16u);
    auto bad = ja::Result<ja::Code>::failure(ENOMEM);
    EXPECT_FALSE(bad.has_value());
    EXPECT_FALSE(bad);
    EXPECT_EQ(bad.error(), ENOMEM);
    EXPECT_EQ(ja::Result<ja::Code>::failure(0).error(), EINVAL);  // an error is never 0
}

// value(), operator* and operator-> on an error terminate with a message, in every
// build: before, value() silently returned an empty object.
TEST(CppApiDeathTest, ValueOfAnErrorTerminatesWithAMessage) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto bad = ja::Arena::create(ja::ArenaOptions().near_range(size_t{3} << 30));
    ASSERT_EQ(bad.error(), EINVAL);
    const char *msg = "Result::value\\(\\) called on an error \\(errno 22";
    EXPECT_DEATH((void)bad.value().get(), msg);
    EXPECT_DEATH((void)(*bad).get(), msg);
    EXPECT_DEATH((void)bad->get(), msg);
    EXPECT_DEATH((void)std::move(bad).value(), msg);
}

// Code from std::array, std::vector, C arrays, string_view and braced lists, no spans.
TEST(CppApi, LoadsAndUpdatesByteContainers) {
    auto arena = ja::Arena::create();
    ASSERT_TRUE(arena);
    std::array<uint8_t, kRetImmLen> arr;
    std::memcpy(arr.data(), ret_imm(1).data(), kRetImmLen);
    std::vector<unsigned char> vec = ret_imm(2);
    const unsigned char carr[] = JT_RET_IMM_BRACED(3);
    std::array<std::byte, kRetImmLen> bytes;
    std::memcpy(bytes.data(), ret_imm(4).data(), kRetImmLen);
    const auto five = ret_imm(5);
    std::string_view sv(reinterpret_cast<const char *>(five.data()), five.size());
    auto c1 = arena->load(arr, "from_array");
    auto c2 = arena->load(vec);
    auto c3 = arena->load(carr);
    auto c4 = arena->load(bytes);
    auto c5 = arena->load(sv);
    auto c6 = arena->load(JT_RET_IMM_BRACED(6));
    ja::Code *all[] = {&*c1, &*c2, &*c3, &*c4, &*c5, &*c6};
    for (int i = 0; i < 6; i++) {
        ASSERT_TRUE(*all[i]) << i;
        EXPECT_TRUE(same_bytes(all[i]->data(), ret_imm(i + 1))) << i;
        EXPECT_EQ(call_int(all[i]->data()), i + 1);
    }
    EXPECT_EQ(c1->update(kRetImmOff, std::array<uint8_t, 1>{40}), 0);
    EXPECT_EQ(c2->update(kRetImmOff, std::vector<uint8_t>{41}), 0);
    EXPECT_EQ(c3->update(kRetImmOff, {42}), 0);
    EXPECT_TRUE(same_bytes(c1->data(), ret_imm(40)));
    EXPECT_TRUE(same_bytes(c2->data(), ret_imm(41)));
    EXPECT_TRUE(same_bytes(c3->data(), ret_imm(42)));
    EXPECT_EQ(arena->load(std::vector<uint8_t>{}).error(), EINVAL);
}

// Flags add up through the named setters and add_flags; set_flags replaces them.
TEST(CppApi, ArenaOptionFlagsAddUp) {
    ja::ArenaOptions o;
    o.perf_map().no_huge_pages().add_flags(JIT_ARENA_NO_SYNC_CORE).ignore_env();
    EXPECT_EQ(o.c.flags, JIT_ARENA_PERF_MAP | JIT_ARENA_NO_HUGE_PAGES | JIT_ARENA_NO_SYNC_CORE |
                             JIT_ARENA_IGNORE_ENV);
    o.gdb_jit();
    EXPECT_TRUE(o.c.flags & JIT_ARENA_GDB_JIT);
    EXPECT_TRUE(o.c.flags & JIT_ARENA_PERF_MAP);
    o.set_flags(JIT_ARENA_NO_HUGE_PAGES);
    EXPECT_EQ(o.c.flags, JIT_ARENA_NO_HUGE_PAGES);
    auto arena = ja::Arena::create(ja::ArenaOptions().no_sync_core().no_huge_pages());
    ASSERT_TRUE(arena);
    struct jit_stats st;
    ASSERT_EQ(arena->stats(st), 0);
    EXPECT_EQ(st.sync_core, 0u);
}

}  // namespace
