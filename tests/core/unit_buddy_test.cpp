// Unit tests of the buddy allocator on fake chunks: page descriptors only, nothing mapped.
#include "buddy/buddy.h"

#include "helpers.h"

#include <sys/mman.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace jitalloc;

namespace {

// Fake chunks (never dereferenced: the buddy works on descriptors only), linked like
// the arena's chunk list.
class BuddyTest : public ::testing::Test {
protected:
    Buddy buddy;
    std::vector<std::unique_ptr<Chunk>> owned;
    Chunk *list = nullptr;

    Chunk *add_chunk() {
        owned.push_back(std::make_unique<Chunk>());
        Chunk *c = owned.back().get();
        c->base = reinterpret_cast<uint8_t *>(uintptr_t{0x4000'0000} + owned.size() * kChunkSize);
        c->size = kChunkSize;
        for (unsigned i = 0; i < kPagesPerChunk; i++) {
            c->pages[i].chunk = c;
            c->pages[i].index = static_cast<uint16_t>(i);
        }
        c->next = list;
        if (list)
            list->prev = c;
        list = c;
        buddy.add_chunk(c);
        return c;
    }

    ::testing::AssertionResult Valid() {
        std::string msg;
        bool ok = buddy.check(list, msg);
        return jt::Checked(ok, msg);
    }
    // The checker rejects the current state with a message containing `what`.
    ::testing::AssertionResult CheckFails(const char *what) {
        std::string msg;
        bool ok = buddy.check(list, msg);
        return jt::FailedWith(ok, msg, what);
    }

    uint64_t total_free_blocks() {
        uint64_t n = 0;
        for (unsigned o = 0; o <= kMaxOrder; o++)
            n += buddy.nr_free(o);
        return n;
    }
};

TEST_F(BuddyTest, FreshChunkIsOneMaxOrderBlock) {
    Chunk *c = add_chunk();
    EXPECT_TRUE(Valid());
    EXPECT_EQ(buddy.nr_free(kMaxOrder), 1u);
    EXPECT_EQ(buddy.nr_cached(kMaxOrder), 1u);
    EXPECT_EQ(buddy.free_pages(), kPagesPerChunk);
    EXPECT_EQ(c->free_pages, kPagesPerChunk);
    EXPECT_EQ(buddy.any_free_chunk(), c);
}

TEST_F(BuddyTest, SinglePageSplitsDownAndCoalescesBack) {
    Chunk *c = add_chunk();
    PageDesc *d = buddy.alloc(1);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->chunk, c);
    EXPECT_EQ(d->index, 0u);
    EXPECT_EQ(d->state.load(), PageState::pages_head);
    EXPECT_EQ(d->npages, 1u);
    // One free buddy per order 0..8 is left over from splitting the 2 MiB block.
    for (unsigned o = 0; o < kMaxOrder; o++) {
        EXPECT_EQ(buddy.nr_free(o), 1u) << "order " << o;
    }
    EXPECT_EQ(buddy.nr_free(kMaxOrder), 0u);
    EXPECT_EQ(buddy.free_pages(), kPagesPerChunk - 1);
    EXPECT_EQ(buddy.any_free_chunk(), nullptr);
    EXPECT_TRUE(Valid());

    EXPECT_TRUE(buddy.free(c, d->index, 1));  // chunk wholly free again
    EXPECT_EQ(total_free_blocks(), 1u);
    EXPECT_EQ(buddy.nr_free(kMaxOrder), 1u);
    EXPECT_TRUE(Valid());
}

// A chunk's metadata as chunk_create gets it (src/chunk/chunk.cpp): zero-filled memory
// from mmap, default-initialised, nothing set up by hand. All-zero descriptors are free
// and head no block (PageDesc), the buddy gives every descriptor it lists its chunk and
// index, and the pages of descriptors it never used stay untouched (a fresh process's
// first jit_alloc pays a page fault for each page it touches, issue 16).
TEST_F(BuddyTest, ZeroFilledChunkWorksAsIs) {
    const size_t len = (sizeof(Chunk) + 4095) / 4096 * 4096;
    void *m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    Chunk *c = new (m) Chunk;
    c->base = reinterpret_cast<uint8_t *>(uintptr_t{0x7000'0000});
    c->size = kChunkSize;
    list = c;
    buddy.add_chunk(c);
    PageDesc *d = buddy.alloc(1);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->chunk, c);
    EXPECT_EQ(d->index, 0u);

    // Splitting 512 pages down to one wrote descriptors 0, 1, 2, 4, ..., 256 only. (Read
    // before the checker runs: it reads every descriptor, which maps the others too.)
    const long os_page = sysconf(_SC_PAGESIZE);
    const size_t os_pages = (len + os_page - 1) / os_page;
    if (os_pages >= 4) {
        std::vector<unsigned char> vec(os_pages);
        ASSERT_EQ(mincore(m, len, vec.data()), 0);
        std::vector<bool> expect(os_pages);
        expect[0] = true;  // the header
        for (unsigned i : {0u, 1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u}) {
            auto off = reinterpret_cast<uintptr_t>(&c->pages[i]) - reinterpret_cast<uintptr_t>(m);
            expect[off / os_page] = true;
            expect[(off + sizeof(PageDesc) - 1) / os_page] = true;
        }
        for (size_t p = 0; p < os_pages; p++)
            EXPECT_EQ((vec[p] & 1) != 0, static_cast<bool>(expect[p])) << "metadata page " << p;
    }
    EXPECT_TRUE(Valid());

    // Every page handed out one by one, then all given back: descriptors never written
    // before work like the others.
    std::vector<PageDesc *> got{d};
    while (PageDesc *e = buddy.alloc(1)) {
        EXPECT_EQ(e->chunk, c);
        EXPECT_EQ(&c->pages[e->index], e);
        got.push_back(e);
    }
    EXPECT_EQ(got.size(), kPagesPerChunk);
    EXPECT_TRUE(Valid());
    for (size_t i = 0; i < got.size(); i++)
        EXPECT_EQ(buddy.free(c, got[i]->index, 1), i + 1 == got.size());
    EXPECT_EQ(buddy.nr_free(kMaxOrder), 1u);
    EXPECT_TRUE(Valid());
    ASSERT_TRUE(buddy.remove_chunk(c));
    list = nullptr;
    c->~Chunk();
    munmap(m, len);
}

TEST_F(BuddyTest, ExactRunsGiveTheTailBack) {
    Chunk *c = add_chunk();
    for (unsigned n : {3u, 5u, 7u, 100u, 257u}) {
        SCOPED_TRACE(n);
        PageDesc *d = buddy.alloc(n);
        ASSERT_NE(d, nullptr);
        EXPECT_EQ(d->npages, n);
        EXPECT_EQ(d->state.load(), PageState::pages_head);
        for (unsigned i = d->index + 1; i < d->index + n; i++) {
            EXPECT_EQ(c->pages[i].state.load(), PageState::pages_tail);
            EXPECT_EQ(c->pages[i].head, d->index);
        }
        // Exactly n pages left the free lists, not the power of two above n.
        EXPECT_EQ(buddy.free_pages(), kPagesPerChunk - n);
        EXPECT_TRUE(Valid());
        EXPECT_TRUE(buddy.free(c, d->index, n));
        EXPECT_EQ(buddy.nr_free(kMaxOrder), 1u);
        EXPECT_TRUE(Valid());
    }
}

TEST_F(BuddyTest, BoundsAndExhaustion) {
    EXPECT_EQ(buddy.alloc(1), nullptr);  // no chunk yet
    Chunk *c = add_chunk();
    EXPECT_EQ(buddy.alloc(0), nullptr);
    EXPECT_EQ(buddy.alloc(kPagesPerChunk + 1), nullptr);
    PageDesc *whole = buddy.alloc(kPagesPerChunk);
    ASSERT_NE(whole, nullptr);
    EXPECT_EQ(buddy.free_pages(), 0u);
    EXPECT_EQ(buddy.alloc(1), nullptr);
    EXPECT_TRUE(Valid());
    EXPECT_TRUE(buddy.free(c, 0, kPagesPerChunk));
    EXPECT_TRUE(Valid());
}

TEST_F(BuddyTest, SmallestOrderFirstKeepsWholeChunksIntact) {
    Chunk *a = add_chunk();
    PageDesc *d1 = buddy.alloc(1);
    ASSERT_NE(d1, nullptr);
    Chunk *b = add_chunk();  // wholly free
    // Later small allocations come from the split chunk, not from the whole one.
    for (int i = 0; i < 20; i++) {
        PageDesc *d = buddy.alloc(2);
        ASSERT_NE(d, nullptr);
        EXPECT_EQ(d->chunk, a);
    }
    EXPECT_EQ(buddy.any_free_chunk(), b);
    EXPECT_TRUE(Valid());
}

TEST_F(BuddyTest, RemoveChunkOnlyWhenWhollyFree) {
    Chunk *c = add_chunk();
    PageDesc *d = buddy.alloc(4);
    ASSERT_NE(d, nullptr);
    EXPECT_FALSE(buddy.remove_chunk(c));
    EXPECT_TRUE(Valid());
    EXPECT_TRUE(buddy.free(c, d->index, 4));
    ASSERT_TRUE(buddy.remove_chunk(c));
    EXPECT_EQ(buddy.nr_released(kMaxOrder), 1u);
    EXPECT_EQ(buddy.free_pages(), 0u);
    // Removed chunks are no longer on the arena's list either.
    Chunk *saved = list;
    list = nullptr;
    EXPECT_TRUE(Valid());
    list = saved;
    buddy.undo_remove_chunk(c);
    EXPECT_EQ(buddy.nr_released(kMaxOrder), 0u);
    EXPECT_EQ(buddy.nr_free(kMaxOrder), 1u);
    EXPECT_TRUE(Valid());
}

TEST_F(BuddyTest, ForgetChunkDropsItsFreeBlocks) {
    Chunk *a = add_chunk();
    Chunk *b = add_chunk();
    ASSERT_NE(buddy.alloc(3), nullptr);
    ASSERT_NE(buddy.alloc(3), nullptr);
    Chunk *used = buddy.alloc(1)->chunk;
    Chunk *other = used == a ? b : a;
    buddy.forget_chunk(used);
    // Only the other chunk's pages remain on the free lists.
    EXPECT_EQ(buddy.free_pages(), other->free_pages);
    EXPECT_EQ(used->free_pages, 0u);
    list = other;
    other->next = other->prev = nullptr;
    EXPECT_TRUE(Valid());
}

TEST_F(BuddyTest, RandomAllocFreeKeepsInvariants) {
    add_chunk();
    add_chunk();
    add_chunk();
    std::mt19937 rng(1234);
    struct Run {
        Chunk *c;
        unsigned first, n;
    };
    std::vector<Run> live;
    std::vector<uint8_t> used(3 * kPagesPerChunk, 0);
    auto slot = [&](const Run &r, unsigned i) {
        size_t ci = 0;
        while (owned[ci].get() != r.c)
            ci++;
        return ci * kPagesPerChunk + r.first + i;
    };
    for (int step = 0; step < 4000; step++) {
        bool do_alloc = live.empty() || rng() % 100 < 55;
        if (do_alloc) {
            unsigned n = rng() % 8 == 0 ? 1 + rng() % 300 : 1 + rng() % 16;
            uint64_t before = buddy.free_pages();
            PageDesc *d = buddy.alloc(n);
            if (!d) {
                // Failure only when no free block of a fitting order exists.
                unsigned want = 0;
                while ((1u << want) < n)
                    want++;
                for (unsigned o = want; o <= kMaxOrder; o++) {
                    ASSERT_EQ(buddy.nr_free(o), 0u);
                }
                continue;
            }
            ASSERT_EQ(buddy.free_pages(), before - n);
            Run r{d->chunk, d->index, n};
            for (unsigned i = 0; i < n; i++) {
                ASSERT_EQ(used[slot(r, i)], 0) << "page handed out twice";
                used[slot(r, i)] = 1;
            }
            live.push_back(r);
        } else {
            size_t k = rng() % live.size();
            Run r = live[k];
            live[k] = live.back();
            live.pop_back();
            for (unsigned i = 0; i < r.n; i++)
                used[slot(r, i)] = 0;
            bool whole = buddy.free(r.c, r.first, r.n);
            ASSERT_EQ(whole, r.c->free_pages == kPagesPerChunk);
        }
        if (step % 50 == 0) {
            ASSERT_TRUE(Valid()) << "step " << step;
        }
    }
    for (const Run &r : live)
        buddy.free(r.c, r.first, r.n);
    EXPECT_TRUE(Valid());
    EXPECT_EQ(buddy.nr_free(kMaxOrder), 3u);
    EXPECT_EQ(total_free_blocks(), 3u);
}

// The checker must be able to fail: corrupt descriptors one way at a time.
TEST_F(BuddyTest, CheckDetectsFreePageMarkedUsed) {
    Chunk *c = add_chunk();
    ASSERT_NE(buddy.alloc(1), nullptr);
    c->pages[kPagesPerChunk - 1].state.store(PageState::slab);
    EXPECT_TRUE(CheckFails("not free"));
}

TEST_F(BuddyTest, CheckDetectsWrongFreeCount) {
    Chunk *c = add_chunk();
    ASSERT_NE(buddy.alloc(1), nullptr);
    c->free_pages++;
    EXPECT_TRUE(CheckFails("free_pages"));
}

TEST_F(BuddyTest, CheckDetectsBrokenRunTail) {
    Chunk *c = add_chunk();
    PageDesc *d = buddy.alloc(5);
    ASSERT_NE(d, nullptr);
    c->pages[d->index + 2].head = static_cast<uint16_t>(d->index + 1);
    EXPECT_TRUE(CheckFails("tail"));
}

TEST_F(BuddyTest, CheckDetectsUsedPageOutsideAnyBlock) {
    Chunk *c = add_chunk();
    PageDesc *d = buddy.alloc(1);
    ASSERT_NE(d, nullptr);
    // Mark the allocated page free without putting it on a list.
    c->pages[d->index].state.store(PageState::free);
    EXPECT_TRUE(CheckFails("outside any free block"));
}

}  // namespace
