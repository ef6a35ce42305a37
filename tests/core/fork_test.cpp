// fork(): the child runs and patches its own copy of the code; the parent's code is
// never changed by the child, nor the child's by the parent. For every writer (the
// memfd family hands the child private copies of its memfds).
#include "helpers.h"

#include <condition_variable>
#include <mutex>
#include <thread>

using namespace jt;

namespace {

class Fork : public ::testing::TestWithParam<jit_writer> {
protected:
    std::unique_ptr<ArenaHolder> arena;
    void *small = nullptr, *run = nullptr, *large = nullptr;

    void SetUp() override {
        arena = std::make_unique<ArenaHolder>(GetParam());
        ASSERT_NE(arena->get(), nullptr) << strerror(arena->error());
        auto c1 = add_imm(1, 32), c2 = add_imm(2, run_len()), c3 = add_imm(3, 64);
        small = jit_arena_alloc(*arena, c1.data(), c1.size());
        run = jit_arena_alloc(*arena, c2.data(), c2.size());
        large = jit_arena_alloc(*arena, nullptr, 3 * MiB);
        ASSERT_TRUE(small && run && large);
        ASSERT_EQ(jit_update(large, c3.data(), c3.size()), 0);
    }
    void TearDown() override {
        if (!arena || !arena->get())
            return;
        for (void *p : {small, run, large})
            if (p) {
                EXPECT_EQ(jit_free(p), 0);
            }
        EXPECT_TRUE(ArenaOk(*arena));
    }

    // Patches all three functions to return x + base + k.
    static bool patch_all(void *const *fns, int base) {
        for (int k = 0; k < 3; k++) {
            int32_t imm = base + k;
            if (jit_update(static_cast<uint8_t *>(fns[k]) + kAddImmOff, &imm, 4) != 0)
                return false;
        }
        return true;
    }
    static bool all_return(void *const *fns, int base) {
        for (int k = 0; k < 3; k++)
            if (call_int(fns[k], 0) != base + k)
                return false;
        return true;
    }
};

TEST_P(Fork, ChildPatchesItsCopyParentUnchanged) {
    void *fns[3] = {small, run, large};
    ASSERT_TRUE(all_return(fns, 1));
    auto before = snapshot(small, 32);
    int st = in_child([&] {
        if (!all_return(fns, 1))
            return 10;
        if (!patch_all(fns, 100))
            return 11;
        if (!all_return(fns, 100))
            return 12;
        // The child can allocate, run and free code of its own too.
        auto code = ret_imm(55);
        void *p = jit_arena_alloc(*arena, code.data(), code.size());
        if (!p || call_int(p) != 55 || jit_free(p) != 0)
            return 13;
        char msg[128];
        if (jit_arena_check(*arena, msg, sizeof msg) != 0)
            return 14;
        return 0;
    });
    EXPECT_EQ(st, 0);
    EXPECT_TRUE(all_return(fns, 1)) << "the child's jit_update reached the parent";
    EXPECT_TRUE(same_bytes(small, before));
    // And the parent can still patch its own.
    EXPECT_TRUE(patch_all(fns, 7));
    EXPECT_TRUE(all_return(fns, 7));
}

TEST_P(Fork, ParentPatchesAfterForkChildUnchanged) {
    void *fns[3] = {small, run, large};
    int st = fork_then(
        [&] {
            EXPECT_TRUE(patch_all(fns, 200));
            EXPECT_TRUE(all_return(fns, 200));
        },
        [&] {
            if (!all_return(fns, 1))
                return 21;  // the parent's patch reached the child
            return patch_all(fns, 300) && all_return(fns, 300) ? 0 : 22;
        });
    EXPECT_EQ(st, 0);
    EXPECT_TRUE(all_return(fns, 200)) << "the child's patch reached the parent";
}

TEST_P(Fork, ParentFreesAndReusesWhileChildRuns) {
    void *fns[3] = {small, run, large};
    void *again = nullptr;
    int st = fork_then(
        [&] {
            // The parent frees the small function (trap fill) and loads another there.
            ASSERT_EQ(jit_free(small), 0);
            auto code = add_imm(999, 32);
            again = jit_arena_alloc(*arena, code.data(), code.size());
            EXPECT_EQ(call_int(again, 1), 1000);
        },
        [&] { return all_return(fns, 1) ? 0 : 31; });
    EXPECT_EQ(st, 0);
    ASSERT_NE(again, nullptr);
    small = again;
}

TEST_P(Fork, ForkTwiceGrandchild) {
    void *fns[3] = {small, run, large};
    int st = in_child([&] {
        if (!patch_all(fns, 40))
            return 1;
        int inner = in_child([&] { return patch_all(fns, 50) && all_return(fns, 50) ? 0 : 2; });
        if (inner != 0)
            return 3;
        return all_return(fns, 40) ? 0 : 4;
    });
    EXPECT_EQ(st, 0);
    EXPECT_TRUE(all_return(fns, 1));
}

// Batches open across fork() in a multi-threaded program: this thread's batch (new
// allocations and an update of live code) and another thread's, parked between calls
// with an update of live code staged. The child commits this thread's copy and its code
// runs there only; it frees the function the other thread's batch updates (that batch's
// thread is not in the child: its copy hears of the free and is never committed) and
// makes new code where it was. The parent then commits both batches: its functions
// change, the child's never reached them.
TEST_P(Fork, OpenBatchesOfTwoThreadsCommitOnEitherSide) {
    void *fns[3] = {small, run, large};
    jit_batch *mine = jit_batch_create(*arena);
    ASSERT_NE(mine, nullptr);
    auto fresh_code = add_imm(70, 48);
    void *fresh = jit_batch_alloc(mine, fresh_code.data(), fresh_code.size(), nullptr);
    ASSERT_NE(fresh, nullptr);
    const int32_t small_imm = 500;
    ASSERT_EQ(jit_batch_update(mine, static_cast<uint8_t *>(small) + kAddImmOff, &small_imm, 4), 0);

    std::mutex m;
    std::condition_variable cv;
    int step = 0;  // 1: the other thread's batch is staged; 2: commit it; 3: committed
    int other_rc = -1;
    void *other_fresh = nullptr;
    std::thread other([&] {
        jit_batch *b = jit_batch_create(*arena);
        auto code = add_imm(80, 100);
        other_fresh = b ? jit_batch_alloc(b, code.data(), code.size(), nullptr) : nullptr;
        const int32_t run_imm = 600;
        int staged = other_fresh ? jit_batch_update(b, static_cast<uint8_t *>(run) + kAddImmOff, &run_imm, 4)
                                 : -1;
        std::unique_lock<std::mutex> g(m);
        step = 1;
        cv.notify_all();
        cv.wait(g, [&] { return step == 2; });
        other_rc = staged == 0 ? jit_batch_commit(b) : -1;
        jit_batch_destroy(b);
        step = 3;
        cv.notify_all();
    });
    {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [&] { return step == 1; });
    }
    ASSERT_NE(other_fresh, nullptr);

