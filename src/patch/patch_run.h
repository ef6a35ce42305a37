// One live-patch run: the validated sites of a jit_patch / jit_patch_batch call, sorted
// and grouped, and the two operations an architecture's protocol is built from
// (src/arch/live_patch.h): write one part of every site from one image, and sync.
//
// Invariants:
//  - Sites are sorted by address, do not overlap, and each lies inside one live
//    allocation of the run's arena; old_bytes is what the site held when the run began.
//  - A group is a run of consecutive sites whose span is at most kMaxGroupSpan bytes and
//    whose bytes between two sites belong to the allocations holding those sites: the
//    sites lie in one allocation, or in allocations that follow one another with no
//    byte between them (a stub per allocation, handed out in a row). Its part of a step
//    covers the bytes between its sites with their current values, staged as one update
//    per allocation; the batch writes those adjacent updates as one range. Bytes of
//    allocations without a site, and free bytes, are never written: other threads may
//    be writing them (jit_alloc, jit_update, jit_free), while the allocations holding
//    sites are the caller's to leave alone during the patch (jitalloc.h).
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
};

class PatchRun {
public:
    explicit PatchRun(jit_arena *a) : arena_(a), step_(batch_create(a)) {}
    ~PatchRun() {
        if (step_)
            batch_destroy(step_);
    }
    PatchRun(const PatchRun &) = delete;
    PatchRun &operator=(const PatchRun &) = delete;

    // Largest span of one group's write (the bytes between its sites included).
    static constexpr size_t kMaxGroupSpan = 4096;

    // Validates and takes in the caller's sites (EINVAL: see jit_patch; ENOMEM). Sites
    // whose new bytes equal the old ones are dropped.
    int prepare(const jit_patch_site *sites, size_t n);

    bool empty() const { return nsites_ == 0; }
    // Sorted start addresses of the sites, for the table of sites in flight.
    const uintptr_t *addresses() const { return addrs_.get(); }
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
    // Stages [lo, hi) of group g from buf, one update per allocation it spans.
    int stage_by_allocation(const Group &g, uint8_t *lo, uint8_t *hi, const uint8_t *buf);
    const PatchSite *begin() const { return sites_.get(); }
    const PatchSite *end() const { return sites_.get() + nsites_; }

    jit_arena *const arena_;
    jit_batch *step_;  // one step's writes, empty between steps (batch/spare.h); or nullptr
    // Arrays of the caller's n (std::nothrow: the library has no exceptions).
    std::unique_ptr<PatchSite[]> sites_;
    std::unique_ptr<Group[]> groups_;
    std::unique_ptr<uintptr_t[]> addrs_;
    size_t nsites_ = 0, ngroups_ = 0;
};

}  // namespace jitalloc
