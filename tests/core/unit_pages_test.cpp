// OS page rounding (os::page_span) for every page size an arm64 kernel may run with:
// the mprotect writer's range, temp_alias's file offsets and mincore all go through it,
// while the buddy keeps its 4 KiB granule. Only 4 KiB kernels are booted in CI, so the
// 16 KiB and 64 KiB cases are checked here with the page size passed in.
#include "os/os.h"
#include "chunk/chunk.h"

#include "helpers.h"

#include <unistd.h>

using jitalloc::os::page_span;

namespace {

class PageSpan : public ::testing::TestWithParam<size_t> {};

TEST_P(PageSpan, CoversTheRangeWithWholePages) {
    const size_t page = GetParam();
    // Writes at the start, inside and at the end of a buddy page, across page ends.
    const uintptr_t base = uintptr_t{64} << 30;  // 2 MiB (chunk) aligned
    for (uintptr_t off : {uintptr_t{0}, uintptr_t{16}, uintptr_t{4096 - 4}, uintptr_t{4096},
                          uintptr_t{page - 16}, uintptr_t{page}, uintptr_t{3 * page + 100}})
        for (size_t len : {size_t{1}, size_t{4}, size_t{64}, size_t{4096}, page, 2 * page + 1}) {
            auto s = page_span(base + off, len, page);
            EXPECT_EQ(s.start % page, 0u) << off << "+" << len;
            EXPECT_EQ(s.len % page, 0u) << off << "+" << len;
            EXPECT_LE(s.start, base + off);
            EXPECT_GE(s.start + s.len, base + off + len);
            // Not one page more than needed on either side.
            EXPECT_GT(s.start + page, base + off);
            EXPECT_LT(s.start + s.len - page, base + off + len);
        }
}

TEST_P(PageSpan, FileOffsetsOfAChunkStayInsideIt) {
    // temp_alias maps the pages of the memfd holding the write: for any write inside a
    // 2 MiB chunk, the mapped offsets stay inside the chunk's file (a chunk is a whole
    // number of pages of every size up to 2 MiB).
    const size_t page = GetParam();
    ASSERT_EQ(jitalloc::kChunkSize % page, 0u);
    for (size_t off : {size_t{0}, jitalloc::kChunkSize - 4, jitalloc::kChunkSize / 2 + 12})
        for (size_t len : {size_t{4}, size_t{100}}) {
            if (off + len > jitalloc::kChunkSize)
                continue;
            auto s = page_span(off, len, page);
            EXPECT_LE(s.start + s.len, jitalloc::kChunkSize) << off << "+" << len;
        }
}

INSTANTIATE_TEST_SUITE_P(PageSizes, PageSpan, ::testing::Values(4096, 16384, 65536),
                         [](const auto &i) { return std::to_string(i.param / 1024) + "K"; });

TEST(PageSize, IsTheKernels) {
    EXPECT_EQ(jitalloc::os::page_size(), static_cast<size_t>(sysconf(_SC_PAGESIZE)));
    EXPECT_EQ(jitalloc::kChunkSize % jitalloc::os::page_size(), 0u);
}

}  // namespace
