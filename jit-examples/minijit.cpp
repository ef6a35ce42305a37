// A mini JIT: a BPF-like register VM compiled to x86-64 with asmjit, on jitalloc.
//
// The language: eight 64-bit registers r0..r7; a program is called as prog(a, b) with
// r1 = a, r2 = b and every other register 0, and returns r0 at `exit`.
//   alu   mov add sub mul and or xor (register or 32-bit signed immediate),
//         shl shr sar (immediate), neg           -- wrapping 64-bit arithmetic
//   jump  ja, jeq jne jgt jge (unsigned) jsgt jslt (signed), register or immediate,
//         to pc + 1 + off; backward jumps make loops
//   call  helper k (0..3) with r1..r5 as arguments, result in r0; r1..r5 are 0 after
//   exit
// Registers map onto the SysV ABI as in eBPF's x86-64 JIT: r0 rax, r1..r5 rdi rsi rdx
// rcx r8 (the argument registers, so `call` needs no shuffling), r6 rbx, r7 r12
// (callee-saved, so they survive calls). A call is a direct `call rel32` to the host
// helper: the arena is placed near the helpers (JIT_PLACE_NEAR_ADDRESS), and the
// example checks the emitted E8 rel32 lands on the helper.
//
// The test: thousands of random programs (straight-line code, forward jumps, counted
// loops, helper calls) and a few hand-written ones are compiled, loaded through
// jitalloc::JitRuntime, run on several inputs, compared with an interpreter of the same
// language, and unloaded again (a window of live programs is freed in random order so
// slabs are reused). Exits non-zero on the first mismatch.
//
//   example_minijit [PROGRAMS] [--profile]
// --profile names every program in /tmp/perf-PID.map and GDB's JIT interface, and
// keeps the last programs loaded (see jit-examples/README.md, "Profiling JIT code").
#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

// ---------------------------------------------------------------- the language

enum Op : uint8_t {
    MOV_K, MOV_X, ADD_K, ADD_X, SUB_K, SUB_X, MUL_K, MUL_X,
    AND_K, AND_X, OR_K, OR_X, XOR_K, XOR_X, SHL_K, SHR_K, SAR_K, NEG,
    JA, JEQ_K, JEQ_X, JNE_K, JNE_X, JGT_K, JGT_X, JGE_K, JGE_X, JSGT_K, JSGT_X, JSLT_K, JSLT_X,
    CALL, EXIT,
};

struct Insn {
    Op op;
    uint8_t dst = 0, src = 0;
    int16_t off = 0;
    int32_t imm = 0;
};
using Program = std::vector<Insn>;

constexpr unsigned kRegs = 8;


// ---------------------------------------------------------------- helpers (host code)

extern "C" {
__attribute__((noinline)) uint64_t helper_mix(uint64_t a, uint64_t b, uint64_t c, uint64_t, uint64_t) {
    return a * 3 + b - c;
}
__attribute__((noinline)) uint64_t helper_hash(uint64_t a, uint64_t b, uint64_t c, uint64_t, uint64_t) {
    return (a ^ (b << 7)) + (c >> 3);
}
__attribute__((noinline)) uint64_t helper_dot(uint64_t a, uint64_t b, uint64_t, uint64_t d, uint64_t e) {
    return a * b + d * e;
}
__attribute__((noinline)) uint64_t helper_bits(uint64_t a, uint64_t b, uint64_t, uint64_t, uint64_t e) {
    return static_cast<uint64_t>(__builtin_popcountll(a)) + (b & 0xff) + (e >> 60);
}
}
using Helper = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
const Helper kHelpers[] = {helper_mix, helper_hash, helper_dot, helper_bits};
constexpr unsigned kNumHelpers = sizeof kHelpers / sizeof kHelpers[0];

// ---------------------------------------------------------------- interpreter

