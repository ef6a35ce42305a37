// perf map files (/tmp/perf-PID.map, "START SIZE name" per line, hex). perf reads the
// file when `perf report` / `perf script` runs, with no notion of time, so the file
// should describe the code that was sampled. Two modes:
//  - default: the file lists the live allocations whose code was written. A new entry
//    is appended (one write(2) with O_APPEND); dropping or resizing one rewrites the
//    file from the table into a new perf-PID.map.XXXXXX (created exclusively, mode
//    0644) and renames it over the map (O(live) per free), so perf never sees a
//    half-written file, a reused address never carries a stale name, and nothing
//    planted in /tmp is followed.
//  - JITALLOC_PERF_MAP=keep: append-only; freed entries stay, which keeps names for
//    code that was freed before `perf report` ran. When an address is reused, the map
//    then has two entries at one start address and perf keeps only one of them.
// These functions do their own open/write/rename: the file is not part of the
// allocator's memory path (os.h's seam covers code memory and its bookkeeping).
// Called with the observer lock held (observe.cpp).
#pragma once

#include "observe/records.h"

namespace jitalloc {

// Lists the record at addr (it is in table, with in_perf_map set). The first entry of a
// process, or of a forked child, starts the file afresh from the whole table.
void perf_map_add(const RecordTable &table, uintptr_t addr, const Record &r);
// A record listed in the map was dropped from table: the file follows (unless keep).
void perf_map_dropped(const RecordTable &table);
// The listed record at addr changed its length (a shrink): the file follows (with keep,
// a second line for the same start is appended).
void perf_map_changed(const RecordTable &table, uintptr_t addr, const Record &r);

}  // namespace jitalloc
