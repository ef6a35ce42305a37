// Live patching: switch the target of a jump trampoline and of a call site with
// jit_update while other threads keep calling through them. Callers must always reach
// the old or the new target, never a torn instruction.
//
// Technique: the breakpoint protocol of the Linux kernel's text_poke_bp(), in user
// space. A branch is `E9 rel32` (jmp) or `E8 rel32` (call), 5 bytes. To retarget it:
//   1. publish the new target for the trap handler (an atomic store);
//   2. jit_update 1 byte: the opcode becomes int3 (CC);
//   3. jit_update the 4 rel32 bytes behind it;
//   4. jit_update 1 byte: the opcode again (E9 / E8).
// Each jit_update of live code (the allocation has held code and the process has other
// threads) ends with membarrier(SYNC_CORE), so every running thread has
// serialised its instruction stream before the next step: a thread either executes the
// complete old instruction, the complete new one, or the int3, whose SIGTRAP handler
// emulates the new branch (jmp: set RIP; call: push the return address, set RIP).
// Only single bytes are ever changed under a running thread at the instruction start,
// and a 1-byte store is atomic on every writer, including /proc/self/mem, whose kernel
// memcpy is `rep movsb` on CPUs with FSRM and so gives no 4- or 8-byte atomicity.
// (A single aligned 8-byte store of a 5-byte jmp inside one 8-byte word is what many
// JITs do with a writable mapping; with jitalloc's strict-W^X writers the write is a
// kernel copy and that atomicity is not guaranteed, hence the protocol.)
//
// arm64: instructions are 4 bytes and aligned; B/BL and NOP may be swapped for one
// another with a single 32-bit store while other CPUs execute them (the architecture's
// concurrent-modification list), followed by cache maintenance (DC CVAU, DSB ISH,
// IC IVAU, DSB ISH) and an ISB on the other CPUs (membarrier SYNC_CORE or an IPI) -- but
// B reaches only +-128 MiB. Beyond that, or to patch other instructions, use a patched
// pointer: `LDR X16, slot; BR X16` with the 8-byte target in an aligned data slot,
// which needs a single-copy-atomic 64-bit store and no instruction cache maintenance
// (the slot can also live in ordinary RW memory outside code, which keeps W^X). That
// patched-pointer variant works on x86-64 too (`jmp [rip+slot]`).
//
//   example_live_patch [FLIPS]
#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>

#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------- patch sites

struct PatchSite {
    uint8_t *addr = nullptr;                 // the branch's first byte
    uint8_t opcode = 0;                      // 0xE9 jmp, 0xE8 call
    std::atomic<uintptr_t> target{0};        // the target the trap handler emulates
};

constexpr int kMaxSites = 4;
PatchSite g_sites[kMaxSites];
std::atomic<int> g_nsites{0};
std::atomic<uint64_t> g_emulated{0};

