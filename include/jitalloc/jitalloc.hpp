// jitalloc C++ API: the same engine as <jitalloc/jitalloc.h>, with RAII and spans.
//
// Errors are values, never exceptions: functions that can fail return an int errno
// (0 on success) or a jitalloc::Result<T>, which holds either a value or an errno.
// The errno values mean what they mean in the C API (EINVAL, ENOMEM, ...).
#ifndef JITALLOC_JITALLOC_HPP
#define JITALLOC_JITALLOC_HPP

#include <jitalloc/jitalloc.h>

#include <cerrno>
#include <cstddef>
#include <span>
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

// A value or an errno. Check ok() (or operator bool) before value().
template <class T>
class Result {
public:
    Result(T value) : value_(std::move(value)), error_(0) {}
    static Result failure(int error) { return Result(error, Tag{}); }

    bool ok() const { return error_ == 0; }
    explicit operator bool() const { return ok(); }
    int error() const { return error_; }
    T &value() & { return value_; }
    T &&value() && { return std::move(value_); }
    T *operator->() { return &value_; }

private:
    struct Tag {};
    Result(int error, Tag) : value_(), error_(error) {}
    T value_;
    int error_;
};

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
    ArenaOptions &flags(unsigned f) { c.flags = f; return *this; }
    ArenaOptions &name(const char *n) { c.name = n; return *this; }
};

// One live allocation, freed when the handle dies. Move-only.
class Code {
public:
    Code() = default;
    explicit Code(void *p) : p_(p) {}
    Code(Code &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Code &operator=(Code &&o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Code(const Code &) = delete;
    Code &operator=(const Code &) = delete;
    ~Code() { reset(); }

    void *data() const { return p_; }
    size_t size() const { return p_ ? jit_size(p_) : 0; }
    explicit operator bool() const { return p_ != nullptr; }

    // The code's address as a function pointer, e.g. code.as<int (*)(int)>().
    template <class Fn>
    Fn as() const { return reinterpret_cast<Fn>(p_); }

    // Writes bytes at offset; 0 or an errno. Nothing changes on error.
    int update(size_t offset, std::span<const std::byte> bytes) const {
        if (!p_)
            return EINVAL;
        if (offset > size())
            return EINVAL;
        return jit_update(static_cast<char *>(p_) + offset, bytes.data(), bytes.size()) == 0
                   ? 0
                   : errno;
    }

    // Gives up ownership without freeing.
    void *release() { return std::exchange(p_, nullptr); }

    // Frees now; 0 or an errno (the handle is kept on error).
    int reset() {
        if (!p_)
            return 0;
        if (jit_free(p_) != 0)
            return errno;
        p_ = nullptr;
        return 0;
    }

private:
    void *p_ = nullptr;
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

    // Copies code into new ROX memory.
    Result<Code> load(std::span<const std::byte> code, const char *name = nullptr) const {
        return wrap(jit_arena_alloc_named(a_, code.data(), code.size(), name));
    }
    // Reserves len bytes of trap instructions, to be written with Code::update.
    Result<Code> reserve(size_t len, const char *name = nullptr) const {
        return wrap(jit_arena_alloc_named(a_, nullptr, len, name));
    }

    int stats(struct jit_stats &out) const { return jit_arena_stats(a_, &out) == 0 ? 0 : errno; }
    size_t shrink() const { return jit_arena_shrink(a_); }

private:
    Arena(jit_arena *a, bool owned) : a_(a), owned_(owned) {}
    static Result<Code> wrap(void *p) {
        if (!p)
            return Result<Code>::failure(errno);
        return Code(p);
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

}  // namespace jitalloc

#endif  // JITALLOC_JITALLOC_HPP
