// Update sources in code memory (issue 10, item 5): memmove semantics with every writer.
// jit_update(p + 16, p, 64), the reverse, sources of many KiB overlapping their
// destination, a source in another allocation, jit_alloc copying live code, and a failed
// overlapping update (nothing changed).
#include "rel_common.h"
#include "../core/helpers.h"

#include "os/os.h"

#include <gtest/gtest.h>

namespace os = jitalloc::os;

namespace {

class OverlapUpdate : public ::testing::TestWithParam<jit_writer> {
protected:
    void SetUp() override {
        a_ = rel::make_arena(GetParam());
        ASSERT_NE(a_, nullptr) << jit_writer_name(GetParam());
    }
    void TearDown() override {
        EXPECT_EQ("", rel::check(a_));
        EXPECT_EQ(0, jit_arena_destroy(a_));
    }
    // A live allocation of len bytes holding jt::pattern(len, seed).
    uint8_t *alloc(size_t len, uint32_t seed) {
        std::vector<uint8_t> code = jt::pattern(len, seed);
        return static_cast<uint8_t *>(jit_arena_alloc(a_, code.data(), len));
    }
    // jit_update(p + to, p + from, len) must act like memmove on a copy of p's bytes.
    void expect_memmove(uint8_t *p, size_t size, size_t to, size_t from, size_t len) {
        std::vector<uint8_t> want = jt::snapshot(p, size);
        std::memmove(want.data() + to, want.data() + from, len);
        ASSERT_EQ(0, jit_arena_update(a_, p + to, p + from, len))
            << "to " << to << " from " << from << " len " << len << ": " << std::strerror(errno);
        EXPECT_TRUE(jt::same_bytes(p, want)) << "to " << to << " from " << from << " len " << len;
    }
    jit_arena *a_ = nullptr;
};

TEST_P(OverlapUpdate, SmallSourceOverlapsDestination) {
    uint8_t *p = alloc(256, 1);
    ASSERT_NE(p, nullptr);
    expect_memmove(p, 256, 16, 0, 64);   // jit_update(p + 16, p, 64)
    expect_memmove(p, 256, 0, 16, 64);   // the other direction
    expect_memmove(p, 256, 1, 0, 255);   // by one byte
    expect_memmove(p, 256, 0, 0, 256);   // onto itself
    EXPECT_EQ(0, jit_arena_free(a_, p));
}

TEST_P(OverlapUpdate, LargeSourceOverlapsDestination) {
    constexpr size_t kSize = 64 * 1024;  // a page run; copies of many KiB
    uint8_t *p = alloc(kSize, 2);
    ASSERT_NE(p, nullptr);
    expect_memmove(p, kSize, 100, 0, 20000);
    expect_memmove(p, kSize, 0, 4096 + 7, 40000);
    expect_memmove(p, kSize, 4096, 0, kSize - 4096);
    EXPECT_EQ(0, jit_arena_free(a_, p));
}

TEST_P(OverlapUpdate, SourceInAnotherAllocation) {
    uint8_t *p = alloc(512, 3), *q = alloc(512, 4);
    ASSERT_TRUE(p && q);
    std::vector<uint8_t> want = jt::snapshot(p, 512);
    std::memcpy(want.data() + 32, q, 300);
    ASSERT_EQ(0, jit_arena_update(a_, p + 32, q, 300)) << std::strerror(errno);
    EXPECT_TRUE(jt::same_bytes(p, want));
    // jit_alloc copying live code: the new allocation holds the source's bytes.
    auto *r = static_cast<uint8_t *>(jit_arena_alloc(a_, q, 512));
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(0, std::memcmp(r, q, 512));
    for (uint8_t *x : {p, q, r})
        EXPECT_EQ(0, jit_arena_free(a_, x));
}

// The call a writer's write makes; persistent_alias cannot fail once started.
bool write_call(jit_writer w, os::Call &c) {
    switch (w) {
    case JIT_WRITER_PROC_MEM:
    case JIT_WRITER_MEMFD: c = os::Call::pwrite; return true;
    case JIT_WRITER_TEMP_ALIAS: c = os::Call::mmap; return true;
    case JIT_WRITER_MPROTECT: c = os::Call::mprotect; return true;
    default: return false;
    }
}

TEST_P(OverlapUpdate, FailedOverlappingUpdateChangesNothing) {
    os::Call call;
    if (!write_call(GetParam(), call))
        GTEST_SKIP() << "the persistent alias writer cannot fail part-way";
    uint8_t *p = alloc(8192, 5);
    ASSERT_NE(p, nullptr);
    std::vector<uint8_t> before = jt::snapshot(p, 8192);
    for (int error : {EIO, ENOMEM}) {
        os::Fault f;
        f.nth = 1;
        f.error = error;
        f.mask = os::mask_of(call);
        os::set_fault(f);
        int rc = jit_arena_update(a_, p + 16, p, 6000);
        int err = errno;
        os::clear_fault();
        EXPECT_EQ(-1, rc);
        EXPECT_EQ(error, err);
        EXPECT_TRUE(jt::same_bytes(p, before));
    }
    expect_memmove(p, 8192, 16, 0, 6000);  // and then it works
    EXPECT_EQ(0, jit_arena_free(a_, p));
}

INSTANTIATE_TEST_SUITE_P(All, OverlapUpdate, ::testing::ValuesIn(rel::kWriters),
                         [](const auto &info) { return std::string(jit_writer_name(info.param)); });

}  // namespace