void on_sigtrap(int, siginfo_t *, void *ctx) {
    auto *uc = static_cast<ucontext_t *>(ctx);
    greg_t &rip = uc->uc_mcontext.gregs[REG_RIP];
    greg_t &rsp = uc->uc_mcontext.gregs[REG_RSP];
    auto *trap = reinterpret_cast<uint8_t *>(rip) - 1;  // int3 leaves RIP after itself
    int n = g_nsites.load(std::memory_order_acquire);
    for (int i = 0; i < n; i++) {
        PatchSite &s = g_sites[i];
        if (s.addr != trap)
            continue;
        uintptr_t target = s.target.load(std::memory_order_acquire);
        if (s.opcode == 0xE8) {  // call: push the return address (the red zone is free)
            rsp -= 8;
            *reinterpret_cast<uintptr_t *>(rsp) = reinterpret_cast<uintptr_t>(s.addr + 5);
        }
        rip = static_cast<greg_t>(target);
        g_emulated.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    static const char msg[] = "live_patch: SIGTRAP outside a patch site (trap bytes executed)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

int add_site(uint8_t *addr, uint8_t opcode, const void *target) {
    int i = g_nsites.load();
    g_sites[i].addr = addr;
    g_sites[i].opcode = opcode;
    g_sites[i].target.store(reinterpret_cast<uintptr_t>(target));
    g_nsites.store(i + 1, std::memory_order_release);
    return i;
}

// Retargets a live branch with the breakpoint protocol. 0 or an errno.
int patch_branch(PatchSite &s, const void *target) {
    int64_t rel = reinterpret_cast<intptr_t>(target) - reinterpret_cast<intptr_t>(s.addr + 5);
    if (rel != static_cast<int32_t>(rel))
        return ERANGE;
    int32_t rel32 = static_cast<int32_t>(rel);
    const uint8_t int3 = 0xCC;
    s.target.store(reinterpret_cast<uintptr_t>(target), std::memory_order_release);   // 1
    if (jit_update(s.addr, &int3, 1) != 0)                                             // 2
        return errno;
    if (jit_update(s.addr + 1, &rel32, 4) != 0)                                        // 3
        return errno;
    if (jit_update(s.addr, &s.opcode, 1) != 0)                                         // 4
        return errno;
    return 0;
}

// ---------------------------------------------------------------- code

using namespace asmjit;
using IntFn = int (*)();

IntFn make_const(jitalloc::JitRuntime &rt, int value, const char *name) {
    CodeHolder code;
    code.init(rt.environment());
    x86::Assembler a(&code);
    a.mov(x86::eax, value);
    a.ret();
    IntFn fn = nullptr;
    return rt.add(&fn, &code, name) == kErrorOk ? fn : nullptr;
}

// Reserves n bytes and writes bytes with a rel32 at rel_at pointing to target.
uint8_t *load_with_rel32(jit_arena *arena, std::vector<uint8_t> bytes, size_t rel_at, const void *target,
                         const char *name) {
    auto *p = static_cast<uint8_t *>(jit_arena_alloc_named(arena, nullptr, bytes.size(), name));
    if (!p)
        return nullptr;
    int32_t rel = static_cast<int32_t>(reinterpret_cast<intptr_t>(target) -
                                       reinterpret_cast<intptr_t>(p + rel_at + 4));
    std::memcpy(bytes.data() + rel_at, &rel, 4);
    if (jit_update(p, bytes.data(), bytes.size()) != 0)
        return nullptr;
    return p;
}

}  // namespace

int main(int argc, char **argv) {
    const long flips = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 3000;

    struct sigaction sa {};
    sa.sa_sigaction = on_sigtrap;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTRAP, &sa, nullptr);

    jit_arena_options opts;
    jit_arena_options_init(&opts);
    opts.name = "live-patch";
    jit_arena *arena = jit_arena_create(&opts);
    if (!arena) {
        std::perror("jit_arena_create");
        return 1;
    }
    struct jit_stats st;
    jit_arena_stats(arena, &st);
    if (st.writer == JIT_WRITER_MPROTECT) {
        // That writer makes the page non-executable during a write: threads running
        // through it would fault. Live patching needs one of the other writers.
        std::printf("live_patch: skipped, the mprotect writer cannot patch code other threads run\n");
        jit_arena_destroy(arena);
        return 77;
    }
    jitalloc::JitRuntime rt(arena);
    IntFn target[2] = {make_const(rt, 1, "target_one"), make_const(rt, 2, "target_two")};
    if (!target[0] || !target[1])
        return 1;

    // Trampoline: jmp rel32; int3 padding.
    uint8_t *tramp = load_with_rel32(arena, {0xE9, 0, 0, 0, 0, 0xCC, 0xCC, 0xCC}, 1,
                                     reinterpret_cast<void *>(target[0]), "trampoline");
    // A function with a patchable call site at offset 4:
    //   sub rsp, 8; call rel32; add eax, 100; add rsp, 8; ret
    uint8_t *caller = load_with_rel32(
        arena, {0x48, 0x83, 0xEC, 0x08, 0xE8, 0, 0, 0, 0, 0x83, 0xC0, 0x64, 0x48, 0x83, 0xC4, 0x08, 0xC3}, 5,
        reinterpret_cast<void *>(target[0]), "patched_caller");
    if (!tramp || !caller) {
        std::perror("load");
        return 1;
    }
    PatchSite &jmp_site = g_sites[add_site(tramp, 0xE9, reinterpret_cast<void *>(target[0]))];
    PatchSite &call_site = g_sites[add_site(caller + 4, 0xE8, reinterpret_cast<void *>(target[0]))];
    auto through_tramp = reinterpret_cast<IntFn>(tramp);
    auto through_call = reinterpret_cast<IntFn>(caller);

    std::atomic<bool> stop{false};
    std::atomic<unsigned> started{0};
    std::atomic<uint64_t> bad{0};
    const unsigned nthreads = 3;
    std::vector<std::array<uint64_t, 4>> seen(nthreads);  // per thread: tramp 1/2, call 101/102
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < nthreads; t++)
        threads.emplace_back([&, t] {
            auto &s = seen[t];
            s.fill(0);
            started.fetch_add(1);
            while (!stop.load(std::memory_order_relaxed)) {
                int a = through_tramp();
                int b = through_call();
                if (a == 1 || a == 2)
                    __atomic_fetch_add(&s[a - 1], 1, __ATOMIC_RELAXED);
                else
                    bad.fetch_add(1);
                if (b == 101 || b == 102)
                    __atomic_fetch_add(&s[b - 99], 1, __ATOMIC_RELAXED);
                else
                    bad.fetch_add(1);
            }
        });

    while (started.load() < nthreads)
        std::this_thread::yield();
    // At least `flips` flips, and on until every thread has seen both targets through
    // both sites (a fast writer can finish the flips before a thread gets the CPU),
    // for at most 30 s.
    auto all_seen = [&] {
        for (auto &s : seen)
            for (int k = 0; k < 4; k++)
                if (__atomic_load_n(&s[k], __ATOMIC_RELAXED) == 0)
                    return false;
        return true;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int rc = 0;
    long i = 1;
    for (; rc == 0 && (i <= flips || (!all_seen() && std::chrono::steady_clock::now() < deadline)); i++) {
        if (i > flips)
            std::this_thread::sleep_for(std::chrono::microseconds(200));  // let callers run
        IntFn next = target[i & 1];
        rc = patch_branch(jmp_site, reinterpret_cast<void *>(next));
        if (!rc)
            rc = patch_branch(call_site, reinterpret_cast<void *>(next));
        // Once jit_update returned, every thread sees the new code.
        if (!rc && (through_tramp() != next() || through_call() != next() + 100)) {
            std::fprintf(stderr, "flip %ld: new target not in effect\n", i);
            rc = -1;
        }
    }
    stop.store(true);
    for (auto &th : threads)
        th.join();

    const long flipped = i - 1;
    uint64_t total[4] = {};
    for (auto &s : seen)
        for (int k = 0; k < 4; k++)
            total[k] += s[k];
    jit_arena_stats(arena, &st);
    std::printf("live_patch: writer %s, sync_core %u: %ld flips of a jmp trampoline and a call site; "
                "%u threads made %llu/%llu calls to target one/two through the trampoline and "
                "%llu/%llu through the call site; %llu hit the int3 and were emulated; "
                "%llu bad results\n",
                st.writer_name, st.sync_core, flipped, nthreads, (unsigned long long)total[0],
                (unsigned long long)total[1], (unsigned long long)total[2], (unsigned long long)total[3],
                (unsigned long long)g_emulated.load(), (unsigned long long)bad.load());
    if (!st.sync_core)
        std::printf("note: membarrier SYNC_CORE is unavailable here; the protocol then relies on "
                    "x86's coherent instruction fetch without the architectural guarantee\n");
    bool ok = rc == 0 && bad.load() == 0 && total[0] && total[1] && total[2] && total[3];
    if (rc > 0)
        std::fprintf(stderr, "patch failed: %s\n", std::strerror(rc));
    rt.release(target[0]);
    rt.release(target[1]);
    jit_free(tramp);
    jit_free(caller);
    jit_arena_destroy(arena);
    return ok ? 0 : 1;
}
