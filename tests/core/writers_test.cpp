// Each writer strategy, forced through jit_arena_options.writer: round trip of alloc,
// call, update, call, free on every allocation path; the stats name the writer.
#include "helpers.h"

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
#if !JT_CAN_RUN_CODE
    GTEST_SKIP() << "calls x86-64 code";
#endif
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr) << strerror(a.error());
    int k = 0;
    for (size_t len : {size_t{7}, size_t{200}, size_t{5000}, size_t{20000}, size_t{3} * MiB}) {
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
#if !JT_CAN_RUN_CODE
    GTEST_SKIP() << "calls x86-64 code";
#endif
    ArenaHolder a(GetParam());
    ASSERT_NE(a.get(), nullptr);
    void *p = jit_arena_alloc(a, nullptr, 48);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(all_bytes(p, jit_size(p), kTrap));
    auto code = ret_imm(77);
    ASSERT_EQ(jit_update(p, code.data(), code.size()), 0);
    EXPECT_EQ(call_int(p), 77);
    EXPECT_TRUE(all_bytes(static_cast<uint8_t *>(p) + code.size(), jit_size(p) - code.size(), kTrap));
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

}  // namespace
