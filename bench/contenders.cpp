// The contenders behind bench::Contender (see contender.h).
#include "contender.h"

#include "arena/arena.h"
#include "chunk/chunk.h"

#include <jitalloc/jitalloc.h>

#include <asmjit/core.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bench {

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kHuge = size_t{2} << 20;

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

// ---- jitalloc, one arena per writer strategy ----
class JitallocContender final : public Contender {
public:
    explicit JitallocContender(jit_arena *a) : arena_(a) {
        struct jit_stats st;
        jit_arena_stats(arena_, &st);
        strict_ = st.strict_wx;
    }
    ~JitallocContender() override {
        jit_batch_destroy(batch_);
        jit_arena_destroy(arena_);
    }
    void *load(const void *code, size_t len) override {
        return jit_arena_alloc(arena_, code, len);
    }
    void unload(void *p, size_t) override {
        if (jit_arena_free(arena_, p) != 0)
            std::abort();
    }
    bool update(void *dst, const void *src, size_t len) override {
        return jit_arena_update(arena_, dst, src, len) == 0;
    }
    void *reserve(size_t len) override { return jit_arena_alloc(arena_, nullptr, len); }
    bool load_many(const void *const *code, const size_t *len, size_t n, void **out) override {
        if (!batch_ && !(batch_ = jit_batch_create(arena_)))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!(out[i] = jit_batch_alloc(batch_, code[i], len[i], nullptr))) {
                jit_batch_abort(batch_);
                return false;
            }
        return jit_batch_commit(batch_) == 0;
    }
    size_t metadata_bytes() override {
        struct jit_stats st;
        jit_arena_stats(arena_, &st);
        return st.bytes_metadata;
    }
    bool strict_wx() const override { return strict_; }
    // chunks_mapped + chunks_released: moves on every chunk mapped (growth), and on a
    // chunk given back. Read without buddy_lock: single-threaded benchmark, a plain load.
    uint64_t growth_counter() override { return arena_->chunks_mapped + arena_->chunks_released; }
    uint64_t release_counter() override { return arena_->chunks_released; }
    size_t shrink() override { return jit_arena_shrink(arena_); }

private:
    jit_arena *arena_;
    jit_batch *batch_ = nullptr;  // reused by load_many
    bool strict_ = true;
};

std::unique_ptr<Contender> make_jitalloc(jit_writer w,
                                         jit_placement where = JIT_PLACE_NEAR_LIBRARY,
                                         unsigned flags = 0) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = w;
    o.placement = where;
    o.flags |= flags;
    o.name = jit_writer_name(w);
    jit_arena *a = jit_arena_create(&o);
    if (!a) {
        std::fprintf(stderr, "jitalloc writer %s unavailable: %s\n", jit_writer_name(w),
                     std::strerror(errno));
        return nullptr;
    }
    return std::make_unique<JitallocContender>(a);
}

// ---- asmjit JitAllocator ----
class AsmjitContender final : public Contender {
public:
    explicit AsmjitContender(asmjit::JitAllocatorOptions opts, bool strict)
        : params_(make_params(opts)), alloc_(&params_), strict_(strict) {}
    void *load(const void *code, size_t len) override {
        void *rx = nullptr, *rw = nullptr;
        if (alloc_.alloc(&rx, &rw, len) != asmjit::kErrorOk)
            return nullptr;
        std::memcpy(rw, code, len);
        asmjit::VirtMem::flushInstructionCache(rx, len);
        return rx;
    }
    void unload(void *p, size_t) override {
        if (alloc_.release(p) != asmjit::kErrorOk)
            std::abort();
    }
    bool update(void *dst, const void *src, size_t len) override {
        // The RW address of dst: asmjit's own lookup (a tree search under its lock).
        void *rx = nullptr, *rw = nullptr;
        size_t size = 0;
        if (alloc_.query(dst, &rx, &rw, &size) != asmjit::kErrorOk)
            return false;
        std::memcpy(static_cast<uint8_t *>(rw) + (static_cast<uint8_t *>(dst) -
                                                   static_cast<uint8_t *>(rx)),
                    src, len);
        asmjit::VirtMem::flushInstructionCache(dst, len);
        return true;
    }
    void *reserve(size_t len) override {
        void *rx = nullptr, *rw = nullptr;
        return alloc_.alloc(&rx, &rw, len) == asmjit::kErrorOk ? rx : nullptr;
    }
    size_t metadata_bytes() override { return alloc_.statistics().overheadSize(); }
    bool strict_wx() const override { return strict_; }
    // Blocks reserved: asmjit maps a new block when its pools are full.
    uint64_t growth_counter() override { return alloc_.statistics().blockCount(); }

private:
    static asmjit::JitAllocator::CreateParams make_params(asmjit::JitAllocatorOptions o) {
        asmjit::JitAllocator::CreateParams p;
        p.options = o;
        return p;
    }
    asmjit::JitAllocator::CreateParams params_;
    asmjit::JitAllocator alloc_;
    bool strict_;
};

