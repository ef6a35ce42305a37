// The write gate (invariants in write_gate.h).
#include "poke/write_gate.h"

#include "process/thread_shard.h"

#include <sched.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace jitalloc {

namespace {

constexpr unsigned kNoStripe = UINT_MAX;

struct alignas(kCacheLine) Stripe {
    std::atomic<int> n{0};
};
// Constant-initialised: usable from any static initialiser, and nothing to lock across fork.
constinit Stripe g_stripes[kShards];
// The exclusive holder: its thread's token (below), or 0 while the gate is open.
constinit std::atomic<uintptr_t> g_owner{0};

// A thread's token: the address of one of its thread-locals, unique among live threads.
uintptr_t this_thread_token() {
    static thread_local char token;
    return reinterpret_cast<uintptr_t>(&token);
}

}  // namespace

// Out of line: the waiting (std::atomic wait) would otherwise cost every write's entry a
// frame of saved registers.
[[gnu::noinline]] static void wait_while_owned(std::atomic<int> &stripe, uintptr_t owner) {
    while (owner != 0 && owner != this_thread_token()) {
        // A patch writes bytes that may be ours: wait outside, holding nothing.
        stripe.fetch_sub(1, std::memory_order_release);
        while ((owner = g_owner.load(std::memory_order_acquire)) != 0)
            g_owner.wait(owner, std::memory_order_acquire);
        stripe.fetch_add(1, std::memory_order_seq_cst);
        owner = g_owner.load(std::memory_order_seq_cst);
    }
}

WriteGateShare::WriteGateShare(bool active) : stripe_(kNoStripe) {
    if (!active)
        return;
    const unsigned s = this_thread_shard();
    g_stripes[s].n.fetch_add(1, std::memory_order_seq_cst);
    if (uintptr_t owner = g_owner.load(std::memory_order_seq_cst)) [[unlikely]]
        wait_while_owned(g_stripes[s].n, owner);
    stripe_ = s;
}

WriteGateShare::~WriteGateShare() {
    if (stripe_ != kNoStripe)
        g_stripes[stripe_].n.fetch_sub(1, std::memory_order_release);
}

WriteGateExclusive::WriteGateExclusive(bool active) : held_(active) {
    if (!active)
        return;
    const uintptr_t me = this_thread_token();
    for (uintptr_t open = 0; !g_owner.compare_exchange_weak(open, me, std::memory_order_seq_cst);
         open = 0)
        sched_yield();  // patches are serialised by the patch lock: not reached today
    // Writes in flight finish (a system call each); new ones wait for us.
    for (Stripe &s : g_stripes)
        while (s.n.load(std::memory_order_seq_cst) != 0)
            sched_yield();
}

WriteGateExclusive::~WriteGateExclusive() {
    if (!held_)
        return;
    g_owner.store(0, std::memory_order_seq_cst);
    g_owner.notify_all();
}

void write_gate_forget_parent() {
    for (Stripe &s : g_stripes)
        s.n.store(0, std::memory_order_relaxed);
    g_owner.store(0, std::memory_order_release);
}

int write_gate_shared_holders() {
    int n = 0;
    for (const Stripe &s : g_stripes)
        n += s.n.load(std::memory_order_acquire);
    return n;
}

}  // namespace jitalloc
