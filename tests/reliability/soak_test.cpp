// Soak (issue 6, part 4): millions of mixed operations on a bounded live set. Resident
// memory, mapped code memory and metadata must stay bounded (the curve is printed), and
// after freeing everything and jit_shrink the process RSS must be back within 1 MiB of
// where it started.
//
//   soak_test [OPS] [POINTS] [CSV]
//                         OPS default 200000 (ctest label reliability); the soak label
//                         runs 10000000. POINTS samples of the curve (default 20); CSV:
//                         also write them to that file (tests/reliability/soak_10M.csv).
#include "rel_common.h"

#include <malloc.h>

#include <random>

namespace {

int fail(const char *what, uint64_t a, uint64_t b) {
    std::printf("SOAK FAILED: %s (%llu vs %llu)\n", what, static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    const long ops = argc > 1 ? std::atol(argv[1]) : 200000;
    const long points = argc > 2 ? std::max(1L, std::atol(argv[2])) : 20;
    FILE *csv = argc > 3 ? std::fopen(argv[3], "w") : nullptr;
    if (argc > 3 && !csv)
        return fail("csv file", static_cast<uint64_t>(errno), 0);
    if (csv)
        std::fprintf(csv, "ops,rss_bytes,mapped_bytes,resident_bytes,metadata_bytes,live\n");
    constexpr size_t kMaxLive = 4096;
    constexpr uint64_t kMiB = 1 << 20;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    const bool sanitized = true;  // shadow memory and quarantines make RSS meaningless
#else
    const bool sanitized = false;
#endif

    struct Live {
        void *p;
        size_t len;
        uint8_t tag;
    };
    std::vector<Live> live;
    live.reserve(kMaxLive);
    std::vector<uint8_t> buf(64 * 1024);
    std::mt19937_64 rng(42);

    malloc_trim(0);
    const uint64_t rss_start = rel::rss_bytes();
    jit_arena *a = rel::make_arena(JIT_WRITER_AUTO, JIT_PLACE_NEAR_LIBRARY, 0,
                                   JIT_DEFAULT_RETAIN_BYTES);
    if (!a)
        return fail("arena", static_cast<uint64_t>(errno), 0);

    uint64_t peak_rss = 0, peak_mapped = 0, peak_meta = 0;
    const long step = ops / points ? ops / points : 1;
    const long check_every = ops / 4 ? ops / 4 : 1;  // jit_arena_check walks every slab
    std::printf("%10s %10s %10s %10s %10s %8s\n", "ops", "rss_KiB", "mapped_KiB", "resid_KiB",
                "meta_KiB", "live");
    for (long i = 1; i <= ops; i++) {
        unsigned r = static_cast<unsigned>(rng() % 100);
        if ((r < 45 && live.size() < kMaxLive) || live.empty()) {
            unsigned k = static_cast<unsigned>(rng() % 1000);
            size_t len = k < 900 ? 1 + rng() % 512 : k < 990 ? 513 + rng() % 16000
                         : k < 999 ? 16385 + rng() % 60000 : (2 << 20) + rng() % 4096;
            uint8_t tag = static_cast<uint8_t>(rng());
            bool code = rng() % 4 != 0;
            if (code)
                std::memset(buf.data(), tag, std::min(len, buf.size()));
            // large ones without code: keeps the loop fast, the page is trap-filled
            void *p = jit_arena_alloc(a, code && len <= buf.size() ? buf.data() : nullptr, len);
            if (!p)
                return fail("alloc", len, static_cast<uint64_t>(errno));
            uint8_t *last = static_cast<uint8_t *>(p) + len - 1;
            live.push_back({p, len, code && len <= buf.size() ? tag : rel::trap_at(last)});
        } else if (r < 90) {
            size_t k = rng() % live.size();
            Live &l = live[k];
            if (static_cast<uint8_t *>(l.p)[l.len - 1] != l.tag)
                return fail("content", static_cast<uint8_t *>(l.p)[l.len - 1], l.tag);
            if (jit_free(l.p) != 0)
                return fail("free", static_cast<uint64_t>(errno), 0);
            live[k] = live.back();
            live.pop_back();
        } else if (r < 99) {
            Live &l = live[rng() % live.size()];
            size_t n = std::min<size_t>(l.len, 64);
            std::memset(buf.data(), l.tag, n);
            if (jit_update(l.p, buf.data(), n) != 0)
                return fail("update", static_cast<uint64_t>(errno), 0);
        } else if (rng() % 50 == 0) {
            jit_arena_shrink(a);
        }
        if (i % step == 0 || i == ops) {
            struct jit_stats s = rel::stats(a);
            uint64_t rss = rel::rss_bytes();
            peak_rss = std::max(peak_rss, rss);
            peak_mapped = std::max<uint64_t>(peak_mapped, s.bytes_mapped);
            peak_meta = std::max<uint64_t>(peak_meta, s.bytes_metadata);
            std::printf("%10ld %10llu %10llu %10llu %10llu %8zu\n", i,
                        static_cast<unsigned long long>(rss / 1024),
                        static_cast<unsigned long long>(s.bytes_mapped / 1024),
                        static_cast<unsigned long long>(s.bytes_resident / 1024),
                        static_cast<unsigned long long>(s.bytes_metadata / 1024), live.size());
            std::fflush(stdout);
            if (csv) {
                std::fprintf(csv, "%ld,%llu,%llu,%llu,%llu,%zu\n", i,
                             static_cast<unsigned long long>(rss),
                             static_cast<unsigned long long>(s.bytes_mapped),
                             static_cast<unsigned long long>(s.bytes_resident),
                             static_cast<unsigned long long>(s.bytes_metadata), live.size());
                std::fflush(csv);
            }
            if (s.allocations != live.size())
                return fail("live count", s.allocations, live.size());
        }
        if (i % check_every == 0) {
            std::string why = rel::check(a);
            if (!why.empty()) {
                std::printf("check: %s\n", why.c_str());
                return fail("jit_arena_check", 0, 0);
            }
        }
    }
    // Bounds: the live set is at most 4096 objects, almost all small; a few large ones.
    if (peak_mapped > 160 * kMiB)
        return fail("mapped code memory unbounded", peak_mapped, 160 * kMiB);
    if (peak_meta > 8 * kMiB)
        return fail("metadata unbounded", peak_meta, 8 * kMiB);
    if (!sanitized && peak_rss > rss_start + 200 * kMiB)
        return fail("rss unbounded", peak_rss, rss_start + 200 * kMiB);

    for (const Live &l : live)
        if (jit_free(l.p) != 0)
            return fail("final free", static_cast<uint64_t>(errno), 0);
    live.clear();
    jit_shrink();
    struct jit_stats s = rel::stats(a);
    if (s.allocations || s.bytes_mapped)
        return fail("not empty after shrink", s.allocations, s.bytes_mapped);
    malloc_trim(0);
    const uint64_t rss_end = rel::rss_bytes();
    if (jit_arena_destroy(a) != 0)
        return fail("destroy", 0, 0);
    std::printf("rss start %llu KiB, peak %llu KiB, end %llu KiB (after free all + jit_shrink); "
                "peak mapped %llu KiB, peak metadata %llu KiB\n",
                static_cast<unsigned long long>(rss_start / 1024),
                static_cast<unsigned long long>(peak_rss / 1024),
                static_cast<unsigned long long>(rss_end / 1024),
                static_cast<unsigned long long>(peak_mapped / 1024),
                static_cast<unsigned long long>(peak_meta / 1024));
    if (!sanitized && rss_end > rss_start + kMiB)
        return fail("rss did not come back within 1 MiB", rss_end, rss_start + kMiB);
    if (csv)
        std::fclose(csv);
    std::printf("soak ok: %ld operations\n", ops);
    return 0;
}
