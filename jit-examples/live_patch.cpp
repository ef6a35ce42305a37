// Live patching: switch the target of a jump trampoline and of a call site with
// jit_patch / jit_patch_batch while other threads keep calling through them. Callers
// must always reach the old or the new target, never a torn instruction.
//
// The library does the work: jit_patch follows the Linux kernel's text_poke_bp()
// (int3 on the first byte, sync every CPU, the rel32 bytes, sync, the opcode, sync), and
// its SIGTRAP handler restarts a thread that runs into the int3 once the patch is done.
// jit_patch_batch retargets both sites with three syncs in total (text_poke_bp_batch).
// Odd flips patch the two sites one by one, even flips in one batch.
//
// Why not a single aligned 8-byte write of the whole jmp? On x86-64 an aligned 8-byte
// store is atomic, and JITs with a writable mapping patch that way. jitalloc's
// strict-W^X writers write through the kernel (/proc/self/mem, memfd pwrite), whose
// memcpy is `rep movsb` on CPUs with FSRM: no 4- or 8-byte atomicity is promised.
//
// arm64: instructions are 4 bytes and aligned; B/BL and NOP may be swapped for one
// another with a single 32-bit store while other CPUs execute them (the architecture's
// concurrent-modification list), followed by cache maintenance (DC CVAU, DSB ISH,
// IC IVAU, DSB ISH) and an ISB on the other CPUs (membarrier SYNC_CORE or an IPI) -- but
// B reaches only +-128 MiB. Beyond that, or to patch other instructions, use a patched
// pointer: `LDR X16, slot; BR X16` with the 8-byte target in an aligned data slot,
// which needs a single-copy-atomic 64-bit store and no instruction cache maintenance
// (the slot can also live in ordinary RW memory outside code, which keeps W^X). That
// patched-pointer variant works on x86-64 too (`jmp [rip+slot]`). jit_patch on arm64
// reports EOPNOTSUPP until the protocol is plugged into src/arch/.
//
//   example_live_patch [FLIPS]
#include <jitalloc/asmjit.hpp>

#include <asmjit/x86.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------- patch sites

struct PatchSite {
    uint8_t *addr = nullptr;  // the branch's first byte
    uint8_t opcode = 0;       // 0xE9 jmp, 0xE8 call
    uint8_t bytes[5] = {};    // the branch to the next target, filled by retarget()
};

// Fills in the branch of site s to target; ERANGE if rel32 cannot reach it.
int retarget(PatchSite &s, const void *target) {
    int64_t rel = reinterpret_cast<intptr_t>(target) - reinterpret_cast<intptr_t>(s.addr + 5);
    if (rel != static_cast<int32_t>(rel))
        return ERANGE;
    int32_t rel32 = static_cast<int32_t>(rel);
    s.bytes[0] = s.opcode;
    std::memcpy(s.bytes + 1, &rel32, 4);
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

    jit_arena_options opts;
    jit_arena_options_init(&opts);
    opts.name = "live-patch";
    jit_arena *arena = jit_arena_create(&opts);
    if (!arena) {
        std::perror("jit_arena_create");
        return 1;
    }
    struct jit_stats st;
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
    PatchSite jmp_site{tramp, 0xE9};
    PatchSite call_site{caller + 4, 0xE8};
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
        rc = retarget(jmp_site, reinterpret_cast<void *>(next));
        if (!rc)
            rc = retarget(call_site, reinterpret_cast<void *>(next));
        if (!rc && (i & 1)) {  // one by one
            if (jit_patch(jmp_site.addr, jmp_site.bytes, 5) != 0 ||
                jit_patch(call_site.addr, call_site.bytes, 5) != 0)
                rc = errno;
        } else if (!rc) {      // both in one batch: three syncs in all
            const jit_patch_site both[] = {{jmp_site.addr, jmp_site.bytes, 5},
                                           {call_site.addr, call_site.bytes, 5}};
            if (jit_patch_batch(both, 2) != 0)
                rc = errno;
        }
        // Once jit_patch returned, every thread sees the new code.
        if (!rc && (through_tramp() != next() || through_call() != next() + 100)) {
            std::fprintf(stderr, "flip %ld: new target not in effect\n", i);
            rc = -1;
        }
    }
    stop.store(true);
    for (auto &th : threads)
        th.join();
    jit_arena_stats(arena, &st);
    if (rc == EOPNOTSUPP) {
        // The mprotect writer (the page would not be executable during a write, so
        // threads running it would fault) or a kernel without membarrier SYNC_CORE.
        std::printf("live_patch: skipped, live patching is not supported here (writer %s)\n",
                    st.writer_name);
        jit_arena_destroy(arena);
        return 77;
    }

    const long flipped = i - 1;
    uint64_t total[4] = {};
    for (auto &s : seen)
        for (int k = 0; k < 4; k++)
            total[k] += s[k];
    std::printf("live_patch: writer %s, sync_core %u: %ld flips of a jmp trampoline and a call site; "
                "%u threads made %llu/%llu calls to target one/two through the trampoline and "
                "%llu/%llu through the call site; %llu bad results\n",
                st.writer_name, st.sync_core, flipped, nthreads, (unsigned long long)total[0],
                (unsigned long long)total[1], (unsigned long long)total[2], (unsigned long long)total[3],
                (unsigned long long)bad.load());
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
