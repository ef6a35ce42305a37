// libFuzzer harness (issue 6, part 2): random sequences of arena operations checked
// against a reference model.
//
// The input is a byte string read as a program: each operation takes an opcode byte and
// a few argument bytes. Operations: create / destroy an arena (any writer, placement,
// retain and cap), alloc with and without code (small, page and large sizes), update in
// bounds and out of bounds, free valid / interior / stale / double / foreign / NULL
// pointers, shrink one arena or all, stats + invariant check, call generated code
// (x86-64 or arm64), a batch (allocations with and without code, updates into them and
// into one live allocation, then commit or abort), and arm a system-call fault for the
// next operation.
//
// The model keeps, per live allocation, its arena, requested length, usable size and
// every byte it should hold (code, then trap bytes). Every result is checked: success or
// the exact errno, bytes in memory equal to the model, jit_size / jit_arena_of, no two
// allocations overlapping, and jit_arena_check after every few operations. A failed
// operation (injected fault) must change nothing.
//
// Built two ways: with clang -fsanitize=fuzzer (the fuzzer), and as a plain program
// (fuzz_replay.cpp) that replays the corpus and random inputs in every build.
#include <jitalloc/jitalloc.h>

#include "../common/host_code.h"
#include "../common/trap_fill.h"
#include "os/os.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <vector>

