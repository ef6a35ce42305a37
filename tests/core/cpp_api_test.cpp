// The C++ API (jitalloc.hpp): Arena::create, load, reserve, Code::update with spans,
// RAII free, moves, and errors reported as values.
#include <jitalloc/jitalloc.hpp>

#include "helpers.h"

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
#if JT_CAN_RUN_CODE
        EXPECT_EQ(c.as<int (*)(int)>()(1), 6);
#endif
        int32_t imm = 50;
        EXPECT_EQ(c.update(kAddImmOff, std::as_bytes(std::span<const int32_t>(&imm, 1))), 0);
#if JT_CAN_RUN_CODE
        EXPECT_EQ(c.as<int (*)(int)>()(1), 51);
#endif
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
    EXPECT_TRUE(all_bytes(c.data(), c.size(), kTrap));
    auto code = ret_imm(31);
    EXPECT_EQ(c.update(0, bytes_of(code)), 0);
#if JT_CAN_RUN_CODE
    EXPECT_EQ(c.as<int (*)(int)>()(0), 31);
#endif
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
    auto bad_flags = ja::Arena::create(ja::ArenaOptions().flags(0x80));
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

}  // namespace
