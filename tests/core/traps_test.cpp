// Trap bytes (int3, 0xCC) in fresh memory, in the tail past len up to jit_size, and in
// freed memory (read after free: the chunk stays mapped while it is cached).
#include "helpers.h"

#include "os/os.h"

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

// A trap fill writes up to the allocation's code end: the code's length (its requested
// length), or the whole object once an update wrote past it; past the code end the
// object holds traps already. Every writer for the contents; the kernel writers (proc_mem, memfd) also for the
// bytes asked of the kernel (through the os seam), which were the object's usable size
// before.
class TrapFillExtent : public ::testing::TestWithParam<jit_writer> {
protected:
    bool counts_bytes() const {
        return GetParam() == JIT_WRITER_PROC_MEM || GetParam() == JIT_WRITER_MEMFD;
    }
    // Kernel bytes fn() asks to write.
    template <class Fn>
    uint64_t bytes_of(Fn &&fn) {
        WriteCount w;
        fn();
        return w.bytes();
    }
    struct WriteCount : CallCount {
        WriteCount() : CallCount(jitalloc::os::Call::pwrite) {}
    };
};

TEST_P(TrapFillExtent, FreeWritesTheCodesLengthNotTheObjects) {
    jit_arena_options o = options(GetParam());
    o.retain_bytes = SIZE_MAX;  // freed memory stays mapped and readable
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    for (size_t len : {size_t{100}, size_t{1000}, size_t{5000}, size_t{20000}}) {
        auto code = add_imm(7, len);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        ASSERT_NE(p, nullptr);
        const size_t usable = jit_size(p);
        ASSERT_GT(usable, len) << "the object should be longer than its code";
        uint64_t bytes = bytes_of([&] { ASSERT_EQ(jit_free(p), 0); });
        EXPECT_TRUE(all_traps(p, usable)) << len;
        if (counts_bytes()) {
            EXPECT_EQ(bytes, len) << "usable " << usable;
        }
    }
    EXPECT_TRUE(ArenaOk(a));
}

TEST_P(TrapFillExtent, BytesAnUpdateWrotePastTheCodeAreFilledToo) {
    jit_arena_options o = options(GetParam());
    o.retain_bytes = SIZE_MAX;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    for (size_t len : {size_t{100}, size_t{5000}}) {
        auto code = add_imm(7, len);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        ASSERT_NE(p, nullptr);
        const size_t usable = jit_size(p);
        ASSERT_GE(usable, len + 8);
        const uint8_t late[4] = {0x90, 0x90, 0x90, 0xc3};
        ASSERT_EQ(jit_update(p + usable - 8, late, sizeof late), 0);  // past the code
        uint64_t bytes = bytes_of([&] { ASSERT_EQ(jit_free(p), 0); });
        EXPECT_TRUE(all_traps(p, usable)) << len;
        if (counts_bytes()) {
            EXPECT_EQ(bytes, usable) << "the whole object once an update wrote past the code";
        }
    }
    // A reservation never written is not written at its free.
    auto *r = static_cast<uint8_t *>(jit_arena_alloc(a, nullptr, 3000));
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(bytes_of([&] { ASSERT_EQ(jit_free(r), 0); }), 0u);
    EXPECT_TRUE(ArenaOk(a));
}

TEST_P(TrapFillExtent, ShrinkFillsTheTailUpToTheCodesEnd) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    auto code = add_imm(7, 3000);
    auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
    ASSERT_NE(p, nullptr);
    const size_t usable = jit_size(p);
    uint64_t bytes = bytes_of([&] { ASSERT_EQ(jit_shrink_alloc(p, 1000), 0); });
    EXPECT_TRUE(all_traps(p + 1000, jit_size(p) - 1000));
    EXPECT_TRUE(all_traps(p + 1000, usable - 1000)) << "the slab object keeps its size";
    if (counts_bytes()) {
        EXPECT_EQ(bytes, 2000u);
    }
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

// Lazy trap fill: the write that reuses a stale object covers the new code and the old
// code's extent, and leaves the object as code then traps.
TEST_P(TrapFillExtent, AStaleObjectIsOverwrittenUpToTheOldCodesEnd) {
    jit_arena_options o = options(GetParam());
    o.flags |= JIT_ARENA_LAZY_TRAP_FILL;
    ArenaHolder a(o);
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    auto old_code = add_imm(1, 1000), new_code = add_imm(2, 992);
    // A live neighbour keeps the slab from emptying (an empty slab may be given back).
    void *keep = jit_arena_alloc(a, old_code.data(), old_code.size());
    auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, old_code.data(), old_code.size()));
    ASSERT_TRUE(keep && p);
    const size_t usable = jit_size(p);
    ASSERT_GT(usable, old_code.size());
    EXPECT_EQ(bytes_of([&] { ASSERT_EQ(jit_free(p), 0); }), 0u) << "lazy: a free writes nothing";
    uint8_t *q = nullptr;
    uint64_t bytes = bytes_of([&] {
        q = static_cast<uint8_t *>(jit_arena_alloc(a, new_code.data(), new_code.size()));
    });
    ASSERT_EQ(q, p) << "the stale object is the lowest free one of its class";
    ASSERT_EQ(jit_size(q), usable);
    EXPECT_TRUE(same_bytes(q, new_code));
    EXPECT_TRUE(all_traps(q + new_code.size(), usable - new_code.size()));
    EXPECT_EQ(call_int(q, 1), 3);
    if (counts_bytes()) {
        EXPECT_EQ(bytes, old_code.size()) << "one write: new code, then traps over the old";
    }
    EXPECT_EQ(jit_free(q), 0);
    EXPECT_EQ(jit_free(keep), 0);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(All, TrapFillExtent, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

}  // namespace
