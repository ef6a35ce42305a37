// Each writer strategy, forced through jit_arena_options.writer: round trip of alloc,
// call, update, call, free on every allocation path; the stats name the writer.
#include "helpers.h"

#include "os/os.h"

using namespace jt;

namespace {

class Writers : public ::testing::TestWithParam<jit_writer> {};

TEST_P(Writers, StatsShowTheWriter) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << writer_name(GetParam()) << ": " << strerror(a.error());
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.writer, GetParam());
    EXPECT_STREQ(s.writer_name, writer_name(GetParam()));
    EXPECT_EQ(s.strict_wx, GetParam() == JIT_WRITER_PERSISTENT_ALIAS ? 0u : 1u);
    char buf[8192];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(jit_stats_print(f, &s), 0);
    std::fclose(f);
    EXPECT_NE(std::string(buf).find(writer_name(GetParam())), std::string::npos) << buf;
}

TEST_P(Writers, RoundTripOnEveryPath) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    int k = 0;
    for (size_t len : {size_t{7}, size_t{200}, size_t{5000}, run_len(), size_t{3} * MiB}) {
        SCOPED_TRACE(len);
        k++;
        auto code = add_imm(100 * k, len);
        void *p = jit_arena_alloc(a, code.data(), code.size());
        ASSERT_NE(p, nullptr) << strerror(errno);
        EXPECT_EQ(jit_arena_of(p), a.get());
        EXPECT_EQ(call_int(p, 1), 100 * k + 1);
        int32_t imm = -7 * k;
        ASSERT_EQ(jit_update(static_cast<uint8_t *>(p) + kAddImmOff, &imm, 4), 0);
        EXPECT_EQ(call_int(p, 1), 1 - 7 * k);
        // A second function written into the tail with jit_arena_update.
        size_t usable = jit_size(p);
        auto tail = ret_imm(4242);
        uint8_t *t = static_cast<uint8_t *>(p) + usable - tail.size();
        ASSERT_EQ(jit_arena_update(a, t, tail.data(), tail.size()), 0);
        EXPECT_EQ(call_int(t), 4242);
        EXPECT_TRUE(ArenaOk(a));
        struct jit_stats s = stats_of(a);
        EXPECT_EQ(s.total_updates, 2u * k);
        EXPECT_EQ(jit_arena_free(a, p), 0);
    }
    struct jit_stats s = stats_of(a);
    EXPECT_EQ(s.allocations, 0u);
    EXPECT_EQ(s.total_allocs, s.total_frees);
    EXPECT_TRUE(ArenaOk(a));
}

TEST_P(Writers, ReservedMemoryIsWrittenLater) {
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    void *p = jit_arena_alloc(a, nullptr, 48);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(all_traps(p, jit_size(p)));
    auto code = ret_imm(77);
    ASSERT_EQ(jit_update(p, code.data(), code.size()), 0);
    EXPECT_EQ(call_int(p), 77);
    EXPECT_TRUE(all_traps(static_cast<uint8_t *>(p) + code.size(), jit_size(p) - code.size()));
    EXPECT_EQ(jit_free(p), 0);
}

