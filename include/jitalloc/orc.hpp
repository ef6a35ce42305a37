// jitalloc::orc — LLVM ORC / JITLink on jitalloc (library jitalloc-orc, CMake target
// jitalloc::orc; LLVM 16).
//
//     auto MM = llvm::cantFail(jitalloc::orc::MemoryManager::Create());
//     llvm::orc::LLJITBuilder B;
//     llvm::cantFail(jitalloc::orc::configure(B, *MM));   // MM must outlive the JIT
//     auto J = llvm::cantFail(B.create());
//
// MemoryManager is a llvm::jitlink::JITLinkMemoryManager:
//  - executable segments come from a jit_arena (slab objects for small ones, page runs
//    for big ones), reserved trap-filled; JITLink lays the graph out and fixes it up in
//    ordinary heap memory at the final addresses, and finalize commits the executable
//    segments as one jit_batch (one kernel write per run of adjacent segments; the code is
//    live only from then on): code memory is never writable (strict writers:
//    no writable view of it exists at any time);
//  - read-write segments (data, .bss, eh_frame in LLVM 16) and read-only ones ($__GOT)
//    come from ordinary memory that the arena maps inside its code window
//    (jit_arena_map_near), packed many graphs to a page, R and RW in separate blocks:
//    every data byte is within +-2 GiB of every code byte, so small-code-model
//    PC-relative references resolve with no stubs. Read-only segments are read-only
//    from the moment the graph is finalized: a graph's R data is copied in with a short
//    RW (never executable) flip of its pages;
//  - mappings grow with bytes, not with graphs: 2 MiB code chunks, 2 MiB data blocks;
//  - finalize runs the graph's finalize allocation actions; deallocate runs the dealloc
//    actions (in reverse order), then frees: code goes back trap-filled, data pages that
//    become wholly free are given back to the OS; abandon frees without running any;
//  - thread safe: ORC may link and free on any thread;
//  - each executable segment is named after the first function symbol it defines, so
//    arenas that ask for it (JIT_ARENA_PERF_MAP / JIT_ARENA_GDB_JIT, or the
//    JITALLOC_PERF_MAP / JITALLOC_GDB_JIT environment) show JIT code by name in perf and
//    GDB.
//
// configure() sets what the manager needs from LLJIT: JITLink (LLVM 16's LLJIT defaults
// to RuntimeDyld on x86-64 Linux), the PIC relocation model and small code model
// (LLJIT's default static + large model cannot use near data), and in-process eh-frame
// registration so C++ exceptions unwind through JIT frames.
//
// Errors are llvm::Error values carrying an errno (std::generic_category) and a message.
#ifndef JITALLOC_ORC_HPP
#define JITALLOC_ORC_HPP

#include <jitalloc/jitalloc.hpp>

#include <llvm/ExecutionEngine/JITLink/JITLinkMemoryManager.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace jitalloc::orc {

// Code and data of one manager lie within this distance of its placement address, so
// any data byte is within 2 GiB (less 32 MiB of slack) of any code byte.
inline constexpr size_t kWindow = (size_t{1} << 30) - (size_t{16} << 20);

struct Options {
    Writer writer = Writer::Auto;
    // Arena flags: JIT_ARENA_PERF_MAP, JIT_ARENA_GDB_JIT, JIT_ARENA_NO_HUGE_PAGES,
    // JIT_ARENA_IGNORE_ENV. (The manager adds JIT_ARENA_NO_SYNC_CORE: it writes only
    // fresh, trap-filled code, which no other CPU can have fetched.)
    unsigned arena_flags = 0;
    // Code and data go within kWindow of this address; nullptr: libjitalloc's code,
    // which sits among the host's shared libraries, so calls from JIT code to libc,
    // libstdc++ and libm can be direct.
    const void *near = nullptr;
    size_t retain_bytes = JIT_DEFAULT_RETAIN_BYTES;  // free code chunks kept mapped
    size_t max_code_bytes = 0;                       // cap on code memory; 0: none
    const char *name = "orc";                        // arena name (stats, dumps)
};

// Data memory of one protection (see MemoryManager::stats).
struct DataStats {
    uint64_t blocks = 0;          // mappings (2 MiB blocks; a bigger segment gets its own)
    uint64_t bytes_mapped = 0;
    uint64_t bytes_in_use = 0;    // live segments, rounded to 16 bytes
    uint64_t bytes_resident = 0;  // mincore
};

struct Stats {
    struct jit_stats code;        // the arena's statistics
    DataStats read_write, read_only;
    uint64_t graphs = 0;          // allocations not yet deallocated or abandoned
    uint64_t total_graphs = 0;    // allocations made
};

class MemoryManager final : public llvm::jitlink::JITLinkMemoryManager {
public:
    static llvm::Expected<std::unique_ptr<MemoryManager>> Create(const Options &options = Options());
    ~MemoryManager() override;

    void allocate(const llvm::jitlink::JITLinkDylib *JD, llvm::jitlink::LinkGraph &G,
                  OnAllocatedFunction OnAllocated) override;
    using JITLinkMemoryManager::allocate;

    void deallocate(std::vector<FinalizedAlloc> Allocs,
                    OnDeallocatedFunction OnDeallocated) override;
    using JITLinkMemoryManager::deallocate;

    // The arena holding the code (for jit_arena_stats, jit_arena_shrink, dumps).
    jit_arena *arena() const;
    Stats stats() const;
    // Gives free code chunks (jit_arena_shrink) and wholly free data blocks back to
    // the OS; returns the bytes released.
    size_t shrink();

    class Impl;

private:
    explicit MemoryManager(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

enum class EHFrames {
    Register,  // in-process registration (__register_frame): LLJIT's generic platform
    Leave,     // the platform registers them (ELFNixPlatform with the ORC runtime)
};

// Makes B link with JITLink on `memory` (which must outlive the JIT B creates): a
// JITTargetMachineBuilder for the host unless B has one, set to the PIC relocation model
// and the small code model, an ObjectLinkingLayer on the manager and, unless told to
// Leave them, in-process eh-frame registration.
llvm::Error configure(llvm::orc::LLJITBuilder &B, MemoryManager &memory,
                      EHFrames eh_frames = EHFrames::Register);

}  // namespace jitalloc::orc

#endif  // JITALLOC_ORC_HPP
