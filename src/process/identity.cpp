// See identity.h: the process token and generation.
#include "process/identity.h"

#include "os/os.h"
#include "poke/writer.h"
#include "poke/write_gate.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <sched.h>

namespace jitalloc {

namespace {

// Token states. Zero is what a child's wiped page holds.
constexpr uint64_t kUnset = 0, kTakingOver = 1, kOurs = 2;

struct alignas(64) TokenPage {
    std::atomic<uint64_t> token;
};

std::atomic<TokenPage *> g_page{nullptr};  // the MADV_WIPEONFORK page, once mapped
std::atomic<bool> g_no_wipe{false};        // the kernel has no MADV_WIPEONFORK: pid checks
std::atomic<uint64_t> g_generation{0};
std::atomic<pid_t> g_pid{0};               // the process the generation belongs to

// This process is not the one of g_generation (or none was set yet): take it over.
void take_over() {
    g_generation.fetch_add(1, std::memory_order_acq_rel);
    g_pid.store(os::getpid(), std::memory_order_release);
    proc_mem_forget_parent();
    write_gate_forget_parent();
}

TokenPage *map_token_page() {
    void *p = os::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return nullptr;
    if (os::madvise(p, 4096, MADV_WIPEONFORK) != 0) {
        (void)os::munmap(p, 4096);
        return nullptr;
    }
    return static_cast<TokenPage *>(p);
}

uint64_t slow_path() {
    TokenPage *page = g_page.load(std::memory_order_acquire);
    if (!page && !g_no_wipe.load(std::memory_order_acquire)) {
        TokenPage *fresh = map_token_page();
        if (!fresh) {
            // No MADV_WIPEONFORK (or no page for it): compare pids from now on.
            g_no_wipe.store(true, std::memory_order_release);
        } else if (!g_page.compare_exchange_strong(page, fresh, std::memory_order_acq_rel)) {
            (void)os::munmap(fresh, 4096);
        } else {
            page = fresh;
        }
    }
    if (!page) {
        static std::atomic<bool> busy{false};
        while (os::getpid() != g_pid.load(std::memory_order_acquire)) {
            if (!busy.exchange(true, std::memory_order_acq_rel)) {
                if (os::getpid() != g_pid.load(std::memory_order_acquire))
                    take_over();
                busy.store(false, std::memory_order_release);
            } else {
                sched_yield();
            }
        }
        return g_generation.load(std::memory_order_acquire);
    }
    for (;;) {
        uint64_t t = page->token.load(std::memory_order_acquire);
        if (t == kOurs)
            return g_generation.load(std::memory_order_acquire);
        if (t == kUnset && page->token.compare_exchange_strong(t, kTakingOver, std::memory_order_acq_rel)) {
            take_over();
            page->token.store(kOurs, std::memory_order_release);
        } else {
            sched_yield();  // another thread of this new process is taking it over
        }
    }
}

}  // namespace

uint64_t process_generation() {
    TokenPage *page = g_page.load(std::memory_order_acquire);
    if (page && page->token.load(std::memory_order_acquire) == kOurs) [[likely]]
        return g_generation.load(std::memory_order_relaxed);
    return slow_path();
}

}  // namespace jitalloc