// false if the program ran more than max_steps (never for well-formed programs).
bool interpret(const Program &p, uint64_t a, uint64_t b, uint64_t *out, uint64_t max_steps = 10'000'000) {
    uint64_t r[kRegs] = {};
    r[1] = a;
    r[2] = b;
    size_t pc = 0;
    for (uint64_t steps = 0; steps < max_steps; steps++) {
        const Insn &i = p[pc];
        uint64_t &d = r[i.dst];
        const uint64_t x = r[i.src];
        const uint64_t k = static_cast<uint64_t>(static_cast<int64_t>(i.imm));
        bool taken = false;
        switch (i.op) {
        case MOV_K: d = k; break;
        case MOV_X: d = x; break;
        case ADD_K: d += k; break;
        case ADD_X: d += x; break;
        case SUB_K: d -= k; break;
        case SUB_X: d -= x; break;
        case MUL_K: d *= k; break;
        case MUL_X: d *= x; break;
        case AND_K: d &= k; break;
        case AND_X: d &= x; break;
        case OR_K: d |= k; break;
        case OR_X: d |= x; break;
        case XOR_K: d ^= k; break;
        case XOR_X: d ^= x; break;
        case SHL_K: d <<= (i.imm & 63); break;
        case SHR_K: d >>= (i.imm & 63); break;
        case SAR_K: d = static_cast<uint64_t>(static_cast<int64_t>(d) >> (i.imm & 63)); break;
        case NEG: d = 0 - d; break;
        case JA: taken = true; break;
        case JEQ_K: taken = d == k; break;
        case JEQ_X: taken = d == x; break;
        case JNE_K: taken = d != k; break;
        case JNE_X: taken = d != x; break;
        case JGT_K: taken = d > k; break;
        case JGT_X: taken = d > x; break;
        case JGE_K: taken = d >= k; break;
        case JGE_X: taken = d >= x; break;
        case JSGT_K: taken = static_cast<int64_t>(d) > static_cast<int64_t>(k); break;
        case JSGT_X: taken = static_cast<int64_t>(d) > static_cast<int64_t>(x); break;
        case JSLT_K: taken = static_cast<int64_t>(d) < static_cast<int64_t>(k); break;
        case JSLT_X: taken = static_cast<int64_t>(d) < static_cast<int64_t>(x); break;
        case CALL:
            r[0] = kHelpers[i.imm](r[1], r[2], r[3], r[4], r[5]);
            for (unsigned j = 1; j <= 5; j++)
                r[j] = 0;
            break;
        case EXIT: *out = r[0]; return true;
        }
        pc = taken ? static_cast<size_t>(static_cast<ptrdiff_t>(pc) + 1 + i.off) : pc + 1;
    }
    return false;
}

// ---------------------------------------------------------------- compiler

using namespace asmjit;

const x86::Gp kMap[kRegs] = {x86::rax, x86::rdi, x86::rsi, x86::rdx, x86::rcx, x86::r8, x86::rbx, x86::r12};

using JitFn = uint64_t (*)(uint64_t, uint64_t);

struct Compiled {
    JitFn fn = nullptr;
    size_t first_call = SIZE_MAX;  // offset of the first `call` instruction, if any
    Helper first_helper = nullptr;
};

