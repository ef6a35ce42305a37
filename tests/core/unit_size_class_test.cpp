// Unit tests of the slab size-class table.
#include "chunk/chunk.h"
#include "slab/size_class.h"

#include <gtest/gtest.h>

using namespace jitalloc;

namespace {

TEST(SizeClass, EveryLengthMapsToTheSmallestClassThatFits) {
    for (size_t len = 1; len <= kMaxSlabSize; len++) {
        int i = class_index(len);
        ASSERT_GE(i, 0) << len;
        ASSERT_LT(i, static_cast<int>(kNumClasses)) << len;
        ASSERT_GE(size_class(static_cast<unsigned>(i)).size, len) << len;
        if (i > 0) {
            ASSERT_LT(size_class(static_cast<unsigned>(i) - 1).size, len) << len;
        }
    }
}

TEST(SizeClass, OutOfRangeLengths) {
    EXPECT_EQ(class_index(0), -1);
    EXPECT_EQ(class_index(kMaxSlabSize + 1), -1);
    EXPECT_EQ(class_index(SIZE_MAX), -1);
    EXPECT_EQ(size_class(kNumClasses - 1).size, kMaxSlabSize);
}

TEST(SizeClass, WasteBounds) {
    for (size_t len = 1; len <= kMaxSlabSize; len++) {
        size_t size = size_class(static_cast<unsigned>(class_index(len))).size;
        if (len <= 256) {
            ASSERT_LT(size - len, 16u) << len;  // 16-byte steps at the low end
        } else {
            ASSERT_LT((size - len) * 8, len) << len;  // under 1/8 above
        }
    }
}

TEST(SizeClass, TableGeometry) {
    for (unsigned i = 0; i < kNumClasses; i++) {
        SCOPED_TRACE(i);
        const SizeClass &c = size_class(i);
        EXPECT_EQ(c.size % 16, 0u);
        if (i > 0) {
            EXPECT_GT(c.size, size_class(i - 1).size);
        }
        if (i < 16) {
            EXPECT_EQ(c.size, 16 * (i + 1));
        }
        EXPECT_GE(c.pages, 1u);
        EXPECT_LE(c.pages, kPagesPerChunk);
        EXPECT_GT(c.objects, 0u);
        EXPECT_LE(c.objects, kMaxSlabObjects);
        size_t bytes = size_t{c.pages} * kPageSize;
        EXPECT_EQ(c.objects, bytes / c.size);  // as many objects as fit
        // The slab's unusable tail stays small: at most 1/8 of it for every class.
        EXPECT_LE((bytes - size_t{c.objects} * c.size) * 8, bytes);
    }
}

// The top group (32..64 KiB) serves most of a BPF mix's bytes: its classes are sized to
// divide their slab, so a slab of more than one object loses at most 1/64 of itself (the
// 4 KiB steps lost 5..9%: 40960, 45056, 49152, 53248; resident/requested at 50 000 live
// fell from 1.161 to 1.135, bench/RESULTS.md section 5).
TEST(SizeClass, TopGroupSlabsLoseLittle) {
    for (unsigned i = 0; i < kNumClasses; i++) {
        const SizeClass &c = size_class(i);
        if (c.size <= 32768 || c.objects == 1)
            continue;
        SCOPED_TRACE(c.size);
        size_t bytes = size_t{c.pages} * kPageSize;
        EXPECT_LE((bytes - size_t{c.objects} * c.size) * 64, bytes);
    }
}

}  // namespace