INSTANTIATE_TEST_SUITE_P(All, Writers, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

TEST(WriterAuto, ChoosesAStrictWriterAndNeverThePersistentAlias) {
    ArenaHolder a(JIT_WRITER_AUTO);
    ASSERT_NE(a.get(), nullptr);
    struct jit_stats s = stats_of(a);
    EXPECT_NE(s.writer, JIT_WRITER_AUTO);
    EXPECT_NE(s.writer, JIT_WRITER_PERSISTENT_ALIAS);
    EXPECT_EQ(s.strict_wx, 1u);
    // On Linux with /proc/self/mem writable (the normal case) AUTO picks proc_mem.
    EXPECT_EQ(s.writer, JIT_WRITER_PROC_MEM);
}

TEST(WriterNames, AreStable) {
    EXPECT_STREQ(jit_writer_name(JIT_WRITER_AUTO), "auto");
    EXPECT_STREQ(jit_writer_name(JIT_WRITER_PROC_MEM), "proc_mem");
    EXPECT_STREQ(jit_writer_name(JIT_WRITER_MEMFD), "memfd");
    EXPECT_STREQ(jit_writer_name(JIT_WRITER_TEMP_ALIAS), "temp_alias");
    EXPECT_STREQ(jit_writer_name(JIT_WRITER_PERSISTENT_ALIAS), "persistent_alias");
    EXPECT_STREQ(jit_writer_name(JIT_WRITER_MPROTECT), "mprotect");
    EXPECT_STREQ(jit_writer_name(static_cast<jit_writer>(42)), "?");
}

// ---------------------------------------------------------------- failed writes

namespace os = jitalloc::os;

// The system call each writer's write path depends on (persistent alias: none).
int key_call_mask(jit_writer w) {
    switch (w) {
    case JIT_WRITER_PROC_MEM:
    case JIT_WRITER_MEMFD: return static_cast<int>(os::mask_of(os::Call::pwrite));
    case JIT_WRITER_TEMP_ALIAS: return static_cast<int>(os::mask_of(os::Call::mmap));
    case JIT_WRITER_MPROTECT: return static_cast<int>(os::mask_of(os::Call::mprotect));
    default: return 0;
    }
}

class FailedWrites : public ::testing::TestWithParam<jit_writer> {
protected:
    void TearDown() override { os::clear_fault(); }
};

// A write whose system call fails returns that error and leaves code, stats and the
// arena's invariants as they were; an allocation whose write fails returns NULL.
TEST_P(FailedWrites, ChangeNothing) {
    if (!key_call_mask(GetParam()))
        GTEST_SKIP() << "the persistent alias writes with memcpy: nothing to fail";
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    auto code = pattern(100, 5);
    void *p = jit_arena_alloc(a, code.data(), code.size());
    void *warm = jit_arena_alloc(a, code.data(), code.size());  // keeps the slab partial
    ASSERT_TRUE(p && warm);
    auto before_bytes = snapshot(p, 112);
    struct jit_stats before = stats_of(a);
    auto other = pattern(100, 6);

    os::Fault f;
    f.nth = 1;
    f.error = EIO;
    f.mask = static_cast<uint32_t>(key_call_mask(GetParam()));
    f.sticky = true;
    os::set_fault(f);
    errno = 0;
    EXPECT_EQ(jit_update(p, other.data(), other.size()), -1);
    EXPECT_EQ(errno, EIO);
    errno = 0;
    EXPECT_EQ(jit_arena_alloc(a, other.data(), other.size()), nullptr);
    EXPECT_EQ(errno, EIO);
    EXPECT_GT(os::faults_injected(), 0u);
    os::clear_fault();

    EXPECT_TRUE(same_bytes(p, before_bytes));
    EXPECT_TRUE(SameStats(before, stats_of(a)));
    EXPECT_TRUE(ArenaOk(a));
    // And everything works again once the fault is gone.
    EXPECT_EQ(jit_update(p, other.data(), other.size()), 0);
    EXPECT_TRUE(same_bytes(p, other));
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_EQ(jit_free(warm), 0);
}

// Short writes (the kernel writes half of what was asked, every time) are completed.
TEST_P(FailedWrites, ShortWritesAreCompleted) {
    if (GetParam() != JIT_WRITER_PROC_MEM && GetParam() != JIT_WRITER_MEMFD)
        GTEST_SKIP() << "only the pwrite writers can write short";
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    void *p = jit_arena_alloc(a, nullptr, 3000);
    ASSERT_NE(p, nullptr);
    auto code = pattern(3000, 9);
    os::Fault f;
    f.nth = 1;
    f.mask = os::mask_of(os::Call::pwrite);
    f.sticky = true;
    f.short_io = true;
    os::set_fault(f);
    EXPECT_EQ(jit_update(p, code.data(), code.size()), 0);
    EXPECT_GT(os::faults_injected(), 1u);
    os::clear_fault();
    EXPECT_TRUE(same_bytes(p, code));
    EXPECT_EQ(jit_free(p), 0);
    EXPECT_TRUE(ArenaOk(a));
}

INSTANTIATE_TEST_SUITE_P(All, FailedWrites, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

TEST(SyncCore, FlagTurnsMembarrierOff) {
    jit_arena_options o = options();
    o.flags |= JIT_ARENA_NO_SYNC_CORE;
    ArenaHolder off(o);
    ASSERT_NE(off.get(), nullptr);
    EXPECT_EQ(stats_of(off).sync_core, 0u);
    void *p = jit_arena_alloc(off, nullptr, 16);
    uint8_t b = 0xc3;
    EXPECT_EQ(jit_update(p, &b, 1), 0);
    EXPECT_EQ(jit_free(p), 0);
}

TEST(Destroy, ArenaWithLiveAllocationsUnmapsThem) {
    jit_arena *a = jit_arena_create(nullptr);
    ASSERT_NE(a, nullptr);
    void *small = jit_arena_alloc_named(a, nullptr, 64, "small");
    void *large = jit_arena_alloc_named(a, nullptr, 3 * MiB, "large");
    ASSERT_TRUE(small && large);
    auto addr = reinterpret_cast<uintptr_t>(small);
    ASSERT_EQ(jit_arena_destroy(a), 0);
    EXPECT_EQ(jit_size(small), 0u);
    EXPECT_EQ(jit_size(large), 0u);
    errno = 0;
    EXPECT_EQ(jit_free(small), -1);
    EXPECT_EQ(errno, EINVAL);
    for (const Mapping &m : read_maps())
        EXPECT_FALSE(m.start <= addr && addr < m.end && m.executable()) << m.line;
}

}  // namespace