Error compile(const Program &p, jitalloc::JitRuntime &rt, const char *name, Compiled &out) {
    CodeHolder code;
    code.init(rt.environment());
    x86::Assembler a(&code);
    std::vector<Label> at(p.size());
    for (Label &l : at)
        l = a.newLabel();
    Label epilogue = a.newLabel(), first_call = a.newLabel();
    bool have_call = false;

    // Prologue: save r6/r7's registers, align the stack for calls, zero r0 and r3..r7.
    a.push(x86::rbx);
    a.push(x86::r12);
    a.sub(x86::rsp, 8);
    for (unsigned j : {0u, 3u, 4u, 5u, 6u, 7u})
        a.xor_(kMap[j].r32(), kMap[j].r32());

    for (size_t pc = 0; pc < p.size(); pc++) {
        const Insn &i = p[pc];
        a.bind(at[pc]);
        const x86::Gp d = kMap[i.dst], x = kMap[i.src];
        const int64_t k = i.imm;
        switch (i.op) {
        case MOV_K: a.mov(d, k); break;
        case MOV_X: a.mov(d, x); break;
        case ADD_K: a.add(d, k); break;
        case ADD_X: a.add(d, x); break;
        case SUB_K: a.sub(d, k); break;
        case SUB_X: a.sub(d, x); break;
        case MUL_K: a.imul(d, d, k); break;
        case MUL_X: a.imul(d, x); break;
        case AND_K: a.and_(d, k); break;
        case AND_X: a.and_(d, x); break;
        case OR_K: a.or_(d, k); break;
        case OR_X: a.or_(d, x); break;
        case XOR_K: a.xor_(d, k); break;
        case XOR_X: a.xor_(d, x); break;
        case SHL_K: a.shl(d, i.imm & 63); break;
        case SHR_K: a.shr(d, i.imm & 63); break;
        case SAR_K: a.sar(d, i.imm & 63); break;
        case NEG: a.neg(d); break;
        case CALL:
            if (!have_call) {
                a.bind(first_call);
                have_call = true;
                out.first_helper = kHelpers[i.imm];
            }
            a.call(imm(reinterpret_cast<void *>(kHelpers[i.imm])));
            for (unsigned j = 1; j <= 5; j++)
                a.xor_(kMap[j].r32(), kMap[j].r32());
            break;
        case EXIT: a.jmp(epilogue); break;
        default: {  // jumps
            Label t = at[static_cast<size_t>(static_cast<ptrdiff_t>(pc) + 1 + i.off)];
            if (i.op == JA) {
                a.jmp(t);
                break;
            }
            bool reg = i.op == JEQ_X || i.op == JNE_X || i.op == JGT_X || i.op == JGE_X ||
                       i.op == JSGT_X || i.op == JSLT_X;
            if (reg)
                a.cmp(d, x);
            else
                a.cmp(d, k);
            switch (i.op) {
            case JEQ_K: case JEQ_X: a.je(t); break;
            case JNE_K: case JNE_X: a.jne(t); break;
            case JGT_K: case JGT_X: a.ja(t); break;
            case JGE_K: case JGE_X: a.jae(t); break;
            case JSGT_K: case JSGT_X: a.jg(t); break;
            default: a.jl(t); break;
            }
        }
        }
    }
    a.bind(epilogue);
    a.add(x86::rsp, 8);
    a.pop(x86::r12);
    a.pop(x86::rbx);
    a.ret();

    Error err = rt.add(&out.fn, &code, name);
    if (err == kErrorOk && have_call)
        out.first_call = code.labelOffsetFromBase(first_call);
    return err;
}

// ---------------------------------------------------------------- program generator

struct Gen {
    std::mt19937_64 rng;
    explicit Gen(uint64_t seed) : rng(seed) {}
    uint64_t u(uint64_t n) { return rng() % n; }
    int32_t imm() {
        switch (u(4)) {
        case 0: return static_cast<int32_t>(u(16));
        case 1: return -static_cast<int32_t>(u(16));
        default: return static_cast<int32_t>(static_cast<uint32_t>(rng()));
        }
    }

    // One non-control instruction; never writes r7 (the loop counter).
    Insn alu() {
        static const Op ops[] = {MOV_K, MOV_X, ADD_K, ADD_X, SUB_K, SUB_X, MUL_K, MUL_X, AND_K,
                                 AND_X, OR_K, OR_X, XOR_K, XOR_X, SHL_K, SHR_K, SAR_K, NEG};
        Insn i{ops[u(sizeof ops)]};
        i.dst = static_cast<uint8_t>(u(7));
        i.src = static_cast<uint8_t>(u(kRegs));
        i.imm = imm();
        return i;
    }

    // Straight code of n instructions ending at index `end` (exclusive) of p: ALU, calls
    // and forward jumps that land inside [next, end].
    void straight(Program &p, size_t n, size_t end) {
        for (size_t j = 0; j < n; j++) {
            size_t pc = p.size();
            unsigned kind = static_cast<unsigned>(u(10));
            if (kind < 6) {
                p.push_back(alu());
            } else if (kind < 7) {
                Insn i{CALL};
                i.imm = static_cast<int32_t>(u(kNumHelpers));
                p.push_back(i);
            } else {
                static const Op jops[] = {JA, JEQ_K, JEQ_X, JNE_K, JNE_X, JGT_K, JGT_X,
                                          JGE_K, JGE_X, JSGT_K, JSGT_X, JSLT_K, JSLT_X};
                Insn i{jops[u(sizeof jops)]};
                i.dst = static_cast<uint8_t>(u(kRegs));
                i.src = static_cast<uint8_t>(u(kRegs));
                i.imm = u(2) ? static_cast<int32_t>(u(8)) : imm();
                i.off = static_cast<int16_t>(u(end - pc));  // target pc+1+off <= end
                p.push_back(i);
            }
        }
    }