// ---- naive JIT: one mmap per function, mprotect RW -> RX, munmap on free ----
class NaiveContender final : public Contender {
public:
    void *load(const void *code, size_t len) override {
        size_t size = round_up(len, kPage);
        void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return nullptr;
        std::memcpy(p, code, len);
        if (mprotect(p, size, PROT_READ | PROT_EXEC) != 0) {
            munmap(p, size);
            return nullptr;
        }
        return p;
    }
    void unload(void *p, size_t len) override {
        if (munmap(p, round_up(len, kPage)) != 0)
            std::abort();
    }
    // The mprotect flip: RW, copy, RX.
    bool update(void *dst, const void *src, size_t len) override {
        auto first = reinterpret_cast<uintptr_t>(dst) & ~(kPage - 1);
        auto last = round_up(reinterpret_cast<uintptr_t>(dst) + len, kPage);
        void *page = reinterpret_cast<void *>(first);
        if (mprotect(page, last - first, PROT_READ | PROT_WRITE) != 0)
            return false;
        std::memcpy(dst, src, len);
        return mprotect(page, last - first, PROT_READ | PROT_EXEC) == 0;
    }
    size_t metadata_bytes() override { return 0; }
    bool strict_wx() const override { return true; }
};

// ---- the floor: one raw pwrite per load or update (see contender.h) ----
class FloorContender final : public Contender {
public:
    // memfd: false = /proc/self/mem into anonymous THP memory, true = the backing memfd.
    explicit FloorContender(bool memfd) : memfd_(memfd) {
        void *r = mmap(nullptr, kRegion + kHuge, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED)
            std::abort();
        map_ = static_cast<uint8_t *>(r);
        base_ = reinterpret_cast<uint8_t *>(round_up(reinterpret_cast<uintptr_t>(map_), kHuge));
        if (!memfd_) {
            // Like jitalloc's proc_mem chunks: RW, huge pages, traps, then RX for good.
            if (mmap(base_, kRegion, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
                std::abort();
            madvise(base_, kRegion, MADV_HUGEPAGE);
            std::memset(base_, 0xCC, kRegion);
            if (mprotect(base_, kRegion, PROT_READ | PROT_EXEC) != 0)
                std::abort();
            fd_ = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
        } else {
            fd_ = static_cast<int>(syscall(SYS_memfd_create, "floor", 0x0001U /*CLOEXEC*/));
            std::vector<uint8_t> traps(kHuge, 0xCC);
            if (fd_ < 0 || ftruncate(fd_, kRegion) != 0)
                std::abort();
            for (size_t off = 0; off < kRegion; off += kHuge)
                if (pwrite(fd_, traps.data(), kHuge, static_cast<off_t>(off)) != ssize_t(kHuge))
                    std::abort();
            if (mmap(base_, kRegion, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED | MAP_POPULATE,
                     fd_, 0) == MAP_FAILED)
                std::abort();
            madvise(base_, kRegion, MADV_HUGEPAGE);
        }
        if (fd_ < 0)
            std::abort();
    }
    ~FloorContender() override {
        munmap(map_, kRegion + kHuge);
        close(fd_);
    }
    void *load(const void *code, size_t len) override {
        void *p = reserve(len);
        return p && update(p, code, len) ? p : nullptr;
    }
    void unload(void *, size_t) override {}
    bool load_many(const void *const *code, const size_t *len, size_t n, void **out) override {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total = round_up(total + len[i], 16);
        uint8_t *at = static_cast<uint8_t *>(reserve(total));
        if (!at)
            return false;
        packed_.resize(total);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            std::memcpy(packed_.data() + off, code[i], len[i]);
            std::memset(packed_.data() + off + len[i], 0xCC, round_up(len[i], 16) - len[i]);
            out[i] = at + off;
            off = round_up(off + len[i], 16);
        }
        return update(at, packed_.data(), total);
    }
    bool update(void *dst, const void *src, size_t len) override {
        auto *d = static_cast<uint8_t *>(dst);
        off_t off = memfd_ ? d - base_ : static_cast<off_t>(reinterpret_cast<uintptr_t>(d));
        return pwrite(fd_, src, len, off) == static_cast<ssize_t>(len);
    }
    void *reserve(size_t len) override {
        if (len > kRegion)
            return nullptr;
        if (next_ + len > kRegion)
            next_ = 0;
        uint8_t *p = base_ + next_;
        next_ = round_up(next_ + len, 16);
        return p;
    }
    size_t metadata_bytes() override { return 0; }
    bool strict_wx() const override { return true; }

private:
    static constexpr size_t kRegion = size_t{32} << 20;
    bool memfd_;
    uint8_t *map_ = nullptr;
    uint8_t *base_ = nullptr;
    size_t next_ = 0;
    int fd_ = -1;
    std::vector<uint8_t> packed_;  // load_many's one buffer
};

// ---- placement near the library, for ideal_near ----
// A 2 MiB-aligned range of `size` bytes where a default arena (JIT_PLACE_NEAR_LIBRARY)
// would put its chunks, reserved by the library's own placement code and made
// PROT_READ | PROT_WRITE; nullptr if the window has no room.
uint8_t *map_near_library(size_t size) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    uint8_t *p = jitalloc::reserve_range(jitalloc::make_placement(o), size);
    if (p && mprotect(p, size, PROT_READ | PROT_WRITE) != 0) {
        munmap(p, size);
        return nullptr;
    }
    return p;
}

