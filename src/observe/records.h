// The observers' table: one record per live allocation of an observed arena. observe.cpp
// owns it under the observer lock; perf_map, gdb_register and the other observers read
// and change it only with that lock held, called from observe.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

struct jit_arena;
struct jit_code_entry;

namespace jitalloc {

struct Record {
    jit_arena *arena = nullptr;
    size_t len = 0;                 // bytes requested
    std::string name;               // one line: no newlines
    unsigned flags = 0;             // the arena's observer flags (JIT_ARENA_PERF_MAP, ...)
    bool written = false;           // its code exists and was announced to the observers
    bool in_perf_map = false;
    bool in_jitdump = false;        // a load record of its code is in the jitdump
    jit_code_entry *gdb = nullptr;  // its GDB symbol file (JIT_ARENA_GDB_JIT)
    bool gdb_linked = false;        // gdb is in GDB's list now
};

using RecordTable = std::map<uintptr_t, Record>;

}  // namespace jitalloc