    Program program() {
        Program p;
        unsigned blocks = 1 + static_cast<unsigned>(u(4));
        for (unsigned b = 0; b < blocks; b++) {
            size_t n = 1 + u(10);
            if (u(3) == 0) {
                // Counted loop: mov r7, N; body; sub r7, 1; jne r7, 0, body.
                Insn init{MOV_K};
                init.dst = 7;
                init.imm = static_cast<int32_t>(1 + u(12));
                p.push_back(init);
                size_t body = p.size();
                straight(p, n, body + n);  // jumps stay inside the body (or at the sub)
                Insn dec{SUB_K};
                dec.dst = 7;
                dec.imm = 1;
                p.push_back(dec);
                Insn back{JNE_K};
                back.dst = 7;
                back.imm = 0;
                back.off = static_cast<int16_t>(static_cast<ptrdiff_t>(body) - static_cast<ptrdiff_t>(p.size()) - 1);
                p.push_back(back);
            } else {
                straight(p, n, p.size() + n);
            }
        }
        p.push_back(Insn{EXIT});
        return p;
    }
};

// Hand-written programs with data-dependent loops.
Program factorial() {  // r0 = (a & 31)! (mod 2^64); 0! = 1
    return {
        {AND_K, 1, 0, 0, 31},
        {MOV_K, 0, 0, 0, 1},
        {JEQ_K, 1, 0, 3, 0},   // a == 0: done
        {MUL_X, 0, 1, 0, 0},   // loop: r0 *= r1
        {SUB_K, 1, 0, 0, 1},
        {JNE_K, 1, 0, -3, 0},  // while r1 != 0
        {EXIT},
    };
}
Program popcount() {  // r0 = popcount(a)
    return {
        {MOV_X, 3, 1, 0, 0},
        {JEQ_K, 3, 0, 5, 0},  // while r3 != 0:
        {MOV_X, 4, 3, 0, 0},
        {AND_K, 4, 0, 0, 1},
        {ADD_X, 0, 4, 0, 0},  //   r0 += r3 & 1
        {SHR_K, 3, 0, 0, 1},  //   r3 >>= 1
        {JA, 0, 0, -6, 0},
        {EXIT},
    };
}
Program collatz_steps() {  // r0 = Collatz steps of n = (b & 1023) | 1 down to 1
    return {
        {MOV_X, 6, 2, 0, 0},
        {AND_K, 6, 0, 0, 1023},
        {OR_K, 6, 0, 0, 1},
        {JEQ_K, 6, 0, 9, 1},   // 3: while n != 1
        {ADD_K, 0, 0, 0, 1},   //   steps++
        {MOV_X, 3, 6, 0, 0},
        {AND_K, 3, 0, 0, 1},
        {JEQ_K, 3, 0, 3, 0},   //   even: to 11
        {MUL_K, 6, 0, 0, 3},   //   odd: n = 3n + 1
        {ADD_K, 6, 0, 0, 1},
        {JA, 0, 0, -8, 0},     //   to 3
        {SHR_K, 6, 0, 0, 1},   // 11: n >>= 1
        {JA, 0, 0, -10, 0},    //   to 3
        {EXIT},
    };
}

}  // namespace

