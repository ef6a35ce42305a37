// jitalloc::JitRuntime::add before and after it moved onto batches, in the same run:
// assemble a 256-byte function with a .data section (asmjit x86::Assembler), add it,
// call it, release it.
//
//   jitruntime/<runtime>/spinner:<0|1>
//     batch           jitalloc::JitRuntime as shipped: one jit_batch per function
//     reserve_update  the path it took before (a copy kept here as the reference):
//                     jit_arena_alloc_named(NULL) to reserve, relocate, one jit_arena_update
//     asmjit          asmjit::JitRuntime (RWX JitAllocator, not strict W^X): the peer
//   spinner:1  a second thread runs JIT code meanwhile (a process with threads: any
//              serialisation would show).
// Both jitalloc runtimes use a proc_mem arena. Times include assembling, which is the
// same work for every runtime.
#include "jitruntime_bench.h"

#include "workload.h"

#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>
#include <benchmark/benchmark.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

namespace bench {

namespace {

using namespace asmjit;

// jitalloc::JitRuntime::_add_named as it was before batches (commit 2d27236): reserve a
// live allocation, relocate to it, write it with one jit_arena_update, free it on error.
class ReserveUpdateRuntime : public jitalloc::JitRuntime {
public:
    using jitalloc::JitRuntime::JitRuntime;
    Error _add_named(void **dst, CodeHolder *code, const char *name) noexcept override {
        *dst = nullptr;
        ASMJIT_PROPAGATE(code->flatten());
        ASMJIT_PROPAGATE(code->resolveUnresolvedLinks());
        size_t estimated = code->codeSize();
        jit_arena *a = arena();
        void *p = jit_arena_alloc_named(a, nullptr, estimated, name);
        if (!p)
            return DebugUtils::errored(kErrorOutOfMemory);
        Error err = code->relocateToBase(reinterpret_cast<uintptr_t>(p));
        size_t size = code->codeSize();
        if (err == kErrorOk) {
            std::vector<uint8_t> buf(size);
            err = code->copyFlattenedData(buf.data(), size, CopySectionFlags::kPadTargetBuffer);
            if (err == kErrorOk && jit_arena_update(a, p, buf.data(), size) != 0)
                err = DebugUtils::errored(kErrorInvalidState);
        }
        if (err != kErrorOk) {
            jit_arena_free(a, p);
            return err;
        }
        *dst = p;
        return kErrorOk;
    }
};

// int f(): returns the word in its .data section; nops pad the code to 256 bytes.
template <class Runtime>
Error assemble_and_add(Runtime &rt, int32_t value, int (**fn)()) {
    CodeHolder code;
    code.init(rt.environment());
    Section *data = nullptr;
    ASMJIT_PROPAGATE(code.newSection(&data, ".data", SIZE_MAX, SectionFlags::kNone, 8));
    x86::Assembler a(&code);
    Label constant = a.newLabel();
    a.mov(x86::eax, x86::dword_ptr(constant));
    a.ret();
    for (int i = 0; i < 240; i++)
        a.nop();
    a.section(data);
    a.bind(constant);
    a.dd(static_cast<uint32_t>(value));
    return rt.add(fn, &code);
}

// A second thread calling a JIT function of rt until destroyed.
template <class Runtime>
class Spinner {
public:
    explicit Spinner(Runtime &rt) : rt_(rt) {
        if (assemble_and_add(rt_, 1, &fn_) != kErrorOk)
            return;
        t_ = std::thread([this] {
            int sum = 0;
            while (!stop_.load(std::memory_order_relaxed))
                sum += fn_();
            benchmark::DoNotOptimize(sum);
        });
    }
    ~Spinner() {
        stop_.store(true);
        if (t_.joinable())
            t_.join();
        if (fn_)
            rt_.release(fn_);
    }
    bool ok() const { return fn_ != nullptr; }

private:
    Runtime &rt_;
    int (*fn_)() = nullptr;
    std::atomic<bool> stop_{false};
    std::thread t_;
};

template <class Runtime>
void run(benchmark::State &state, Runtime &rt) {
    std::unique_ptr<Spinner<Runtime>> spinner;
    if (state.range(0)) {
        spinner = std::make_unique<Spinner<Runtime>>(rt);
        if (!spinner->ok()) {
            state.SkipWithError("spinner");
            return;
        }
    }
    int32_t i = 0;
    int64_t sum = 0;
    for (auto _ : state) {
        int (*fn)() = nullptr;
        if (assemble_and_add(rt, i, &fn) != kErrorOk) {
            state.SkipWithError("add failed");
            break;
        }
        sum += fn();
        rt.release(fn);
        i++;
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations());
}

template <class Runtime>
void jitalloc_runtime(benchmark::State &state) {
    jit_arena *a = proc_mem_arena();
    if (!a) {
        state.SkipWithError("no proc_mem arena");
        return;
    }
    {
        Runtime rt(a);
        run(state, rt);
    }
    jit_arena_destroy(a);
}

void asmjit_runtime(benchmark::State &state) {
    asmjit::JitRuntime rt;
    run(state, rt);
}

}  // namespace

void register_jitruntime(bool quick) {
    const double t = quick ? 0.05 : 0.2;
    benchmark::RegisterBenchmark("jitruntime/batch", jitalloc_runtime<jitalloc::JitRuntime>)
        ->ArgName("spinner")->Arg(0)->Arg(1)->MinTime(t);
    benchmark::RegisterBenchmark("jitruntime/reserve_update", jitalloc_runtime<ReserveUpdateRuntime>)
        ->ArgName("spinner")->Arg(0)->Arg(1)->MinTime(t);
    benchmark::RegisterBenchmark("jitruntime/asmjit", asmjit_runtime)
        ->ArgName("spinner")->Arg(0)->Arg(1)->MinTime(t);
}

}  // namespace bench
