// A function added with jitalloc::JitRuntime::add(&fn, &code, "asm_answer") (which
// reserves by name, then writes the code with one jit_update), then called after a stop
// at jit_checkpoint: the gdb test breaks on asm_answer by name. Exit 0 if it returns 42.
#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>

#include <cstdio>

extern "C" __attribute__((noinline)) void jit_checkpoint(const char *what) {
    std::printf("checkpoint: %s\n", what);
    std::fflush(stdout);
}

int main() {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_GDB_JIT | JIT_ARENA_IGNORE_ENV;
    jit_arena *a = jit_arena_create(&o);
    if (!a)
        return 1;
    jitalloc::JitRuntime rt(a);
    asmjit::CodeHolder code;
    code.init(rt.environment());
    asmjit::x86::Assembler as(&code);
    as.push(asmjit::x86::rbp);
    as.mov(asmjit::x86::rbp, asmjit::x86::rsp);
    as.mov(asmjit::x86::eax, 42);
    as.pop(asmjit::x86::rbp);
    as.ret();
    int (*fn)() = nullptr;
    if (rt.add(&fn, &code, "asm_answer") != asmjit::kErrorOk)
        return 1;
    jit_checkpoint("added");
    int r = fn();
    std::printf("asm_answer returned %d\n", r);
    rt.release(fn);
    jit_arena_destroy(a);
    return r == 42 ? 0 : 1;
}
