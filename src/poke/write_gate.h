// The write gate: lets a live patch write bytes that are not its own — the other
// allocations' and free bytes lying between its sites — with the values they hold, so
// that sites far apart in one chunk share one kernel write per protocol step instead
// of one write each.
//
// A write of bytes with their current values loses another thread's write of the same
// bytes that lands between the read and the write. The gate rules that out: every
// kernel-path write into code memory (poke_pieces, for every writer that can fail
// part-way: all but the persistent alias, whose patches never write such bytes) holds it
// shared from its copy of the old bytes to its read-back and undo; a patch whose groups
// span bytes that are not its own holds it exclusively from before its first read of
// them to after its last write (src/patch/patch.cpp).
//
// Invariants:
//  - Shared holders are counted on one cache line per thread shard (thread_shard.h), as
//    the fork gate does: writes of threads on different shards share no line here.
//    Shared entry adds to its stripe, then reads owner_; exclusive entry sets owner_,
//    then reads the stripes: all seq_cst, so one of the two sees the other.
//  - While a thread holds it exclusively, shared entry by any other thread waits
//    outside, holding nothing of the gate; the owner's own writes enter at once (its
//    commit's pokes).
//  - No cycle of waits: a shared holder takes no lock and waits for nothing but the
//    kernel and leaf locks (the /proc/self/mem descriptor's, the mprotect writer's), so
//    the exclusive entry, which waits for the stripes to drain, always gets in. The
//    exclusive holder then takes no lock of the library but those leaves (its steps are
//    raw batches: jit_batch::stage_raw_in_gate), because a thread waiting at the entrance
//    may hold any other: the observers' lock around a free's commit, a chunk pin that
//    chunk_destroy waits for under the buddy lock, a fork gate. The patch enters
//    exclusively before it writes its first trap instruction, so no shared holder can be
//    parked in the SIGTRAP handler for that patch (a handler running a site).
//  - A new process (fork child, _Fork, clone: identity.h) starts with the gate open and
//    no holder: the parent's threads that held it do not exist there.
#pragma once

namespace jitalloc {

class WriteGateShare {
public:
    // active false: a writer whose writes need no gate (the persistent alias).
    explicit WriteGateShare(bool active);
    ~WriteGateShare();
    WriteGateShare(const WriteGateShare &) = delete;
    WriteGateShare &operator=(const WriteGateShare &) = delete;

private:
    unsigned stripe_;  // kNoStripe: not entered
};

class WriteGateExclusive {
public:
    // active false: nothing is done (the patch writes only its own bytes).
    explicit WriteGateExclusive(bool active);
    ~WriteGateExclusive();
    WriteGateExclusive(const WriteGateExclusive &) = delete;
    WriteGateExclusive &operator=(const WriteGateExclusive &) = delete;

private:
    bool held_;
};

// identity.cpp, when this process turns out to be a new one: forgets every holder.
void write_gate_forget_parent();

// Shared holders now (tests, checkers): 0 whenever no write is in flight.
int write_gate_shared_holders();

}  // namespace jitalloc
