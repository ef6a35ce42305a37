// Trap bytes (int3, 0xCC) in fresh memory, in the tail past len up to jit_size, and in
// freed memory (read after free: the chunk stays mapped while it is cached).
#include "helpers.h"

using namespace jt;

namespace {

const size_t kLens[] = {1,    17,   100,  255,  1000, 4095, jitalloc::kMaxSlabSize, run_len(),
                        run_len(9), 2 * MiB, 2 * MiB + 1};

class Traps : public ::testing::TestWithParam<jit_writer> {
protected:
    jit_arena *arena() {
        if (!holder_) {
            jit_arena_options o = options(GetParam());
            o.retain_bytes = SIZE_MAX;  // freed chunks stay mapped and readable
            holder_ = std::make_unique<ArenaHolder>(o);
        }
        return holder_->get();
    }

private:
    std::unique_ptr<ArenaHolder> holder_;
};

TEST_P(Traps, FreshTailAndFreedMemory) {
    jit_arena *a = arena();
    ASSERT_NE(a, nullptr);
    struct Live {
        uint8_t *p;
        size_t len, usable;
    };
    std::vector<Live> reserved, loaded;

    // Phase 1: reserved memory (code == NULL) is all traps.
    for (size_t len : kLens) {
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, len));
        ASSERT_NE(p, nullptr) << len;
        size_t usable = jit_size(p);
        ASSERT_GE(usable, len);
        EXPECT_TRUE(all_traps(p, usable)) << "fresh, len " << len;
        reserved.push_back({p, len, usable});
    }
    ASSERT_TRUE(ArenaOk(a));

    // Phase 2: loaded code, traps from len up to jit_size.
    for (size_t len : kLens) {
        auto code = pattern(len, static_cast<uint32_t>(len));
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), len));
        ASSERT_NE(p, nullptr) << len;
        size_t usable = jit_size(p);
        EXPECT_TRUE(same_bytes(p, code)) << len;
        EXPECT_TRUE(all_traps(p + len, usable - len)) << "tail, len " << len;
        loaded.push_back({p, len, usable});
    }
    ASSERT_TRUE(ArenaOk(a));

    // Phase 3: write into the reserved ones too, then free everything; the memory of
    // slab objects and page runs stays mapped and holds only traps again.
    for (Live &l : reserved) {
        auto code = pattern(l.len, 99);
        ASSERT_EQ(jit_update(l.p, code.data(), l.len), 0);
    }
    for (auto *v : {&reserved, &loaded})
        for (Live &l : *v) {
            bool large = l.len > 2 * MiB;
            ASSERT_EQ(jit_free(l.p), 0);
            if (!large) {
                EXPECT_TRUE(all_traps(l.p, l.usable)) << "freed, len " << l.len;
            }
        }
    ASSERT_TRUE(ArenaOk(a));

    // Phase 4: reuse hands out trap-filled memory again.
    for (size_t len : kLens) {
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, len));
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(all_traps(p, jit_size(p))) << "reused, len " << len;
        EXPECT_EQ(jit_free(p), 0);
    }
    ASSERT_TRUE(ArenaOk(a));
}

// Every executable byte of a fresh chunk is a trap, whether the chunk is exposed whole or
// only its first step so far (an arena's first chunk grows in steps, src/chunk/growth.h);
// the rest is not accessible at all.
TEST_P(Traps, WholeFreshChunkIsTraps) {
    jit_arena *a = arena();
    ASSERT_NE(a, nullptr);
    auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, 16));
    ASSERT_NE(p, nullptr);
    auto *base = reinterpret_cast<uint8_t *>(chunk_base(p));
    ChunkView v = chunk_view(chunk_base(p));
    EXPECT_GE(v.exposed, 4 * KiB);
    EXPECT_TRUE(v.rest_inaccessible) << "exposed " << v.exposed;
    EXPECT_TRUE(all_traps(base, v.exposed));
    EXPECT_EQ(jit_free(p), 0);
}

// Jumping into trap memory traps (SIGTRAP), rather than running leftovers.
TEST_P(Traps, CallingFreedCodeTraps) {
    jit_arena *a = arena();
    ASSERT_NE(a, nullptr);
    auto code = ret_imm(3);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(call_int(p), 3);
    ASSERT_EQ(jit_free(p), 0);
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(call_int(p), ::testing::KilledBySignal(SIGTRAP), "");
}

INSTANTIATE_TEST_SUITE_P(All, Traps, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

}  // namespace
