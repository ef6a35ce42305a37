// jitalloc::JitRuntime: a drop-in for asmjit::JitRuntime that puts code in jitalloc.
//
//     asmjit::JitRuntime rt;      // before
//     jitalloc::JitRuntime rt;    // after: the only change
//
//     asmjit::CodeHolder code;
//     code.init(rt.environment());
//     ... emit with x86::Assembler / x86::Compiler ...
//     Fn fn;
//     if (rt.add(&fn, &code) != asmjit::kErrorOk) ...
//     fn(...);
//     rt.release(fn);
//
// Like asmjit::JitRuntime it derives from asmjit::Target and has add(&fn, &code),
// release(fn) and the virtual _add/_release, with the same asmjit::Error codes:
//   kErrorNoCodeGenerated  the CodeHolder is empty;
//   kErrorOutOfMemory      jitalloc could not reserve the memory (errno ENOMEM);
//   kErrorInvalidArgument  release() of something that add() did not return, or a
//                          jitalloc error other than ENOMEM (errno says which);
//   any error of CodeHolder::flatten / resolveUnresolvedLinks / relocateToBase.
// add() is one batch (jit_batch_*): it takes the space with jit_batch_alloc_aligned(batch,
// NULL, size, align, name) (the address is final, the memory not live yet; align is 64,
// asmjit::JitAllocator's granularity, or a section's larger alignment, so code that aligns
// data or loops relative to its start finds them aligned as on asmjit's own runtime, up
// to JIT_MAX_ALIGN), relocates the CodeHolder
// to that address, flattens it into an ordinary buffer, stages it, and commits: every
// section of the CodeHolder and the trap tail in one kernel write, no cross-CPU
// serialisation (the memory held only traps), and the function becomes live (jit_size,
// jit_free, perf map, GDB) only once its code is complete. The code memory is never
// writable, no RW alias exists (with the default writer), and on any error nothing was
// published and nothing needs freeing.
// add(&fn, &code, "name") names the function for perf and GDB (arena flags
// JIT_ARENA_PERF_MAP / JIT_ARENA_GDB_JIT, see <jitalloc/jitalloc.h>).
//
// Differences from asmjit::JitRuntime: allocator() / reset() do not exist (there is no
// asmjit::JitAllocator); the memory comes from a jit_arena (the default one unless one
// is given) and stays valid until release() or the arena's destruction; the destructor
// releases nothing (as with asmjit, release what you add, or destroy the arena).
// rel32 calls/jumps from the code to host functions are emitted directly when the
// arena places code within +-2 GiB of them (JIT_PLACE_NEAR_LIBRARY / NEAR_ADDRESS);
// otherwise asmjit falls back to its address table, as it does for JitRuntime.
#ifndef JITALLOC_ASMJIT_HPP
#define JITALLOC_ASMJIT_HPP

#include <jitalloc/jitalloc.h>

#include <asmjit/core.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace jitalloc {

class JitRuntime : public asmjit::Target {
public:
    ASMJIT_NONCOPYABLE(JitRuntime)

    // arena == nullptr: jit_default_arena(), created on first use.
    explicit JitRuntime(jit_arena *arena = nullptr) noexcept : arena_(arena) {
        _environment = asmjit::Environment::host();
        _environment.setObjectFormat(asmjit::ObjectFormat::kJIT);
    }
    ~JitRuntime() noexcept override = default;

    // The arena code goes to (nullptr only if the default arena cannot be created).
    jit_arena *arena() const noexcept { return arena_ ? arena_ : jit_default_arena(); }

    template <typename Func>
    asmjit::Error add(Func *dst, asmjit::CodeHolder *code, const char *name = nullptr) noexcept {
        return _add_named(asmjit::Support::ptr_cast_impl<void **, Func *>(dst), code, name);
    }

    template <typename Func>
    asmjit::Error release(Func p) noexcept {
        return _release(asmjit::Support::ptr_cast_impl<void *, Func>(p));
    }

    virtual asmjit::Error _add(void **dst, asmjit::CodeHolder *code) noexcept {
        return _add_named(dst, code, nullptr);
    }

    virtual asmjit::Error _release(void *p) noexcept {
        if (!p)
            return asmjit::DebugUtils::errored(asmjit::kErrorInvalidArgument);
        jit_arena *a = arena();
        if (!a || jit_arena_free(a, p) != 0)
            return asmjit::DebugUtils::errored(asmjit::kErrorInvalidArgument);
        return asmjit::kErrorOk;
    }

    virtual asmjit::Error _add_named(void **dst, asmjit::CodeHolder *code, const char *name) noexcept {
        using namespace asmjit;
        *dst = nullptr;
        if (!code)
            return DebugUtils::errored(kErrorInvalidArgument);
        ASMJIT_PROPAGATE(code->flatten());
        ASMJIT_PROPAGATE(code->resolveUnresolvedLinks());
        // An upper bound: it counts address-table slots relocation may not need.
        size_t estimated = code->codeSize();
        if (estimated == 0)
            return DebugUtils::errored(kErrorNoCodeGenerated);
        jit_arena *a = arena();
        jit_batch *batch = a ? jit_batch_create(a) : nullptr;
        if (!batch)
            return DebugUtils::errored(kErrorOutOfMemory);
        void *p = jit_batch_alloc_aligned(batch, nullptr, estimated, base_alignment(*code), name);
        Error err = p ? kErrorOk : batch_error(kErrorInvalidArgument);
        if (err == kErrorOk)
            err = code->relocateToBase(reinterpret_cast<uintptr_t>(p));
        size_t size = code->codeSize();
        if (err == kErrorOk && (size == 0 || size > estimated))
            err = DebugUtils::errored(kErrorInvalidState);
        if (err == kErrorOk) {
            std::vector<uint8_t> buf;
            buf.resize(size);  // -fno-exceptions callers: bad_alloc terminates, as new does
            err = code->copyFlattenedData(buf.data(), size, CopySectionFlags::kPadTargetBuffer);
            if (err == kErrorOk &&
                (jit_batch_update(batch, p, buf.data(), size) != 0 || jit_batch_commit(batch) != 0))
                err = batch_error(kErrorInvalidState);
        }
        jit_batch_destroy(batch);  // after a failure: gives the memory back, unwritten
        if (err != kErrorOk)
            return err;
        *dst = p;
        return kErrorOk;
    }

private:
    // Where the code starts: as asmjit::JitAllocator's 64-byte granularity gives, or the
    // largest alignment a section asks for, up to JIT_MAX_ALIGN.
    static size_t base_alignment(const asmjit::CodeHolder &code) noexcept {
        size_t align = 64;
        for (const asmjit::Section *s : code.sections())
            if (s->alignment() > align)
                align = s->alignment();
        return align < JIT_MAX_ALIGN ? align : JIT_MAX_ALIGN;
    }
    // The asmjit error for a failed jit_batch_* call: out of memory for ENOMEM, else
    // `other` (taking the memory: invalid argument; writing it: invalid state).
    static asmjit::Error batch_error(asmjit::Error other) noexcept {
        return asmjit::DebugUtils::errored(errno == ENOMEM ? asmjit::kErrorOutOfMemory : other);
    }

    jit_arena *arena_;
};

}  // namespace jitalloc

#endif  // JITALLOC_ASMJIT_HPP
