// A long randomized sequence of alloc / reserve / update / free / shrink (fixed seed)
// checked against a simple model: a map of live allocations with their expected bytes.
// No overlap, contents intact, sizes right, traps where nothing was written, and the
// arena's invariant checker runs periodically.
#include "helpers.h"

#include "slab/size_class.h"

#include <map>
#include <random>

using namespace jt;

namespace {

struct Alloc {
    size_t len;
    size_t usable;
    std::vector<uint8_t> bytes;  // expected contents of [p, p+usable)
};

class Model {
public:
    explicit Model(jit_arena *a) : a_(a) {}

    ::testing::AssertionResult verify(uintptr_t p, const Alloc &m) const {
        if (jit_size(reinterpret_cast<void *>(p)) != m.usable)
            return ::testing::AssertionFailure() << "size of " << p << " changed";
        if (!same_bytes(reinterpret_cast<void *>(p), m.bytes))
            return ::testing::AssertionFailure() << "contents of " << p << " changed";
        return ::testing::AssertionSuccess();
    }

    ::testing::AssertionResult verify_all() const {
        for (const auto &[p, m] : live_)
            if (auto r = verify(p, m); !r)
                return r;
        struct jit_stats s;
        jit_arena_stats(a_, &s);
        if (s.allocations != live_.size() || s.bytes_requested != requested_ || s.bytes_in_use != in_use_)
            return ::testing::AssertionFailure()
                   << "stats: allocations " << s.allocations << " vs " << live_.size()
                   << ", requested " << s.bytes_requested << " vs " << requested_ << ", in use "
                   << s.bytes_in_use << " vs " << in_use_;
        return ::testing::AssertionSuccess();
    }

    ::testing::AssertionResult add(void *vp, size_t len, const uint8_t *code) {
        auto p = reinterpret_cast<uintptr_t>(vp);
        size_t usable = jit_size(vp);
        if (usable < len)
            return ::testing::AssertionFailure() << "usable " << usable << " < len " << len;
        if (p % JIT_ALLOC_ALIGN)
            return ::testing::AssertionFailure() << "misaligned " << vp;
        // No overlap with the neighbours on either side.
        auto next = live_.lower_bound(p);
        if (next != live_.end() && next->first < p + usable)
            return ::testing::AssertionFailure() << "overlaps the next allocation";
        if (next != live_.begin()) {
            auto prev = std::prev(next);
            if (prev->first + prev->second.usable > p)
                return ::testing::AssertionFailure() << "overlaps the previous allocation";
        }
        Alloc m{len, usable, trap_bytes(reinterpret_cast<void *>(p), usable)};
        if (code)
            std::copy(code, code + len, m.bytes.begin());
        auto r = verify(p, m);
        live_.emplace(p, std::move(m));
        requested_ += len;
        in_use_ += usable;
        return r;
    }