namespace {

namespace os = jitalloc::os;

constexpr int kSlots = 3;
constexpr size_t kMaxLive = 96;
constexpr size_t kMaxLargeLive = 2;
constexpr size_t kChunk = size_t{2} << 20;

[[noreturn]] void fail(const char *what, long a = 0, long b = 0) {
    std::fprintf(stderr, "fuzz_arena: MODEL MISMATCH: %s (%ld, %ld)\n", what, a, b);
    std::abort();
}
#define REQUIRE(cond, ...)                 \
    do {                                   \
        if (!(cond))                       \
            fail(#cond, ##__VA_ARGS__);    \
    } while (0)

struct Reader {
    const uint8_t *p;
    size_t n;
    bool empty() const { return n == 0; }
    uint8_t u8() {
        if (!n)
            return 0;
        n--;
        return *p++;
    }
    uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
    uint32_t u32() { return static_cast<uint32_t>(u16() | uint32_t{u16()} << 16); }
};

struct Alloc {
    int slot;
    size_t len;
    std::vector<uint8_t> bytes;  // the usable size
};

struct Slot {
    jit_arena *a = nullptr;
    bool capped = false;
};

struct Model {
    Slot slots[kSlots];
    std::map<uintptr_t, Alloc> live;
    std::set<uintptr_t> stale;  // freed or destroyed, not handed out again
    size_t large_live = 0;
    int armed_error = 0;         // a fault is armed for this operation

    ~Model() {
        os::clear_fault();
        for (Slot &s : slots)
            if (s.a)
                jit_arena_destroy(s.a);
    }
};

// Fill pattern for code, derived from the input so that the fuzzer can steer it but
// never the trap byte throughout.
void fill(std::vector<uint8_t> &v, size_t n, uint8_t seed) {
    v.resize(n);
    for (size_t i = 0; i < n; i++)
        v[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 9));
}

void verify(const Model &, uintptr_t p, const Alloc &a) {
    REQUIRE(std::memcmp(reinterpret_cast<const void *>(p), a.bytes.data(), a.bytes.size()) == 0,
            static_cast<long>(p), static_cast<long>(a.bytes.size()));
}

// The live allocation with index i (mod count), or live.end().
std::map<uintptr_t, Alloc>::iterator pick(Model &m, uint8_t i) {
    if (m.live.empty())
        return m.live.end();
    auto it = m.live.begin();
    std::advance(it, i % m.live.size());
    return it;
}

// The live allocation whose usable range holds address u, or live.end().
std::map<uintptr_t, Alloc>::iterator containing(Model &m, uintptr_t u) {
    auto it = m.live.upper_bound(u);
    if (it == m.live.begin())
        return m.live.end();
    --it;
    return u < it->first + it->second.bytes.size() ? it : m.live.end();
}

size_t pick_len(Reader &r) {
    uint8_t kind = r.u8() % 8;
    uint32_t v = r.u32();
    switch (kind) {
    case 0: return 1 + v % 64;
    case 1:
    case 2: return 1 + v % 1024;
    case 3: return 1 + v % 16384;                             // every slab class
    case 4: return 16385 + v % (64 * 1024);                   // small page runs
    case 5: return 4096 * (1 + v % 512) - (v >> 20) % 7;      // up to 2 MiB
    case 6: return kChunk + 1 + v % (kChunk + 4096);          // large
    default: return 16 * (1 + v % 1024);                      // exact class sizes
    }
}

// Expected failure of an operation when a fault may have fired: the injected error.
void expect_errno(const Model &m, int rc_errno) {
    if (m.armed_error && os::faults_injected())
        REQUIRE(rc_errno == m.armed_error, rc_errno, m.armed_error);
    else
        fail("operation failed without a fault", rc_errno);
}

void check_arenas(Model &m) {
    for (Slot &s : m.slots) {
        if (!s.a)
            continue;
        char msg[200] = {};
        if (jit_arena_check(s.a, msg, sizeof msg) != 0) {
            std::fprintf(stderr, "jit_arena_check: %s\n", msg);
            fail("jit_arena_check");
        }
    }
}

void op_create(Model &m, Reader &r) {
    int slot = r.u8() % kSlots;
    uint8_t w = r.u8(), flags = r.u8();
    if (m.slots[slot].a)
        return;
    static const jit_writer writers[] = {JIT_WRITER_AUTO,        JIT_WRITER_PROC_MEM,
                                         JIT_WRITER_MEMFD,       JIT_WRITER_TEMP_ALIAS,
                                         JIT_WRITER_PERSISTENT_ALIAS, JIT_WRITER_MPROTECT};
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = writers[w % 6];
    o.flags = JIT_ARENA_IGNORE_ENV | JIT_ARENA_NO_SYNC_CORE;
    if (flags & 1)
        o.flags |= JIT_ARENA_NO_HUGE_PAGES;
    o.placement = (flags & 2) ? JIT_PLACE_ANYWHERE : JIT_PLACE_NEAR_LIBRARY;
    o.retain_bytes = (flags & 4) ? 0 : (flags & 8) ? SIZE_MAX : JIT_DEFAULT_RETAIN_BYTES;
    o.max_bytes = (flags & 16) ? 3 * kChunk : 0;
    if (flags & 32)
        o.flags |= JIT_ARENA_LAZY_TRAP_FILL;
    errno = 0;
    jit_arena *a = jit_arena_create(&o);
    if (!a) {
        expect_errno(m, errno);
        return;
    }
    struct jit_stats st;
    REQUIRE(jit_arena_stats(a, &st) == 0);
    REQUIRE(st.strict_wx || o.writer == JIT_WRITER_PERSISTENT_ALIAS);
    REQUIRE(o.writer == JIT_WRITER_AUTO ? st.writer != JIT_WRITER_PERSISTENT_ALIAS
                                        : st.writer == o.writer);
    m.slots[slot] = {a, o.max_bytes != 0};
}

void op_destroy(Model &m, Reader &r) {
    int slot = r.u8() % kSlots;
    if (!m.slots[slot].a)
        return;
    // Allocations die with the arena.
    for (auto it = m.live.begin(); it != m.live.end();) {
        if (it->second.slot == slot) {
            verify(m, it->first, it->second);
            if (it->second.len > kChunk)
                m.large_live--;
            m.stale.insert(it->first);
            it = m.live.erase(it);
        } else {
            ++it;
        }
    }
    REQUIRE(jit_arena_destroy(m.slots[slot].a) == 0);
    m.slots[slot] = {};
}

void op_alloc(Model &m, Reader &r, bool with_code) {
    int slot = r.u8() % kSlots;
    size_t len = pick_len(r);
    uint8_t seed = r.u8();
    if (!m.slots[slot].a || m.live.size() >= kMaxLive)
        return;
    if (len > kChunk && m.large_live >= kMaxLargeLive)
        return;
    std::vector<uint8_t> code;
    if (with_code)
        fill(code, len, seed);
    errno = 0;
    void *p = jit_arena_alloc(m.slots[slot].a, with_code ? code.data() : nullptr, len);
    if (!p) {
        if (errno == ENOMEM && m.slots[slot].capped)
            return;  // the cap is allowed to bite
        expect_errno(m, errno);
        return;
    }
    auto u = reinterpret_cast<uintptr_t>(p);
    REQUIRE(u % JIT_ALLOC_ALIGN == 0, static_cast<long>(u));
    size_t usable = jit_size(p);
    REQUIRE(usable >= len, static_cast<long>(usable), static_cast<long>(len));
    REQUIRE(jit_arena_of(p) == m.slots[slot].a);
    // No overlap with any live allocation.
    auto next = m.live.lower_bound(u);
    REQUIRE(next == m.live.end() || next->first >= u + usable, static_cast<long>(u));
    if (next != m.live.begin()) {
        auto prev = std::prev(next);
        REQUIRE(prev->first + prev->second.bytes.size() <= u, static_cast<long>(u));
    }
    Alloc a{slot, len, jt_traps::trap_bytes(p, usable)};
    if (with_code)
        std::memcpy(a.bytes.data(), code.data(), len);
    verify(m, u, a);
    if (len > kChunk)
        m.large_live++;
    m.stale.erase(u);
    m.live.emplace(u, std::move(a));
}

void op_update(Model &m, Reader &r, bool in_bounds) {
    auto it = pick(m, r.u8());
    uint32_t off_r = r.u32(), len_r = r.u32();
    uint8_t seed = r.u8();
    if (it == m.live.end())
        return;
    Alloc &a = it->second;
    size_t usable = a.bytes.size();
    size_t off, n;
    if (in_bounds) {
        off = off_r % usable;
        n = 1 + len_r % std::min<size_t>(usable - off, 8192);
    } else {
        // past the end by at least one byte (but within twice the usable size)
        off = off_r % (usable + 64);
        size_t min_n = off < usable ? usable - off + 1 : 1;
        n = min_n + len_r % 4096;
    }
    std::vector<uint8_t> src;
    fill(src, n, seed);
    auto *dst = reinterpret_cast<uint8_t *>(it->first) + off;
    errno = 0;
    int rc = (seed & 1) ? jit_update(dst, src.data(), n)
                        : jit_arena_update(m.slots[a.slot].a, dst, src.data(), n);
    if (!in_bounds) {
        // Past the end of this allocation; dst may still fall inside another live one
        // (the next slab object): then the range must fit that one.
        auto other = containing(m, reinterpret_cast<uintptr_t>(dst));
        bool fits_other = other != m.live.end() &&
                          reinterpret_cast<uintptr_t>(dst) + n <=
                              other->first + other->second.bytes.size() &&
                          ((seed & 1) || other->second.slot == a.slot);
        if (!fits_other) {
            REQUIRE(rc == -1 && errno == EINVAL, rc, errno);
            verify(m, it->first, a);
            return;
        }
        if (rc == 0) {
            std::memcpy(other->second.bytes.data() + (reinterpret_cast<uintptr_t>(dst) - other->first),
                        src.data(), n);
            verify(m, other->first, other->second);
        } else {
            expect_errno(m, errno);
        }
        return;
    }
    if (rc != 0) {
        expect_errno(m, errno);
        verify(m, it->first, a);  // all or nothing
        return;
    }
    std::memcpy(a.bytes.data() + off, src.data(), n);
    verify(m, it->first, a);
}

void op_free(Model &m, Reader &r) {
    auto it = pick(m, r.u8());
    uint8_t how = r.u8();
    if (it == m.live.end())
        return;
    void *p = reinterpret_cast<void *>(it->first);
    errno = 0;
    int rc = (how & 1) ? jit_free(p) : jit_arena_free(m.slots[it->second.slot].a, p);
    if (rc != 0) {
        expect_errno(m, errno);
        REQUIRE(jit_size(p) == it->second.bytes.size());
        verify(m, it->first, it->second);
        return;
    }
    REQUIRE(jit_size(p) == 0);
    REQUIRE(jit_arena_of(p) == nullptr);
    if (it->second.len > kChunk)
        m.large_live--;
    m.stale.insert(it->first);
    m.live.erase(it);
}

void op_free_invalid(Model &m, Reader &r) {
    uint8_t kind = r.u8() % 5;
    uint32_t v = r.u32();
    int local = 0;
    void *p = nullptr;
    switch (kind) {
    case 0: {  // interior pointer
        auto it = pick(m, static_cast<uint8_t>(v));
        if (it == m.live.end() || it->second.bytes.size() < 2)
            return;
        p = reinterpret_cast<void *>(it->first + 1 + (v >> 8) % (it->second.bytes.size() - 1));
        break;
    }
    case 1: {  // freed / destroyed, not reused
        if (m.stale.empty())
            return;
        auto it = m.stale.begin();
        std::advance(it, v % m.stale.size());
        p = reinterpret_cast<void *>(*it);
        break;
    }
    case 2: p = &local; break;  // the stack
    case 3: p = &m; break;      // the heap
    default: p = nullptr; break;
    }
    REQUIRE(m.live.count(reinterpret_cast<uintptr_t>(p)) == 0);
    errno = 0;
    REQUIRE(jit_free(p) == -1 && errno == EINVAL, kind, errno);
    REQUIRE(jit_size(p) == 0);
    for (Slot &s : m.slots)
        if (s.a) {
            errno = 0;
            REQUIRE(jit_arena_free(s.a, p) == -1 && errno == EINVAL, kind, errno);
        }
}

void op_shrink(Model &m, Reader &r) {
    int slot = r.u8() % (kSlots + 1);
    if (slot == kSlots)
        (void)jit_shrink();
    else if (m.slots[slot].a)
        (void)jit_arena_shrink(m.slots[slot].a);
    for (auto &[p, a] : m.live)
        if (a.bytes.size() <= 64 * 1024)
            verify(m, p, a);
}

void op_stats(Model &m, Reader &r) {
    int slot = r.u8() % kSlots;
    if (!m.slots[slot].a)
        return;
    struct jit_stats st;
    errno = 0;
    int rc = jit_arena_stats(m.slots[slot].a, &st);
    if (rc != 0) {
        expect_errno(m, errno);
        return;
    }
    uint64_t n = 0, req = 0;
    for (auto &[p, a] : m.live)
        if (a.slot == slot) {
            n++;
            req += a.len;
        }
    REQUIRE(st.allocations == n, static_cast<long>(st.allocations), static_cast<long>(n));
    REQUIRE(st.bytes_requested == req, static_cast<long>(st.bytes_requested),
            static_cast<long>(req));
    REQUIRE(st.bytes_in_use <= st.bytes_mapped);
    REQUIRE(st.bytes_cached <= st.bytes_mapped);
    check_arenas(m);
}

void op_call(Model &m, Reader &r) {
    auto it = pick(m, r.u8());
    uint32_t imm = r.u32();
    if (it == m.live.end() || it->second.bytes.size() < jt_code::kRetImmLen)
        return;
    const std::vector<uint8_t> fn = jt_code::ret_imm(static_cast<int32_t>(imm));
    errno = 0;
    if (jit_update(reinterpret_cast<void *>(it->first), fn.data(), fn.size()) != 0) {
        expect_errno(m, errno);
        verify(m, it->first, it->second);
        return;
    }
    std::memcpy(it->second.bytes.data(), fn.data(), fn.size());
    auto f = reinterpret_cast<uint32_t (*)()>(it->first);
    REQUIRE(f() == imm);
}

// No live allocation overlaps [u, u + n).
bool free_range(const Model &m, uintptr_t u, size_t n) {
    auto next = m.live.lower_bound(u);
    if (next != m.live.end() && next->first < u + n)
        return false;
    return next == m.live.begin() || std::prev(next)->first + std::prev(next)->second.bytes.size() <= u;
}

void op_batch(Model &m, Reader &r) {
    const int slot = r.u8() % kSlots;
    const unsigned n = 1 + r.u8() % 24;
    const uint8_t flags = r.u8();
    jit_arena *arena = m.slots[slot].a;
    if (!arena)
        return;
    jit_batch *b = jit_batch_create(arena);
    REQUIRE(b != nullptr);
    struct Staged {
        uintptr_t p;
        size_t len;
        std::vector<uint8_t> code;  // empty: a reservation
        std::vector<std::pair<size_t, std::vector<uint8_t>>> updates;
    };
    std::vector<Staged> staged;
    for (unsigned i = 0; i < n && m.live.size() + staged.size() < kMaxLive; i++) {
        size_t len = (flags & 1) ? 1 + r.u16() % 4096 : pick_len(r);
        if (len > kChunk)
            len = 1 + len % (64 * 1024);  // large allocations: op_alloc's
        const uint8_t seed = r.u8();
        Staged st{0, len, {}, {}};
        if (!(seed & 0x80))
            fill(st.code, len, seed);
        errno = 0;
        void *p = jit_batch_alloc(b, st.code.empty() ? nullptr : st.code.data(), len, nullptr);
        if (!p) {
            if (!(errno == ENOMEM && m.slots[slot].capped))
                expect_errno(m, errno);
            continue;  // adds nothing
        }
        st.p = reinterpret_cast<uintptr_t>(p);
        REQUIRE(st.p % JIT_ALLOC_ALIGN == 0, static_cast<long>(st.p));
        REQUIRE(jit_size(p) == 0, static_cast<long>(st.p));  // not live before the commit
        REQUIRE(free_range(m, st.p, len), static_cast<long>(st.p));
        for (const Staged &o : staged)
            REQUIRE(st.p >= o.p + o.len || st.p + len <= o.p, static_cast<long>(st.p));
        if (seed & 0x40) {  // an update inside it, staged into its bytes
            size_t off = r.u16() % len, k = 1 + r.u16() % (len - off);
            std::vector<uint8_t> src;
            fill(src, k, static_cast<uint8_t>(seed + 1));
            errno = 0;
            if (jit_batch_update(b, reinterpret_cast<uint8_t *>(p) + off, src.data(), k) == 0)
                st.updates.emplace_back(off, std::move(src));
            else
                fail("update inside a batch allocation", errno);
        }
        staged.push_back(std::move(st));
    }
    // One update of live code of the same arena, in bounds.
    uintptr_t live_at = 0;
    std::vector<uint8_t> live_src;
    if (flags & 2) {
        auto it = pick(m, r.u8());
        uint32_t off_r = r.u32();
        if (it != m.live.end() && it->second.slot == slot) {
            size_t usable = it->second.bytes.size(), off = off_r % usable;
            fill(live_src, 1 + (off_r >> 8) % std::min<size_t>(usable - off, 256), flags);
            errno = 0;
            if (jit_batch_update(b, reinterpret_cast<uint8_t *>(it->first) + off, live_src.data(),
                                 live_src.size()) == 0)
                live_at = it->first + off;
            else
                fail("batch update of a live allocation", errno);
        }
    }
    const bool commit = !(flags & 4);
    errno = 0;
    int rc = 0;
    if (commit)
        rc = jit_batch_commit(b);
    else
        jit_batch_abort(b);
    const int err = errno;
    jit_batch_destroy(b);
    if (!commit || rc != 0) {
        if (rc != 0)
            expect_errno(m, err);
        for (const Staged &st : staged)  // all or nothing
            REQUIRE(jit_size(reinterpret_cast<void *>(st.p)) == 0, static_cast<long>(st.p));
        for (auto &[p, a] : m.live)
            verify(m, p, a);
        return;
    }
    if (live_at) {
        auto it = containing(m, live_at);
        REQUIRE(it != m.live.end());
        std::memcpy(it->second.bytes.data() + (live_at - it->first), live_src.data(), live_src.size());
        verify(m, it->first, it->second);
    }
    for (Staged &st : staged) {
        void *p = reinterpret_cast<void *>(st.p);
        size_t usable = jit_size(p);
        REQUIRE(usable >= st.len, static_cast<long>(usable), static_cast<long>(st.len));
        REQUIRE(jit_arena_of(p) == arena);
        REQUIRE(free_range(m, st.p, usable), static_cast<long>(st.p));
        Alloc a{slot, st.len, jt_traps::trap_bytes(p, usable)};
        if (!st.code.empty())
            std::memcpy(a.bytes.data(), st.code.data(), st.len);
        for (auto &[off, src] : st.updates)
            std::memcpy(a.bytes.data() + off, src.data(), src.size());
        verify(m, st.p, a);
        m.stale.erase(st.p);
        m.live.emplace(st.p, std::move(a));
    }
}

void op_arm_fault(Model &m, Reader &r) {
    static const int errors[] = {ENOMEM, EAGAIN, EIO, EPERM};
    uint8_t nth = r.u8(), e = r.u8(), mask = r.u8();
    m.armed_error = errors[e % 4];
    os::Fault f;
    f.nth = 1 + nth % 12;
    f.error = m.armed_error;
    f.mask = mask % 3 == 0 ? ~0u : os::mask_of(static_cast<os::Call>(mask % static_cast<unsigned>(os::Call::count)));
    f.short_io = (e & 4) != 0;
    os::set_fault(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Model m;
    Reader r{data, size};
    unsigned ops = 0;
    while (!r.empty() && ops < 400) {
        uint8_t op = r.u8();
        bool faulted = false;
        switch (op % 16) {
        case 0: op_create(m, r); break;
        case 1: op_destroy(m, r); break;
        case 2:
        case 3: op_alloc(m, r, true); break;
        case 4: op_alloc(m, r, false); break;
        case 5:
        case 6: op_update(m, r, true); break;
        case 7: op_update(m, r, false); break;
        case 8:
        case 9: op_free(m, r); break;
        case 10: op_free_invalid(m, r); break;
        case 11: op_shrink(m, r); break;
        case 12: op_stats(m, r); break;
        case 13: op_call(m, r); break;
        case 14:
            op_arm_fault(m, r);
            faulted = true;
            break;
        default: op_batch(m, r); break;
        }
        if (!faulted && m.armed_error) {
            bool fired = os::faults_injected() != 0;
            os::clear_fault();
            m.armed_error = 0;
            if (fired)
                check_arenas(m);  // a fault must leave everything consistent
        }
        if (++ops % 64 == 0)
            check_arenas(m);
    }
    os::clear_fault();
    m.armed_error = 0;
    for (auto &[p, a] : m.live)
        verify(m, p, a);
    check_arenas(m);
    return 0;
}
