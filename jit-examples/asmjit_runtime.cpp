// asmjit on jitalloc: the same asmjit program run with asmjit::JitRuntime and with
// jitalloc::JitRuntime, which is a one-type change:
//
//     asmjit::JitRuntime rt;    ->    jitalloc::JitRuntime rt;
//
// run_program<Runtime>() below is an ordinary asmjit program written against
// asmjit::JitRuntime's interface; main() runs it once per runtime and checks both give
// the same answers. The functions are built with the x86::Assembler (hand-picked
// registers, a loop, a rel32 call to a host function) and with the x86::Compiler
// (virtual registers, a recursive invoke, an invoke of a host function, floating point).
// Exits non-zero on any mismatch.
#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace asmjit;

namespace {

int g_failures = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,      \
                         __LINE__, #cond);                                   \
            g_failures++;                                                    \
        }                                                                    \
    } while (0)

extern "C" __attribute__((noinline)) int64_t host_mix(int64_t a, int64_t b) { return a * 31 + (b ^ 0x55); }

unsigned rec_ref(unsigned x) { return x < 3 ? x : rec_ref(x - 1) + x; }

struct Results {
    int add = 0;
    int64_t array_sum = 0;
    int64_t host_call = 0;
    unsigned fib = 0;
    int64_t invoke_host = 0;
    double poly = 0;
    Error empty_err = kErrorOk;
    Error release_null_err = kErrorOk;
};

// ---- an asmjit program, written against the JitRuntime interface ----------------

template <class Runtime>
Results run_program(Runtime &rt) {
    Results r;

    {  // Assembler: int add(int, int), register allocation by hand (SysV).
        CodeHolder code;
        code.init(rt.environment());
        x86::Assembler a(&code);
        a.lea(x86::eax, x86::ptr(x86::rdi, x86::rsi));
        a.ret();
        int (*fn)(int, int) = nullptr;
        CHECK(rt.add(&fn, &code) == kErrorOk);
        if (fn) {
            r.add = fn(40, 2);
            CHECK(rt.release(fn) == kErrorOk);
        }
    }
    {  // Assembler: int64 sum(const int64*, size_t) with a loop and labels.
        CodeHolder code;
        code.init(rt.environment());
        x86::Assembler a(&code);
        Label loop = a.newLabel(), done = a.newLabel();
        a.xor_(x86::eax, x86::eax);
        a.test(x86::rsi, x86::rsi);
        a.jz(done);
        a.bind(loop);
        a.add(x86::rax, x86::qword_ptr(x86::rdi));
        a.add(x86::rdi, 8);
        a.dec(x86::rsi);
        a.jnz(loop);
        a.bind(done);
        a.ret();
        int64_t (*fn)(const int64_t *, size_t) = nullptr;
        CHECK(rt.add(&fn, &code) == kErrorOk);
        if (fn) {
            std::vector<int64_t> v(1000);
            for (size_t i = 0; i < v.size(); i++)
                v[i] = static_cast<int64_t>(i * i) - 7;
            r.array_sum = fn(v.data(), v.size());
            CHECK(rt.release(fn) == kErrorOk);
        }
    }
    {  // Assembler: a call to a host function by absolute address (rel32 if in reach).
        CodeHolder code;
        code.init(rt.environment());
        x86::Assembler a(&code);
        a.sub(x86::rsp, 8);  // keep the stack 16-byte aligned at the call
        a.call(imm(reinterpret_cast<void *>(&host_mix)));
        a.add(x86::rax, 1);
        a.add(x86::rsp, 8);
        a.ret();
        int64_t (*fn)(int64_t, int64_t) = nullptr;
        CHECK(rt.add(&fn, &code) == kErrorOk);
        if (fn) {
            r.host_call = fn(5, 9);
            CHECK(rt.release(fn) == kErrorOk);
        }
    }
    {  // Compiler: f(x) = x < 3 ? x : f(x - 1) + x, recursive invoke of itself, virtual regs.
        CodeHolder code;
        code.init(rt.environment());
        x86::Compiler cc(&code);
        FuncNode *f = cc.addFunc(FuncSignatureT<unsigned, unsigned>());
        Label exit = cc.newLabel();
        x86::Gp x = cc.newUInt32("x"), y = cc.newUInt32("y");
        f->setArg(0, x);
        cc.cmp(x, 3);
        cc.jb(exit);
        cc.mov(y, x);
        cc.dec(x);
        InvokeNode *inv;
        cc.invoke(&inv, f->label(), FuncSignatureT<unsigned, unsigned>());
        inv->setArg(0, x);
        inv->setRet(0, x);
        cc.add(x, y);
        cc.bind(exit);
        cc.ret(x);
        cc.endFunc();
        CHECK(cc.finalize() == kErrorOk);
        unsigned (*fn)(unsigned) = nullptr;
        CHECK(rt.add(&fn, &code) == kErrorOk);
        if (fn) {
            r.fib = fn(20);
            CHECK(rt.release(fn) == kErrorOk);
        }
    }
    {  // Compiler: invoke a host function, then combine.
        CodeHolder code;
        code.init(rt.environment());
        x86::Compiler cc(&code);
        FuncNode *f = cc.addFunc(FuncSignatureT<int64_t, int64_t>());
        x86::Gp a = cc.newInt64("a"), t = cc.newInt64("t");
        f->setArg(0, a);
        cc.mov(t, a);
        cc.shl(t, 2);
        InvokeNode *inv;
        cc.invoke(&inv, imm(reinterpret_cast<void *>(&host_mix)), FuncSignatureT<int64_t, int64_t, int64_t>());
        inv->setArg(0, a);
        inv->setArg(1, t);
        inv->setRet(0, t);
        cc.sub(t, a);
        cc.ret(t);
        cc.endFunc();
        CHECK(cc.finalize() == kErrorOk);
        int64_t (*fn)(int64_t) = nullptr;
        CHECK(rt.add(&fn, &code) == kErrorOk);
        if (fn) {
            r.invoke_host = fn(1234);
            CHECK(rt.release(fn) == kErrorOk);
        }
    }
    {  // Compiler: double poly(double x) = 3x^2 + 2x + 1, SSE2 virtual registers.
        CodeHolder code;
        code.init(rt.environment());
        x86::Compiler cc(&code);
        FuncNode *f = cc.addFunc(FuncSignatureT<double, double>());
        x86::Xmm x = cc.newXmmSd("x"), acc = cc.newXmmSd("acc"), k = cc.newXmmSd("k");
        f->setArg(0, x);
        x86::Mem c3 = cc.newDoubleConst(ConstPoolScope::kLocal, 3.0);
        x86::Mem c2 = cc.newDoubleConst(ConstPoolScope::kLocal, 2.0);
        x86::Mem c1 = cc.newDoubleConst(ConstPoolScope::kLocal, 1.0);
        cc.movsd(acc, c3);
        cc.mulsd(acc, x);
        cc.movsd(k, c2);
        cc.addsd(acc, k);
        cc.mulsd(acc, x);
        cc.addsd(acc, c1);
        cc.ret(acc);
        cc.endFunc();
        CHECK(cc.finalize() == kErrorOk);
        double (*fn)(double) = nullptr;
        CHECK(rt.add(&fn, &code) == kErrorOk);
        if (fn) {
            r.poly = fn(1.5);
            CHECK(rt.release(fn) == kErrorOk);
        }
    }
    {  // Errors are asmjit's.
        CodeHolder code;
        code.init(rt.environment());
        void (*fn)() = reinterpret_cast<void (*)()>(1);
        r.empty_err = rt.add(&fn, &code);
        CHECK(fn == nullptr);  // set to null on failure, as asmjit does
        r.release_null_err = rt.release(static_cast<void (*)()>(nullptr));
    }
    return r;
}

}  // namespace

