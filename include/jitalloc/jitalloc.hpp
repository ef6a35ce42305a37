// jitalloc C++ API: the same engine as <jitalloc/jitalloc.h>, with RAII and spans.
//
// Errors are values, never exceptions: functions that can fail return an int errno
// (0 on success) or a jitalloc::Result<T>, which holds either a value or an errno.
// The errno values mean what they mean in the C API (EINVAL, ENOMEM, ...).
//
// Lifetimes: a Code belongs to the arena that made it and frees and updates through that
// arena only. It may outlive its Arena: once the arena is destroyed its Codes are dead —
// update() and reset() return EINVAL and touch nothing (not even code another arena has
// placed at the same address since), size() is 0, and their destructors do nothing; the
// memory went with the arena. The arena is recognised by its id (jit_arena_id), which no
// other arena ever gets, so a new arena at the old arena's address is never mistaken for
// it. Destroying an arena while another thread still uses one of its Codes is a race, as
// with any use of an arena being destroyed: order the two.
//
// Code memory is read-only: write through Code::update (or jit_update), never through
// data() — a store there faults.
#ifndef JITALLOC_JITALLOC_HPP
#define JITALLOC_JITALLOC_HPP

#include <jitalloc/jitalloc.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <ranges>
#include <span>
#include <type_traits>
#include <utility>

namespace jitalloc {

enum class Writer {
    Auto = JIT_WRITER_AUTO,
    ProcMem = JIT_WRITER_PROC_MEM,
    Memfd = JIT_WRITER_MEMFD,
    TempAlias = JIT_WRITER_TEMP_ALIAS,
    PersistentAlias = JIT_WRITER_PERSISTENT_ALIAS,
    Mprotect = JIT_WRITER_MPROTECT,
};

// A value or an errno. Check has_value() (or operator bool) first: value(), operator* and
// operator-> on an error print the errno to stderr and abort the process, in every build.
template <class T>
class Result {
public:
    Result(T value) : value_(std::move(value)), error_(0) {}
    // An error; error must not be 0 (EINVAL is used if it is).
    static Result failure(int error) { return Result(error ? error : EINVAL, Tag{}); }

    bool has_value() const { return error_ == 0; }
    bool ok() const { return has_value(); }
    explicit operator bool() const { return has_value(); }
    int error() const { return error_; }  // 0 when there is a value

    T &value() & { return checked(); }
    const T &value() const & { return checked(); }
    T &&value() && { return std::move(checked()); }
    T &operator*() & { return checked(); }
    const T &operator*() const & { return checked(); }
    T &&operator*() && { return std::move(checked()); }
    T *operator->() { return &checked(); }
    const T *operator->() const { return &checked(); }

private:
    struct Tag {};
    Result(int error, Tag) : error_(error) {}
    T &checked() const {
        if (!value_) {
            std::fprintf(stderr, "jitalloc: Result::value() called on an error (errno %d: %s); "
                                 "check has_value() or error() first\n",
                         error_, std::strerror(error_));
            std::abort();
        }
        return const_cast<T &>(*value_);
    }
    std::optional<T> value_;
    int error_;
};

// Contiguous ranges of bytes that load() and update() take as they are: std::array,
// std::vector, C arrays, std::string_view, spans of unsigned char / uint8_t / std::byte /
// char.
template <class R>
concept ByteRange = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                    sizeof(std::ranges::range_value_t<R>) == 1 &&
                    std::is_trivially_copyable_v<std::ranges::range_value_t<R>>;

template <ByteRange R>
std::span<const std::byte> as_code_bytes(const R &r) {
    return {reinterpret_cast<const std::byte *>(std::ranges::data(r)), std::ranges::size(r)};
}

struct ArenaOptions {
    jit_arena_options c;
    ArenaOptions() { jit_arena_options_init(&c); }
    ArenaOptions &writer(Writer w) { c.writer = static_cast<jit_writer>(w); return *this; }
    ArenaOptions &near(const void *addr) {
        c.placement = JIT_PLACE_NEAR_ADDRESS;
        c.near = addr;
        return *this;
    }
    ArenaOptions &anywhere() { c.placement = JIT_PLACE_ANYWHERE; return *this; }
    ArenaOptions &near_range(size_t bytes) { c.near_range = bytes; return *this; }
    ArenaOptions &retain_bytes(size_t bytes) { c.retain_bytes = bytes; return *this; }
    ArenaOptions &max_bytes(size_t bytes) { c.max_bytes = bytes; return *this; }
    ArenaOptions &name(const char *n) { c.name = n; return *this; }

