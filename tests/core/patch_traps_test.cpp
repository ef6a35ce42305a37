// The SIGTRAP handler that live patching installs keeps every other trap's behaviour:
// breakpoints in host code, raise(SIGTRAP), int3 in freed JIT code and GDB-style int3
// breakpoints planted in live JIT code reach the program's own handler, also while
// other threads patch and run patch sites; with no handler (SIG_DFL, SIG_IGN) a trap
// still ends the process with SIGTRAP; a failed install changes nothing; a handler
// installed later that passes on what it does not own keeps patching working.
//
// x86-64 only (tests/core/CMakeLists.txt): elsewhere there is no trap protocol and no
// handler. The handler is process-wide and installed once, so each test runs in a child
// process forked from a parent that never patches: every child starts without it.
#include "patch_rig.h"

#include "os/os.h"
#include "patch/trap.h"

#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

using namespace jt;
namespace os = jitalloc::os;

namespace {

const uint8_t kInt3 = 0xCC;  // a GDB-style breakpoint

// Runs fn in a child; returns its exit status, or 1000 + the signal that ended it.
template <class Fn>
int child_status(Fn &&fn) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(jitalloc::patch_trap::installed() ? 99 : fn());
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 1000 + WTERMSIG(st) : -1;
}

// The program's own SIGTRAP handler: records the trap and jumps back to the test.
sigjmp_buf g_back;
volatile sig_atomic_t g_code;
volatile uintptr_t g_addr;

void program_handler(int, siginfo_t *info, void *ctx) {
    auto *uc = static_cast<ucontext_t *>(ctx);
    g_code = info->si_code;
    g_addr = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]) - 1;
    siglongjmp(g_back, 1);
}

void install_program_handler() {
    struct sigaction sa {};
    sa.sa_sigaction = program_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTRAP, &sa, nullptr);
}

__attribute__((noinline)) void host_breakpoint() { __asm__ volatile("int3"); }

// Calls code that traps; true if the program's handler saw a breakpoint at `at` (0: any
// address) with si_code `code`.
template <class Fn>
bool handler_saw(Fn &&trap, int code, uintptr_t at) {
    g_code = 0;
    g_addr = 0;
    if (sigsetjmp(g_back, 1) == 0) {
        trap();
        return false;  // came back without a trap
    }
    return g_code == code && (at == 0 || g_addr == at);
}

// The rig's sites flipped by one thread and run by another meanwhile.
struct Busy {
    explicit Busy(const PatchRig &rig) : rig_(rig), callers_(rig, 1) {
        flipper_ = std::thread([this] {
            for (int i = 1; !stop_.load(); i++)
                if (rig_.flip(i & 1, true) != 0)
                    failed_.store(true);
        });
    }
    ~Busy() { stop(); }
    bool stop() {
        stop_.store(true);
        if (flipper_.joinable())
            flipper_.join();
        callers_.stop();
        return !failed_.load() && callers_.bad() == 0;
    }
    const PatchRig &rig_;
    Callers callers_;
    std::thread flipper_;
    std::atomic<bool> stop_{false}, failed_{false};
};

TEST(PatchTraps, ForeignTrapsReachTheProgramsHandler) {
    int st = child_status([] {
        install_program_handler();
        ArenaHolder a(JIT_WRITER_PROC_MEM);
        if (!a.get())
            return 2;
        PatchRig rig(a);
        if (!rig.ok() || rig.flip(1, true) != 0 || !jitalloc::patch_trap::installed())
            return 3;  // installed ours in front of the program's
        // A live function with a GDB-style breakpoint planted at its entry, and freed code.
        auto code = ret_imm(5, 16);
        auto *live = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        auto *freed = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        if (!live || !freed || jit_free(freed) != 0 || jit_update(live, &kInt3, 1) != 0)
            return 4;
        Busy busy(rig);
        for (int i = 0; i < 200; i++) {
            if (!handler_saw(host_breakpoint, SI_KERNEL, 0))
                return 10;
            if (!handler_saw([] { raise(SIGTRAP); }, SI_TKILL, 0))
                return 11;
            if (!handler_saw([&] { call_int(freed); }, SI_KERNEL, reinterpret_cast<uintptr_t>(freed)))
                return 12;
            if (!handler_saw([&] { call_int(live); }, SI_KERNEL, reinterpret_cast<uintptr_t>(live)))
                return 13;
        }
        if (!busy.stop())
            return 20;
        for (int v = 0; v < 2; v++)
            if (rig.flip(v, true) != 0 || rig.wrong(v) != 0)
                return 21;
        return 0;
    });
    EXPECT_EQ(st, 0);
}