    const std::map<uintptr_t, Alloc> &live() const { return live_; }
    Alloc &at(uintptr_t p) { return live_.at(p); }
    void remove(uintptr_t p) {
        requested_ -= live_.at(p).len;
        in_use_ -= live_.at(p).usable;
        live_.erase(p);
    }
    uintptr_t pick(std::mt19937_64 &rng) const {
        auto it = live_.lower_bound(rng() % (uintptr_t{1} << 47));
        if (it == live_.end())
            it = live_.begin();
        return it->first;
    }

private:
    jit_arena *a_;
    std::map<uintptr_t, Alloc> live_;
    uint64_t requested_ = 0, in_use_ = 0;
};

size_t random_len(std::mt19937_64 &rng) {
    unsigned r = rng() % 1000;
    if (r < 850)
        return 1 + rng() % 512;                    // small slab classes
    if (r < 960)
        return 1 + rng() % jitalloc::kMaxSlabSize;  // any slab class
    if (r < 999)
        return jitalloc::kMaxSlabSize + 1 + rng() % (256 * KiB);  // page runs
    return 2 * MiB + 1 + rng() % (2 * MiB);        // large
}

void run_sequence(jit_writer w, int ops, uint64_t seed) {
    jit_arena_options o = options(w);
    o.retain_bytes = 2 * MiB;
    ArenaHolder arena(o);
    ASSERT_NE(arena.get(), nullptr);
    Model model(arena);
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> buf;
    for (int op = 0; op < ops; op++) {
        unsigned kind = rng() % 100;
        size_t n = model.live().size();
        if (n == 0 || (kind < 45 && n < 3000)) {
            size_t len = random_len(rng);
            bool reserve = rng() % 4 == 0;
            buf = pattern(len, static_cast<uint32_t>(rng()));
            void *p = jit_arena_alloc(arena, reserve ? nullptr : buf.data(), len);
            ASSERT_NE(p, nullptr) << "op " << op << " len " << len << ": " << strerror(errno);
            ASSERT_TRUE(model.add(p, len, reserve ? nullptr : buf.data())) << "op " << op;
        } else if (kind < 70) {
            uintptr_t p = model.pick(rng);
            Alloc &m = model.at(p);
            size_t off = rng() % m.usable;
            size_t len = 1 + rng() % std::min<size_t>(m.usable - off, 600);
            buf = pattern(len, static_cast<uint32_t>(rng()));
            ASSERT_EQ(jit_update(reinterpret_cast<uint8_t *>(p) + off, buf.data(), len), 0) << "op " << op;
            std::copy(buf.begin(), buf.end(), m.bytes.begin() + static_cast<long>(off));
            ASSERT_TRUE(model.verify(p, m)) << "op " << op;
            // One byte too far is rejected and changes nothing.
            if (rng() % 8 == 0) {
                size_t bad = m.usable - off + 1;
                buf.resize(bad);
                ASSERT_EQ(jit_update(reinterpret_cast<uint8_t *>(p) + off, buf.data(), bad), -1);
                ASSERT_TRUE(model.verify(p, m)) << "op " << op;
            }
        } else if (kind < 99) {
            uintptr_t p = model.pick(rng);
            ASSERT_TRUE(model.verify(p, model.at(p))) << "op " << op;
            size_t usable = model.at(p).usable;
            ASSERT_EQ(jit_free(reinterpret_cast<void *>(p)), 0) << "op " << op;
            model.remove(p);
            if (usable <= kChunk) {  // still mapped: holds traps again
                ASSERT_TRUE(all_traps(reinterpret_cast<void *>(p), usable)) << "op " << op;
            }
            if (rng() % 16 == 0) {
                errno = 0;
                ASSERT_EQ(jit_free(reinterpret_cast<void *>(p)), -1) << "double free accepted";
                ASSERT_EQ(errno, EINVAL);
            }
        } else {
            jit_arena_shrink(arena);
        }
        if (op % 20000 == 0 || op == ops - 1) {
            ASSERT_TRUE(ArenaOk(arena)) << "op " << op;
            ASSERT_TRUE(model.verify_all()) << "op " << op;
        }
    }
    for (const auto &[p, m] : model.live()) {
        ASSERT_EQ(jit_free(reinterpret_cast<void *>(p)), 0);
    }
    EXPECT_TRUE(ArenaOk(arena));
    jit_arena_shrink(arena);
    EXPECT_EQ(stats_of(arena).chunks_mapped, 0u);
}

// The model runs on one thread, so ThreadSanitizer finds nothing here that the other
// builds do not, while each operation costs ~30x: run a tenth of the sequence there.
#if defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

TEST(RandomModel, ProcMem200k) { run_sequence(JIT_WRITER_PROC_MEM, 200000 / kScale, 42); }

class RandomModelWriters : public ::testing::TestWithParam<jit_writer> {};

TEST_P(RandomModelWriters, Short) { run_sequence(GetParam(), 20000 / kScale, 7); }

INSTANTIATE_TEST_SUITE_P(All, RandomModelWriters, ::testing::ValuesIn(kAllWriters),
                         [](const auto &info) { return std::string(writer_name(info.param)); });

}  // namespace