    // Flags (JIT_ARENA_*): the named setters and add_flags add to what is set; set_flags
    // replaces every flag.
    ArenaOptions &add_flags(unsigned f) { c.flags |= f; return *this; }
    ArenaOptions &set_flags(unsigned f) { c.flags = f; return *this; }
    ArenaOptions &no_sync_core() { return add_flags(JIT_ARENA_NO_SYNC_CORE); }
    ArenaOptions &no_huge_pages() { return add_flags(JIT_ARENA_NO_HUGE_PAGES); }
    ArenaOptions &ignore_env() { return add_flags(JIT_ARENA_IGNORE_ENV); }
    ArenaOptions &perf_map() { return add_flags(JIT_ARENA_PERF_MAP); }
    ArenaOptions &gdb_jit() { return add_flags(JIT_ARENA_GDB_JIT); }
    [[deprecated("flags() replaces every flag set before it: use add_flags() or set_flags()")]]
    ArenaOptions &flags(unsigned f) { return set_flags(f); }
};

// One live allocation, freed through its arena when the handle dies. Move-only. See
// "Lifetimes" at the top: a Code outliving its Arena is dead, never a danger.
class Code {
public:
    Code() = default;
    // Adopts p, a start address from jit_alloc / jit_arena_alloc, and remembers the arena
    // that owns it now (none if p is not live: reset() then fails with EINVAL).
    explicit Code(void *p) : p_(p), arena_id_(jit_arena_id(jit_arena_of(p))) {}
    // Adopts p, an allocation of arena.
    Code(jit_arena *arena, void *p) : p_(p), arena_id_(jit_arena_id(arena)) {}
    Code(Code &&o) noexcept
        : p_(std::exchange(o.p_, nullptr)), arena_id_(std::exchange(o.arena_id_, 0)) {}
    Code &operator=(Code &&o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
            arena_id_ = std::exchange(o.arena_id_, 0);
        }
        return *this;
    }
    Code(const Code &) = delete;
    Code &operator=(const Code &) = delete;
    ~Code() { reset(); }

    void *data() const { return p_; }
    // Usable size; 0 for an empty handle or once the arena is gone.
    size_t size() const {
        return arena() ? jit_size(p_) : 0;
    }
    explicit operator bool() const { return p_ != nullptr; }
    // The id of the arena the code belongs to (jit_arena_id), 0 for an empty handle.
    uint64_t arena_id() const { return arena_id_; }

    // The code's address as a function pointer, e.g. code.as<int (*)(int)>().
    template <class Fn>
    Fn as() const { return reinterpret_cast<Fn>(p_); }

    // Writes bytes at offset; 0 or an errno (EINVAL also when the arena is gone).
    // Nothing changes on error.
    int update(size_t offset, std::span<const std::byte> bytes) const {
        jit_arena *a = arena();
        if (!p_ || !a)
            return EINVAL;
        if (offset > jit_size(p_))
            return EINVAL;
        return jit_arena_update(a, static_cast<char *>(p_) + offset, bytes.data(), bytes.size()) == 0
                   ? 0
                   : errno;
    }
    template <ByteRange R>
    int update(size_t offset, const R &bytes) const { return update(offset, as_code_bytes(bytes)); }
    int update(size_t offset, std::initializer_list<uint8_t> bytes) const {
        return update(offset, std::span<const uint8_t>(bytes.begin(), bytes.size()));
    }

    // Gives back the tail past len (jit_shrink_alloc): it holds traps from now on; whole
    // pages of a page-sized allocation become free. 0 or an errno.
    int shrink(size_t len) const {
        jit_arena *a = arena();
        if (!p_ || !a)
            return EINVAL;
        return jit_arena_shrink_alloc(a, p_, len) == 0 ? 0 : errno;
    }

