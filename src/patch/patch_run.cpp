// PatchRun: validation, grouping and the write / sync steps of a live patch
// (invariants in patch_run.h).
#include "patch/patch_run.h"

#include "arena/arena.h"
#include "serialise/serialise.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace jitalloc {

namespace {

// The byte range of a site that `part` covers, as offsets into the site.
struct Span {
    size_t from, to;
};
Span part_of(const PatchSite &s, PatchPart part) {
    switch (part) {
    case PatchPart::head:
        return {0, 1};
    case PatchPart::tail:
        return {1, s.len};
    case PatchPart::whole:
        break;
    }
    return {0, s.len};
}

uint8_t image_byte(const PatchSite &s, PatchImage image, size_t i) {
    switch (image) {
    case PatchImage::trap:
        return arch::kPatchBreakpoint;
    case PatchImage::old_bytes:
        return s.old_bytes[i];
    case PatchImage::new_bytes:
        break;
    }
    return s.new_bytes[i];
}

}  // namespace

PatchRun::PatchRun(jit_arena *a)
    : arena_(a), merges_foreign_(!a->writer->infallible()), step_(batch_create(a)) {}

int PatchRun::prepare(const jit_patch_site *in, size_t n) {
    jit_arena *a = arena_;
    if (!step_)
        return ENOMEM;
    sites_.reset(new (std::nothrow) PatchSite[n]);
    groups_.reset(new (std::nothrow) Group[n]);
    addrs_.reset(new (std::nothrow) uintptr_t[n]);
    if (!sites_ || !groups_ || !addrs_)
        return ENOMEM;
    nsites_ = ngroups_ = 0;
    for (size_t i = 0; i < n; i++) {
        const jit_patch_site &s = in[i];
        if (!s.dst || !s.src || s.len == 0 || s.len > arch::kMaxPatchLen)
            return EINVAL;
        auto *dst = static_cast<uint8_t *>(s.dst);
        if (!arch::patch_site_ok(dst, s.len))
            return EINVAL;
        Located loc;  // the allocation must hold all of the site
        if (!a->locate(dst, false, loc) ||
            s.len > loc.usable - static_cast<size_t>(dst - loc.start))
            return EINVAL;
        PatchSite &p = sites_[i];
        p.dst = dst;
        p.len = static_cast<uint8_t>(s.len);
        std::memcpy(p.old_bytes, dst, s.len);
        std::memcpy(p.new_bytes, s.src, s.len);
        p.alloc = loc.start;
        p.alloc_end = loc.start + loc.usable;
        p.chunk = loc.chunk;
        p.held_code = loc.held_code;
        p.code_end = loc.fill_len();
    }
    PatchSite *all = sites_.get();
    std::sort(all, all + n, [](const PatchSite &x, const PatchSite &y) { return x.dst < y.dst; });
    for (size_t i = 1; i < n; i++)
        if (all[i - 1].dst + all[i - 1].len > all[i].dst)
            return EINVAL;  // overlapping sites
    // Only now, with every site valid: drop the ones that change nothing.
    nsites_ = static_cast<size_t>(
        std::remove_if(all, all + n,
                       [](const PatchSite &s) {
                           return std::memcmp(s.old_bytes, s.new_bytes, s.len) == 0;
                       }) -
        all);
    // The steps' writes are staged raw: an allocation that held only traps so far
    // (a reservation), or a site past the allocation's code end, is marked here as an
    // update would mark it (holding code; written that far: its trap fill covers it).
    for (size_t i = 0; i < nsites_; i++) {
        Located loc;
        if ((!all[i].held_code || all[i].dst + all[i].len > all[i].alloc + all[i].code_end) &&
            !a->locate(all[i].dst, false, loc, all[i].len))
            return EINVAL;  // not reached: valid above, and the caller's meanwhile
    }
    spans_foreign_ = false;
    for (size_t i = 0; i < nsites_; i++) {
        const PatchSite &s = all[i];
        addrs_[i] = reinterpret_cast<uintptr_t>(s.dst);
        if (ngroups_) {
            Group &g = groups_[ngroups_ - 1];
            const PatchSite &first = all[g.first], &prev = all[i - 1];
            const bool foreign_between = s.alloc != prev.alloc && s.alloc != prev.alloc_end;
            if (s.chunk == prev.chunk && (merges_foreign_ || !foreign_between) &&
                static_cast<size_t>(s.dst + s.len - first.dst) <= kMaxGroupSpan) {
                g.count++;
                spans_foreign_ = spans_foreign_ || foreign_between;
                continue;
            }
        }
        groups_[ngroups_++] = {i, 1};
    }
    return 0;
}

bool PatchRun::changes(PatchPart part, PatchImage image) const {
    for (const PatchSite &s : *this) {
        Span sp = part_of(s, part);
        for (size_t i = sp.from; i < sp.to; i++)
            if (s.dst[i] != image_byte(s, image, i))
                return true;
    }
    return false;
}

int PatchRun::write(PatchPart part, PatchImage image) {
    uint8_t buf[kMaxGroupSpan];
    for (size_t gi = 0; gi < ngroups_; gi++) {
        const Group &g = groups_[gi];
        // The group's span for this part: from the first site's part to the last's.
        uint8_t *lo = nullptr, *hi = nullptr;
        for (size_t k = g.first; k < g.first + g.count; k++) {
            Span sp = part_of(sites_[k], part);
            if (sp.from == sp.to)
                continue;
            if (!lo)
                lo = sites_[k].dst + sp.from;
            hi = sites_[k].dst + sp.to;
        }
        if (!lo)
            continue;
        size_t len = static_cast<size_t>(hi - lo);
        std::memcpy(buf, lo, len);  // the bytes between the sites keep their values (see .h)
        for (size_t k = g.first; k < g.first + g.count; k++) {
            const PatchSite &s = sites_[k];
            Span sp = part_of(s, part);
            for (size_t i = sp.from; i < sp.to; i++)
                buf[s.dst + i - lo] = image_byte(s, image, i);
        }
        if (int rc = step_->stage_raw_in_gate(sites_[g.first].chunk, lo, buf, len)) {
            step_->abort();
            return rc;
        }
    }
    bool replaces_code;  // patched sites hold live code: the protocol syncs regardless
    return step_->commit_in_gate(&replaces_code);
}

int PatchRun::sync() { return serialise_other_cpus(/*registered=*/true); }

}  // namespace jitalloc