// The handler's decision, driven directly with a made-up breakpoint trap: a thread
// whose int3 is gone from jitalloc code by the time its handler runs (a patch finished
// in between) re-executes the address; an int3 still there, `int $3` (CD 03), code
// outside jitalloc and traps that are not breakpoints go to the program's handler. The
// same when process_vm_readv is refused (a seccomp filter): the byte is read directly.
volatile sig_atomic_t g_chained;
void counting_handler(int, siginfo_t *, void *) { g_chained = g_chained + 1; }

TEST(PatchTraps, LateHandlerRestartsOnlyWhereTheInt3IsGone) {
    int st = child_status([] {
        struct sigaction sa {};
        sa.sa_sigaction = counting_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTRAP, &sa, nullptr);
        ArenaHolder a(JIT_WRITER_PROC_MEM);
        auto code = ret_imm(5, 16);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        const uint8_t int_imm3[] = {0xCD, 0x03};
        auto six = ret_imm(6, 6);
        if (!p || jit_patch(p, six.data(), 5) != 0 || !jitalloc::patch_trap::installed() || jit_update(p + 8, int_imm3, 2) != 0 ||
            jit_update(p + 12, &kInt3, 1) != 0)
            return 2;
        struct sigaction ours {};
        sigaction(SIGTRAP, nullptr, &ours);
        // Returns the RIP the handler leaves, -1 if it passed the trap on.
        auto handle = [&](uintptr_t rip, int code_) -> intptr_t {
            siginfo_t info{};
            info.si_signo = SIGTRAP;
            info.si_code = code_;
            ucontext_t uc{};
            pthread_sigmask(SIG_SETMASK, nullptr, &uc.uc_sigmask);
            uc.uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(rip);
            int before = g_chained;
            ours.sa_sigaction(SIGTRAP, &info, &uc);
            pthread_sigmask(SIG_SETMASK, &uc.uc_sigmask, nullptr);
            return g_chained != before ? -1 : static_cast<intptr_t>(uc.uc_mcontext.gregs[REG_RIP]);
        };
        auto at = [](const void *q, size_t off = 0) {
            return reinterpret_cast<uintptr_t>(q) + off;
        };
        for (int refused = 0; refused < 2; refused++) {
            if (refused)
                os::set_fault({1, EPERM, os::mask_of(os::Call::read_memory), true, false});
            if (handle(at(p, 1), SI_KERNEL) != static_cast<intptr_t>(at(p)))
                return 10 + refused;  // int3 gone: re-executed
            if (handle(at(p, 13), SI_KERNEL) != -1)
                return 20 + refused;  // int3 still there
            if (handle(at(p, 10), SI_KERNEL) != -1)
                return 30 + refused;  // int $3
            if (handle(at(p, 1), SI_USER) != -1 || handle(at(p, 1), TRAP_TRACE) != -1)
                return 40 + refused;  // not a breakpoint
            if (handle(at(reinterpret_cast<const void *>(&host_breakpoint), 1), SI_KERNEL) != -1)
                return 50 + refused;  // not jitalloc code
            os::clear_fault();
        }
        return 0;
    });
    EXPECT_EQ(st, 0);
}