    // Replaces bytes at offset while other threads may run them (jit_patch: the caller's
    // guarantees are listed in jitalloc.h), through the code's own arena; 0 or an errno
    // (EINVAL also when the arena is gone). Nothing changes on error.
    int patch(size_t offset, std::span<const std::byte> bytes) const {
        jit_arena *a = arena();
        if (!p_ || !a || offset > jit_size(p_))
            return EINVAL;
        return jit_arena_patch(a, static_cast<char *>(p_) + offset, bytes.data(), bytes.size()) == 0
                   ? 0
                   : errno;
    }

    // Gives up ownership without freeing.
    void *release() {
        arena_id_ = 0;
        return std::exchange(p_, nullptr);
    }

    // Frees now, through the code's arena; 0 or an errno (EINVAL when the arena is gone;
    // the handle is kept on error).
    int reset() {
        if (!p_)
            return 0;
        jit_arena *a = arena();
        if (!a)
            return EINVAL;
        if (jit_arena_free(a, p_) != 0)
            return errno;
        p_ = nullptr;
        arena_id_ = 0;
        return 0;
    }

private:
    // The live arena the code belongs to; nullptr once it is destroyed or p_ is no longer
    // one of its live allocations. Found through the chunk map (jit_arena_of: no global
    // lock, so Codes of many threads do not serialise on the arena registry), then
    // recognised by its id: another arena that has since placed code at p_ is not it.
    jit_arena *arena() const {
        if (!arena_id_)
            return nullptr;
        jit_arena *a = jit_arena_of(p_);
        return a && jit_arena_id(a) == arena_id_ ? a : nullptr;
    }

    void *p_ = nullptr;
    uint64_t arena_id_ = 0;
};

// An independent pool with its own options. Move-only; destroying it unmaps its code.
// Arena::global() refers to the default arena and never destroys it.
class Arena {
public:
    static Result<Arena> create(const ArenaOptions &opts = ArenaOptions()) {
        jit_arena *a = jit_arena_create(&opts.c);
        if (!a)
            return Result<Arena>::failure(errno);
        return Arena(a, true);
    }
    static Result<Arena> global() {
        jit_arena *a = jit_default_arena();
        if (!a)
            return Result<Arena>::failure(errno);
        return Arena(a, false);
    }

    Arena() = default;
    Arena(Arena &&o) noexcept
        : a_(std::exchange(o.a_, nullptr)), owned_(std::exchange(o.owned_, false)) {}
    Arena &operator=(Arena &&o) noexcept {
        if (this != &o) {
            destroy();
            a_ = std::exchange(o.a_, nullptr);
            owned_ = std::exchange(o.owned_, false);
        }
        return *this;
    }
    Arena(const Arena &) = delete;
    Arena &operator=(const Arena &) = delete;
    ~Arena() { destroy(); }

    jit_arena *get() const { return a_; }
    // The arena's id (jit_arena_id), 0 for an empty Arena.
    uint64_t id() const { return jit_arena_id(a_); }

    // Copies code into new ROX memory.
    Result<Code> load(std::span<const std::byte> code, const char *name = nullptr) const {
        return wrap(jit_arena_alloc_named(a_, code.data(), code.size(), name));
    }
    // The same from any contiguous range of bytes: std::array<uint8_t, N>,
    // std::vector<unsigned char>, a C array, ...
    template <ByteRange R>
    Result<Code> load(const R &code, const char *name = nullptr) const {
        return load(as_code_bytes(code), name);
    }
    Result<Code> load(std::initializer_list<uint8_t> code, const char *name = nullptr) const {
        return load(std::span<const uint8_t>(code.begin(), code.size()), name);
    }
    // Reserves len bytes of trap instructions, to be written with Code::update.
    Result<Code> reserve(size_t len, const char *name = nullptr) const {
        return wrap(jit_arena_alloc_named(a_, nullptr, len, name));
    }
    // The same, starting at a multiple of align (a power of two up to JIT_MAX_ALIGN).
    Result<Code> reserve_aligned(size_t len, size_t align, const char *name = nullptr) const {
        return wrap(jit_arena_alloc_aligned(a_, nullptr, len, align, name));
    }
    Result<Code> load_aligned(std::span<const std::byte> code, size_t align,
                              const char *name = nullptr) const {
        return wrap(jit_arena_alloc_aligned(a_, code.data(), code.size(), align, name));
    }

