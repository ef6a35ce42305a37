// One live-patch run: the validated sites of a jit_patch / jit_patch_batch call, sorted
// and grouped, and the two operations an architecture's protocol is built from
// (src/arch/live_patch.h): write one part of every site from one image, and sync.
//
// Invariants:
//  - Sites are sorted by address, do not overlap, and each lies inside one live
//    allocation of the run's arena; old_bytes is what the site held when the run began.
//  - A group is a run of consecutive sites of one chunk whose span is at most
//    kMaxGroupSpan bytes; its part of a step is one range, staged raw (jit_batch::
//    stage_raw_in_gate) with the bytes between its sites at their current values. Those
//    of the allocations holding sites are the caller's to leave alone during the patch
//    (jitalloc.h; the allocations are checked once, in prepare). Other bytes — other
//    allocations', free ones — other threads may be writing: a run whose groups hold such
//    bytes (spans_foreign()) is patched with the write gate held exclusively
//    (poke/write_gate.h), so none of their writes lands between a step's read and its
//    write. Only writers that can fail part-way do this; for the persistent alias, whose
//    writes are memcpys, a group holds only allocations with sites (one, or several that
//    follow one another with no byte between them).
//  - A step's writes are one batch (src/batch): one kernel write per range of adjacent
//    groups, the step all or nothing (a failed write rolls the step's ranges back), and
//    sync() after it is src/serialise's cross-CPU serialisation, checked.
//  - Nothing here locks: the caller holds the patch lock and the arena's fork gate.
#pragma once

#include "arch/live_patch.h"
#include "batch/spare.h"

#include <jitalloc/jitalloc.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace jitalloc {

struct Chunk;

enum class PatchPart : uint8_t {
    head,   // the first byte
    tail,   // the bytes after it
    whole,  // all of it in one write (architectures with fixed-size instructions)
};

enum class PatchImage : uint8_t {
    trap,       // the trap instruction (head only)
    old_bytes,  // what the site held when the run began
    new_bytes,  // what the caller asked for
};

struct PatchSite {
    uint8_t *dst = nullptr;
    uint8_t len = 0;
    uint8_t old_bytes[arch::kMaxPatchLen] = {};
    uint8_t new_bytes[arch::kMaxPatchLen] = {};
    const uint8_t *alloc = nullptr;      // start of the allocation holding it
    const uint8_t *alloc_end = nullptr;  // and its end (start + usable size)
    Chunk *chunk = nullptr;              // the chunk holding it
    bool held_code = false;              // the allocation had held code before the patch
    size_t code_end = 0;                 // of the allocation when the patch began (Located)
};

class PatchRun {
public:
    explicit PatchRun(jit_arena *a);
    ~PatchRun() {
        if (step_)
            batch_destroy(step_);
    }
    PatchRun(const PatchRun &) = delete;
    PatchRun &operator=(const PatchRun &) = delete;

    // Largest span of one group's write (the bytes between its sites included).
    static constexpr size_t kMaxGroupSpan = 4096;

    // Validates and takes in the caller's sites (EINVAL: see jit_patch; ENOMEM); each
    // allocation holding one counts as holding code from now on. Sites whose new bytes
    // equal the old ones are dropped.
    int prepare(const jit_patch_site *sites, size_t n);

    bool empty() const { return nsites_ == 0; }
    // Whether a group spans bytes of no site's allocation: the protocol must then run
    // with the write gate held exclusively (poke/write_gate.h).
    bool spans_foreign() const { return spans_foreign_; }
    // Sorted start addresses of the sites, for the table of sites in flight.
    const uintptr_t *addresses() const { return addrs_.get(); }
    // Calls fn(start) once for each allocation holding a site (observers, patch.cpp).
    template <class Fn>
    void for_each_allocation(Fn &&fn) const {
        for (size_t i = 0; i < nsites_; i++)
            if (i == 0 || sites_[i].alloc != sites_[i - 1].alloc)
                fn(sites_[i].alloc);
    }
    size_t size() const { return nsites_; }

    // Writes `part` of every site from `image` in one batch; 0 or the errno (then the
    // batch rolled the step back: every site holds what it held before, as far as the
    // writer allows).
    int write(PatchPart part, PatchImage image);
    // Whether write(part, image) would change any byte.
    bool changes(PatchPart part, PatchImage image) const;
    // Every CPU running another thread of this process serialises its instruction
    // stream (src/serialise: membarrier SYNC_CORE; nothing while the process has one
    // thread). 0 or errno.
    int sync();

private:
    struct Group {
        size_t first, count;
    };
    const PatchSite *begin() const { return sites_.get(); }
    const PatchSite *end() const { return sites_.get() + nsites_; }

    jit_arena *const arena_;
    const bool merges_foreign_;  // groups may span other owners' bytes (the writer's kind)
    bool spans_foreign_ = false;
    jit_batch *step_;  // one step's writes, empty between steps (batch/spare.h); or nullptr
    // Arrays of the caller's n (std::nothrow: the library has no exceptions).
    std::unique_ptr<PatchSite[]> sites_;
    std::unique_ptr<Group[]> groups_;
    std::unique_ptr<uintptr_t[]> addrs_;
    size_t nsites_ = 0, ngroups_ = 0;
};

}  // namespace jitalloc
