// Reports a person asks for through the environment, printed to stderr:
//   JITALLOC_STATS=1    jit_stats of each arena when it is destroyed, and of every arena
//                       still live when the process exits (like MIMALLOC_SHOW_STATS)
//   JITALLOC_VERBOSE=1  at each arena's creation: which writers it probed, which one it
//                       chose, and why the others failed
// Both are read once per process, at the first arena creation; 0 or unset is off, any
// other value than 0 or 1 is named on stderr once and counts as off. They cover every
// arena, JIT_ARENA_IGNORE_ENV or not: they change nothing but what is printed.
//
// Invariants:
//  - Each report is written with one stdio call on the unbuffered stderr (a line, or a
//    block of lines for stats), so reports of several threads do not interleave.
//  - The exit report is registered with atexit() only when JITALLOC_STATS=1; it walks
//    the arena registry under its lock, like jit_shrink.
//  - No report is printed with an arena lock held.
#pragma once

#include <jitalloc/jitalloc.h>

#include <cstdint>

struct jit_arena;

namespace jitalloc {

// What writer selection tried for one arena: each writer probed, in order, with its
// result (0: it works), and why that order was used.
struct WriterProbes {
    enum class Asked { auto_order, options, environment };
    struct Probe {
        jit_writer writer;
        int rc;
    };
    Asked asked = Asked::auto_order;
    Probe probes[JIT_WRITER_COUNT] = {};
    unsigned count = 0;

    void add(jit_writer w, int rc) {
        if (count < JIT_WRITER_COUNT)
            probes[count++] = {w, rc};
    }
};

// Arena creation is over: a is the new arena (nullptr: creation failed with rc after
// probing, or before it with no probes). Prints the JITALLOC_VERBOSE line.
void report_arena_created(const jit_arena *a, const WriterProbes &probes, int rc);
// a is about to be destroyed (marked dying, its gate not entered): prints its
// JITALLOC_STATS block.
void report_arena_destroyed(jit_arena *a);

}  // namespace jitalloc