// ---- ideal: functions packed back to back (16-byte aligned) in THP memory ----
// Far (ideal_thp): one 256 MiB region wherever the kernel puts it (the mmap area, far
// from the program's code). Near (ideal_near): 2 MiB chunks placed by jitalloc's default
// rule (map_near_library), a new chunk when the next function does not fit, so the code
// sits where jitalloc_proc_mem's sits; up to 4 096 functions of the calls benchmark fit
// in one chunk.
class IdealContender final : public Contender {
public:
    explicit IdealContender(bool near) : near_(near) {
        if (near_)
            return;  // chunks are mapped by load
        void *r = mmap(nullptr, kFarReserve + kHuge, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED)
            std::abort();
        auto *raw = static_cast<uint8_t *>(r);
        auto *base = reinterpret_cast<uint8_t *>(round_up(reinterpret_cast<uintptr_t>(raw), kHuge));
        if (mprotect(base, kFarReserve, PROT_READ | PROT_WRITE) != 0)
            std::abort();
        madvise(base, kFarReserve, MADV_HUGEPAGE);
        regions_.push_back({raw, kFarReserve + kHuge, base, kFarReserve, 0});
    }
    ~IdealContender() override {
        for (Region &r : regions_)
            munmap(r.map, r.map_len);
    }
    void *load(const void *code, size_t len) override {
        if (regions_.empty() || regions_.back().used + len > regions_.back().size) {
            if (!near_ || len > kHuge)
                return nullptr;
            uint8_t *c = map_near_library(kHuge);
            if (!c)
                return nullptr;
            madvise(c, kHuge, MADV_HUGEPAGE);
            regions_.push_back({c, kHuge, c, kHuge, 0});
        }
        Region &r = regions_.back();
        uint8_t *p = r.base + r.used;
        std::memcpy(p, code, len);
        r.used = round_up(r.used + len, 16);
        return p;
    }
    void unload(void *, size_t) override {}
    bool update(void *, const void *, size_t) override { return false; }
    void seal() override {
        for (Region &r : regions_)
            if (r.used && mprotect(r.base, round_up(r.used, kHuge), PROT_READ | PROT_EXEC) != 0)
                std::abort();
    }
    size_t metadata_bytes() override { return 0; }
    bool strict_wx() const override { return true; }
    bool can_free() const override { return false; }

private:
    struct Region {
        uint8_t *map;     // what to munmap
        size_t map_len;
        uint8_t *base;    // 2 MiB aligned
        size_t size;
        size_t used;
    };
    static constexpr size_t kFarReserve = size_t{256} << 20;
    bool near_;
    std::vector<Region> regions_;
};

}  // namespace