int main() {
    Results want;
    {
        asmjit::JitRuntime rt;  // asmjit's own runtime (RWX or dual-mapped JitAllocator)
        want = run_program(rt);
    }

    jit_arena_options opts;
    jit_arena_options_init(&opts);
    opts.name = "asmjit-example";
    jit_arena *arena = jit_arena_create(&opts);
    CHECK(arena != nullptr);
    if (!arena)
        return 1;
    Results got;
    {
        jitalloc::JitRuntime rt(arena);  // the one-type change (arena optional)
        got = run_program(rt);
    }
    Results got_default;
    {
        jitalloc::JitRuntime rt;  // default arena
        got_default = run_program(rt);
    }

    // Hand-computed answers, and the same as asmjit's runtime.
    int64_t sum = 0;
    for (int64_t i = 0; i < 1000; i++)
        sum += i * i - 7;
    CHECK(want.add == 42 && want.array_sum == sum && want.host_call == host_mix(5, 9) + 1);
    CHECK(want.fib == rec_ref(20) && want.invoke_host == host_mix(1234, 1234 * 4) - 1234);
    CHECK(want.poly == 3 * 1.5 * 1.5 + 2 * 1.5 + 1);
    CHECK(want.empty_err == kErrorNoCodeGenerated);
    for (const Results *r : {&got, &got_default}) {
        CHECK(std::memcmp(&r->add, &want.add, sizeof want.add) == 0);
        CHECK(r->array_sum == want.array_sum && r->host_call == want.host_call);
        CHECK(r->fib == want.fib && r->invoke_host == want.invoke_host && r->poly == want.poly);
        CHECK(r->empty_err == want.empty_err);
        CHECK(r->release_null_err == want.release_null_err);
    }

    struct jit_stats st;
    CHECK(jit_arena_stats(arena, &st) == 0);
    CHECK(st.allocations == 0);          // every add() was released
    CHECK(st.total_allocs == 6 && st.total_frees == 6);
    // No writable view of the code ever existed (unless the persistent-alias writer,
    // which is not strict W^X, was asked for with JITALLOC_WRITER).
    CHECK(st.strict_wx == 1 || st.writer == JIT_WRITER_PERSISTENT_ALIAS);
    std::printf("asmjit example: writer %s, %llu functions added and released, results match "
                "asmjit::JitRuntime\n",
                st.writer_name, (unsigned long long)st.total_allocs);
    CHECK(jit_arena_destroy(arena) == 0);
    if (g_failures) {
        std::fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    return 0;
}
