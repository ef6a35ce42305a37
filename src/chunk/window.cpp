// Placement windows from arena options, and what they reach (see window.h).
#include "chunk/window.h"

#include <algorithm>

namespace jitalloc {

namespace {

// A call instruction ends up to this many bytes after the byte it starts at (x86-64:
// at most 15); its displacement counts from there. (arm64's bl counts from its own
// address: the slack only makes the answer more careful.)
constexpr uintptr_t kCallSlack = 16;

uintptr_t below(uintptr_t a, size_t range) { return a > range ? a - range : 0; }
uintptr_t above(uintptr_t a, size_t range) { return a < kUserTop - range ? a + range : kUserTop; }

}  // namespace

Placement make_placement(const jit_arena_options &o) {
    Placement p;
    if (o.placement == JIT_PLACE_ANYWHERE)
        return p;
    p.anywhere = false;
    size_t range = o.near_range ? o.near_range : JIT_DEFAULT_NEAR_RANGE;
    if (o.placement == JIT_PLACE_NEAR_ADDRESSES) {
        p.lo = 0;
        p.hi = kUserTop;
        for (size_t i = 0; i < o.near_count; i++) {
            auto t = reinterpret_cast<uintptr_t>(o.near_addresses[i]);
            p.lo = std::max(p.lo, below(t, range));
            p.hi = std::min(p.hi, above(t, range));
        }
        p.near = p.lo < p.hi ? p.lo + (p.hi - p.lo) / 2 : p.lo;
        return p;
    }
    p.near = o.placement == JIT_PLACE_NEAR_ADDRESS
                 ? reinterpret_cast<uintptr_t>(o.near)
                 : reinterpret_cast<uintptr_t>(reinterpret_cast<const void *>(&jit_alloc));
    p.lo = below(p.near, range);
    p.hi = above(p.near, range);
    return p;
}

bool window_has_room(const Placement &p) {
    if (p.anywhere)
        return true;
    uintptr_t lo = std::max<uintptr_t>(p.lo, kChunkSize);
    uintptr_t first = (lo + kChunkSize - 1) & ~(kChunkSize - 1);
    return first < p.hi && p.hi - first >= kChunkSize;
}

void window_of(const Placement &p, enum jit_placement kind, struct jit_window *out) {
    out->placement = kind;
    out->lo = p.anywhere ? kChunkSize : p.lo;
    out->hi = p.anywhere ? kUserTop : p.hi;
    out->center = p.anywhere ? 0 : p.near;
    out->call_reach = kDirectCallReach;
}

bool window_reaches(const Placement &p, uintptr_t target) {
    uintptr_t lo = p.anywhere ? kChunkSize : p.lo, hi = p.anywhere ? kUserTop : p.hi;
    uintptr_t reach = kDirectCallReach - kCallSlack;
    // The farthest code byte from the target is at one end of the window.
    uintptr_t down = target > lo ? target - lo : lo - target;
    uintptr_t up = hi > target ? hi - target : target - hi;
    return down <= reach && up <= reach;
}

}  // namespace jitalloc