// Without a program handler a trap that is not a patch's ends the process with SIGTRAP
// (a core dump, as before); an ignored SIGTRAP stays ignored when sent by kill/raise,
// and an int3 still kills, as the kernel does for a trap it cannot deliver.
TEST(PatchTraps, DefaultAndIgnoredActionsAsBefore) {
    for (auto disposition : {SIG_DFL, SIG_IGN}) {
        SCOPED_TRACE(disposition == SIG_DFL ? "SIG_DFL" : "SIG_IGN");
        auto run = [disposition](bool freed_code) {
            return child_status([=] {
                signal(SIGTRAP, disposition);
                ArenaHolder a(JIT_WRITER_PROC_MEM);
                PatchRig rig(a);
                if (!rig.ok() || rig.flip(1, true) != 0 || rig.wrong(1) != 0)
                    return 3;
                auto code = ret_imm(5, 16);
                void *p = jit_arena_alloc(a, code.data(), code.size());
                if (!p || jit_free(p) != 0)
                    return 4;
                if (freed_code)
                    call_int(p);
                else
                    raise(SIGTRAP);
                return 0;  // survived
            });
        };
        EXPECT_EQ(run(true), 1000 + SIGTRAP);
        EXPECT_EQ(run(false), disposition == SIG_DFL ? 1000 + SIGTRAP : 0);
    }
}

// sigaction failing on the first patch: its errno, and nothing written; the next works.
TEST(PatchTraps, FailedInstallChangesNothing) {
    int st = child_status([] {
        ArenaHolder a(JIT_WRITER_PROC_MEM);
        auto code = ret_imm(5, 16);
        auto *p = static_cast<uint8_t *>(jit_arena_alloc(a, code.data(), code.size()));
        if (!p)
            return 2;
        auto n = ret_imm(6, 6);
        for (uint64_t nth : {1, 2}) {
            os::set_fault({nth, EPERM, os::mask_of(os::Call::sigaction), false, false});
            errno = 0;
            int rc = jit_patch(p, n.data(), 5);
            int err = errno;
            os::clear_fault();
            if (rc != -1 || err != EPERM)
                return 3;
            if (!same_bytes(p, code) || jitalloc::patch_trap::installed())
                return 4;
        }
        if (jit_patch(p, n.data(), 5) != 0 || std::memcmp(p, n.data(), 5) != 0)
            return 5;
        return jitalloc::patch_trap::installed() ? 0 : 6;
    });
    EXPECT_EQ(st, 0);
}

// The contract for handlers installed after the first jit_patch: pass on what is not
// yours to the action you replaced. Done so, patching under callers keeps working.
struct sigaction g_replaced;
std::atomic<uint64_t> g_passed_on{0};

void later_handler(int sig, siginfo_t *info, void *ctx) {
    g_passed_on.fetch_add(1, std::memory_order_relaxed);
    g_replaced.sa_sigaction(sig, info, ctx);
}

TEST(PatchTraps, LaterHandlerThatPassesOnKeepsPatchingWorking) {
    int st = child_status([] {
        ArenaHolder a(JIT_WRITER_PROC_MEM);
        PatchRig rig(a);
        if (!rig.ok() || rig.flip(1, true) != 0)
            return 2;
        struct sigaction sa {};
        sa.sa_sigaction = later_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTRAP, &sa, &g_replaced) != 0 || !(g_replaced.sa_flags & SA_SIGINFO))
            return 3;
        Callers callers(rig, 2);
        for (int i = 0; i < 2000; i++)
            if (rig.flip(i & 1, true) != 0 || rig.wrong(i & 1) != 0)
                return 4;
        callers.stop();
        if (callers.bad() != 0)
            return 5;
        return g_passed_on.load() > 0 ? 0 : 6;  // some caller did hit an int3
    });
    EXPECT_EQ(st, 0);
}

}  // namespace