const std::vector<std::string> &contender_names() {
    static const std::vector<std::string> names = {
        "jitalloc_proc_mem", "jitalloc_memfd", "jitalloc_persistent_alias",
        "jitalloc_mprotect", "asmjit_default", "asmjit_dual", "asmjit_dual_pools_fill",
        "naive_mmap",        "ideal_thp"};
    return names;
}

const std::vector<std::string> &floor_contender_names() {
    static const std::vector<std::string> names = {"floor_proc_mem", "floor_memfd"};
    return names;
}

const std::vector<std::string> &lazy_contender_names() {
    static const std::vector<std::string> names = {"jitalloc_proc_mem_lazy",
                                                   "jitalloc_memfd_lazy"};
    return names;
}

const std::vector<std::string> &placement_contender_names() {
    static const std::vector<std::string> names = {"jitalloc_anywhere", "ideal_near"};
    return names;
}

std::unique_ptr<Contender> make_contender(const std::string &name) {
    using O = asmjit::JitAllocatorOptions;
    if (name == "jitalloc_proc_mem") return make_jitalloc(JIT_WRITER_PROC_MEM);
    if (name == "jitalloc_memfd") return make_jitalloc(JIT_WRITER_MEMFD);
    if (name == "jitalloc_temp_alias") return make_jitalloc(JIT_WRITER_TEMP_ALIAS);
    if (name == "jitalloc_persistent_alias") return make_jitalloc(JIT_WRITER_PERSISTENT_ALIAS);
    if (name == "jitalloc_mprotect") return make_jitalloc(JIT_WRITER_MPROTECT);
    if (name == "asmjit_default") return std::make_unique<AsmjitContender>(O::kNone, false);
    if (name == "asmjit_dual")
        return std::make_unique<AsmjitContender>(O::kUseDualMapping, false);
    if (name == "asmjit_dual_pools_fill")
        return std::make_unique<AsmjitContender>(
            O::kUseDualMapping | O::kUseMultiplePools | O::kFillUnusedMemory, false);
    if (name == "naive_mmap") return std::make_unique<NaiveContender>();
    if (name == "ideal_thp") return std::make_unique<IdealContender>(false);
    if (name == "ideal_near") return std::make_unique<IdealContender>(true);
    if (name == "floor_proc_mem") return std::make_unique<FloorContender>(false);
    if (name == "floor_memfd") return std::make_unique<FloorContender>(true);
    if (name == "jitalloc_proc_mem_lazy")
        return make_jitalloc(JIT_WRITER_PROC_MEM, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_LAZY_TRAP_FILL);
    if (name == "jitalloc_memfd_lazy")
        return make_jitalloc(JIT_WRITER_MEMFD, JIT_PLACE_NEAR_LIBRARY, JIT_ARENA_LAZY_TRAP_FILL);
    if (name == "jitalloc_anywhere")
        return make_jitalloc(JIT_WRITER_PROC_MEM, JIT_PLACE_ANYWHERE);
    std::fprintf(stderr, "unknown contender %s\n", name.c_str());
    return nullptr;
}

}  // namespace bench