    // Live-patches many sites of this arena at once (jit_arena_patch_batch); 0 or errno.
    int patch(std::span<const jit_patch_site> sites) const {
        return jit_arena_patch_batch(a_, sites.data(), sites.size()) == 0 ? 0 : errno;
    }

    int stats(struct jit_stats &out) const { return jit_arena_stats(a_, &out) == 0 ? 0 : errno; }
    size_t shrink() const { return jit_arena_shrink(a_); }

private:
    Arena(jit_arena *a, bool owned) : a_(a), owned_(owned) {}
    Result<Code> wrap(void *p) const {
        if (!p)
            return Result<Code>::failure(errno);
        return Code(a_, p);
    }
    void destroy() {
        if (a_ && owned_)
            jit_arena_destroy(a_);
        a_ = nullptr;
        owned_ = false;
    }

    jit_arena *a_ = nullptr;
    bool owned_ = false;
};

// Many writes made at one commit (see jit_batch_create in jitalloc.h): code for new
// allocations and updates of live code, merged into few kernel writes, serialised once.
// All or nothing; after commit() the batch is empty and reusable. Destroying it drops
// whatever was not committed. Move-only; one thread at a time.
class Batch {
public:
    static Result<Batch> create(const Arena &arena) { return make(arena.get()); }
    // A batch on the default arena.
    static Result<Batch> create() { return make(nullptr); }

    Batch() = default;
    Batch(Batch &&o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
    Batch &operator=(Batch &&o) noexcept {
        if (this != &o) {
            jit_batch_destroy(b_);
            b_ = std::exchange(o.b_, nullptr);
        }
        return *this;
    }
    Batch(const Batch &) = delete;
    Batch &operator=(const Batch &) = delete;
    ~Batch() { jit_batch_destroy(b_); }

    // New code at a final address, live after commit(). Wrap it in a Code after a
    // successful commit to have it freed with the handle.
    Result<void *> load(std::span<const std::byte> code, const char *name = nullptr) {
        return wrap(jit_batch_alloc(b_, code.data(), code.size(), name));
    }
    // len bytes of trap instructions, to be written by update() in this batch or later.
    Result<void *> reserve(size_t len, const char *name = nullptr) {
        return wrap(jit_batch_alloc(b_, nullptr, len, name));
    }
    // The same at an address that is a multiple of align (jit_batch_alloc_aligned).
    Result<void *> reserve_aligned(size_t len, size_t align, const char *name = nullptr) {
        return wrap(jit_batch_alloc_aligned(b_, nullptr, len, align, name));
    }
    // Stages a write into live code or into an allocation of this batch; 0 or an errno.
    int update(void *dst, std::span<const std::byte> bytes) {
        return jit_batch_update(b_, dst, bytes.data(), bytes.size()) == 0 ? 0 : errno;
    }
    // Makes every staged write; 0 or an errno (then nothing of the batch happened).
    int commit() { return jit_batch_commit(b_) == 0 ? 0 : errno; }
    // Drops everything staged.
    void abort() { jit_batch_abort(b_); }

    jit_batch *get() const { return b_; }

private:
    explicit Batch(jit_batch *b) : b_(b) {}
    static Result<Batch> make(jit_arena *a) {
        jit_batch *b = jit_batch_create(a);
        if (!b)
            return Result<Batch>::failure(errno);
        return Batch(b);
    }
    static Result<void *> wrap(void *p) {
        if (!p)
            return Result<void *>::failure(errno);
        return p;
    }

    jit_batch *b_ = nullptr;
};
// Live-patches many sites of one arena at once (jit_patch_batch); 0 or an errno.
inline int patch(std::span<const jit_patch_site> sites) {
    return jit_patch_batch(sites.data(), sites.size()) == 0 ? 0 : errno;
}

}  // namespace jitalloc

#endif  // JITALLOC_JITALLOC_HPP