    int st = in_child([&] {
        if (jit_batch_commit(mine) != 0)
            return 40;
        if (call_int(fresh, 1) != 71 || call_int(small, 1) != 501)
            return 41;
        if (call_int(run, 1) != 3 || jit_size(other_fresh) != 0)
            return 42;  // the other thread's batch was never committed here
        if (jit_free(run) != 0)
            return 43;
        auto code = add_imm(90, run_len());
        void *again = jit_arena_alloc(*arena, code.data(), code.size());
        if (!again || call_int(again, 1) != 91)
            return 44;
        if (jit_free(again) != 0 || jit_free(fresh) != 0)
            return 45;
        return 0;
    });
    EXPECT_EQ(st, 0);
    EXPECT_TRUE(all_return(fns, 1)) << "the child's commit reached the parent";
    EXPECT_EQ(jit_size(fresh), 0u) << "the child's commit published in the parent";

    EXPECT_EQ(jit_batch_commit(mine), 0);
    jit_batch_destroy(mine);
    EXPECT_EQ(call_int(fresh, 1), 71);
    EXPECT_EQ(call_int(small, 1), 501);
    {
        std::unique_lock<std::mutex> g(m);
        step = 2;
        cv.notify_all();
        cv.wait(g, [&] { return step == 3; });
    }
    other.join();
    EXPECT_EQ(other_rc, 0) << "the child's free of its target reached the parent's batch";
    EXPECT_EQ(call_int(run, 1), 601);
    EXPECT_EQ(call_int(other_fresh, 1), 81);
    EXPECT_EQ(jit_free(fresh), 0);
    EXPECT_EQ(jit_free(other_fresh), 0);
}

INSTANTIATE_TEST_SUITE_P(All, Fork, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

TEST(ForkDefaultArena, ChildAndParentIndependent) {
    auto code = add_imm(10, 16);
    void *p = jit_alloc(code.data(), code.size());
    ASSERT_NE(p, nullptr);
    int st = in_child([&] {
        int32_t imm = 20;
        return jit_update(static_cast<uint8_t *>(p) + kAddImmOff, &imm, 4) == 0 &&
                       call_int(p, 1) == 21
                   ? 0
                   : 1;
    });
    EXPECT_EQ(st, 0);
    EXPECT_EQ(call_int(p, 1), 11);
    EXPECT_EQ(jit_free(p), 0);
}

}  // namespace