int main(int argc, char **argv) {
    long nprograms = 20000;
    bool profile = false;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--profile") == 0)
            profile = true;
        else
            nprograms = std::strtol(argv[i], nullptr, 10);
    }

    jit_arena_options opts;
    jit_arena_options_init(&opts);
    opts.name = "minijit";
    opts.placement = JIT_PLACE_NEAR_ADDRESS;  // rel32 calls reach the helpers
    opts.near = reinterpret_cast<const void *>(&helper_mix);
    if (profile)
        opts.flags |= JIT_ARENA_PERF_MAP | JIT_ARENA_GDB_JIT;
    jit_arena *arena = jit_arena_create(&opts);
    if (!arena) {
        std::perror("jit_arena_create");
        return 1;
    }
    jitalloc::JitRuntime rt(arena);

    const uint64_t inputs[][2] = {{0, 0}, {1, 2}, {5, 7}, {20, 3}, {0xffffffffffffffffull, 1},
                                  {0x8000000000000000ull, 12345}, {123456789, 987654321}, {63, 64}};
    std::mt19937_64 order(42);
    Gen gen(7);
    struct Live {
        JitFn fn;
    };
    std::vector<Live> live;
    const size_t kWindow = 64;
    long checked = 0, calls_checked = 0, failures = 0;

    auto check_program = [&](const Program &p, long id) -> bool {
        char name[32];
        std::snprintf(name, sizeof name, "bpf_prog_%ld", id);
        Compiled c;
        Error err = compile(p, rt, name, c);
        if (err != kErrorOk) {
            std::fprintf(stderr, "program %ld: asmjit error %s\n", id, DebugUtils::errorAsString(err));
            return false;
        }
        if (c.first_call != SIZE_MAX) {
            // The call is a direct E8 rel32 to the helper (no address-table indirection).
            const auto *ip = reinterpret_cast<const uint8_t *>(c.fn) + c.first_call;
            if ((ip[0] & 0xf0) == 0x40)
                ip++;  // asmjit may put an (empty) REX prefix on the call
            int32_t rel;
            std::memcpy(&rel, ip + 1, 4);
            if (ip[0] != 0xE8 || reinterpret_cast<uintptr_t>(ip + 5 + rel) !=
                                     reinterpret_cast<uintptr_t>(c.first_helper)) {
                std::fprintf(stderr, "program %ld: call is not a rel32 to its helper (%02x %02x at %p, fn %p helper %p)\n", id, ip[0], ip[1], (const void *)ip, (void *)c.fn, (void *)c.first_helper);
                return false;
            }
            calls_checked++;
        }
        for (const auto &in : inputs) {
            uint64_t want;
            if (!interpret(p, in[0], in[1], &want)) {
                std::fprintf(stderr, "program %ld: interpreter step limit\n", id);
                return false;
            }
            uint64_t got = c.fn(in[0], in[1]);
            if (got != want) {
                std::fprintf(stderr, "program %ld (%zu insns): f(%" PRIu64 ", %" PRIu64 ") = %" PRIu64
                             ", interpreter says %" PRIu64 "\n",
                             id, p.size(), in[0], in[1], got, want);
                return false;
            }
        }
        checked++;
        live.push_back({c.fn});
        if (live.size() > kWindow) {  // unload a random live program
            size_t victim = order() % live.size();
            if (rt.release(live[victim].fn) != kErrorOk) {
                std::fprintf(stderr, "release failed\n");
                return false;
            }
            live[victim] = live.back();
            live.pop_back();
        }
        return true;
    };

    // Hand-written programs first (and a self-check of the interpreter on them).
    Program collatz = collatz_steps();
    uint64_t v;
    if (!interpret(factorial(), 10, 0, &v) || v != 3628800 || !interpret(popcount(), 0xff00ff, 0, &v) ||
        v != 16 || !interpret(collatz, 0, 27, &v) || v != 111) {
        std::fprintf(stderr, "interpreter self-check failed\n");
        return 1;
    }
    long id = 0;
    for (const Program &p : {factorial(), popcount(), collatz})
        if (!check_program(p, id++))
            failures++;
    for (long n = 0; n < nprograms && !failures; n++)
        if (!check_program(gen.program(), id++))
            failures++;

    if (!profile) {
        for (const Live &l : live)
            if (rt.release(l.fn) != kErrorOk)
                failures++;
        live.clear();
    }
    struct jit_stats st;
    jit_arena_stats(arena, &st);
    std::printf("minijit: %ld programs compiled, run on %zu inputs each and matched the interpreter; "
                "%ld direct rel32 helper calls checked; %llu loaded, %llu unloaded, %llu live, "
                "%llu chunk(s) mapped\n",
                checked, sizeof inputs / sizeof inputs[0], calls_checked,
                (unsigned long long)st.total_allocs, (unsigned long long)st.total_frees,
                (unsigned long long)st.allocations, (unsigned long long)st.chunks_mapped);
    if (!profile && st.allocations != 0)
        failures++;
    if (profile) {
        // Leave the programs loaded for perf/gdb and hot-loop a few so perf has samples.
        uint64_t acc = 0;
        for (int rep = 0; rep < 200000; rep++)
            for (const Live &l : live)
                acc += l.fn(static_cast<uint64_t>(rep), acc);
        std::printf("profile run: %zu programs named in /tmp/perf-%d.map (checksum %" PRIu64 ")\n",
                    live.size(), static_cast<int>(getpid()), acc);
        return failures ? 1 : 0;  // the arena stays: perf reads the map after exit
    }
    jit_arena_destroy(arena);
    return failures ? 1 : 0;
}
