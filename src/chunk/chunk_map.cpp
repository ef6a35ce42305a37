// Address -> chunk map: a two-level radix table over 2 MiB slots of the user address
// space (47 bits on x86-64, 48 on arm64: arch.h). Leaves are created on first use and
// live as long as the process, so lookups need no lock: one acquire load per level. A
// leaf (128 KiB) is zero-filled memory the kernel hands out page by page as it is touched
// (the first one static, the others from mmap): clearing it in user space would fault in
// all of its pages at once, about half a millisecond of a process's first jit_alloc on a
// VM where a page fault costs ~17 µs (issue 16).
#include "chunk/chunk_map.h"
#include "process/locks.h"

#include "os/os.h"

#include <sys/mman.h>

#include <atomic>
#include <mutex>

namespace jitalloc {

namespace {

constexpr unsigned kAddressBits = arch::kUserAddressBits;
constexpr unsigned kSlotBits = kAddressBits - kChunkShift;  // 26 (x86-64)
constexpr unsigned kLeafBits = 14;
constexpr unsigned kRootBits = kSlotBits - kLeafBits;        // 12 (x86-64)

// All-zero bytes are an empty leaf (every slot a null pointer).
struct Leaf {
    std::atomic<Chunk *> slot[size_t{1} << kLeafBits];
};
static_assert(std::atomic<Chunk *>::is_always_lock_free &&
              sizeof(std::atomic<Chunk *>) == sizeof(Chunk *));

std::atomic<Leaf *> g_root[size_t{1} << kRootBits];
constinit std::mutex &g_grow_lock = process_lock(ProcessLock::chunk_map);  // leaf creation
// The first leaf a process needs (usually its only one: 32 GiB of address space around
// the library) is static memory, zero like a fresh mapping: no mmap call on a process's
// first jit_alloc. Taken under g_grow_lock.
constinit Leaf g_first_leaf;
bool g_first_leaf_taken = false;

bool split(uintptr_t addr, size_t &root, size_t &leaf) {
    if (addr >> kAddressBits)
        return false;
    uintptr_t slot = addr >> kChunkShift;
    root = slot >> kLeafBits;
    leaf = slot & ((size_t{1} << kLeafBits) - 1);
    return true;
}

Leaf *leaf_for(size_t root, bool create) {
    // The root is zero-filled static memory: a read of an untouched page maps the shared
    // zero page and the store after it faults again. A creator's first access is a
    // read-modify-write (the comparison fails harmlessly where a leaf exists): one fault.
    Leaf *l = nullptr;
    if (create)
        g_root[root].compare_exchange_strong(l, nullptr, std::memory_order_acquire);
    else
        l = g_root[root].load(std::memory_order_acquire);
    if (l || !create)
        return l;
    std::lock_guard<std::mutex> g(g_grow_lock);
    l = g_root[root].load(std::memory_order_acquire);
    if (!l) {
        if (!g_first_leaf_taken) {
            g_first_leaf_taken = true;
            l = &g_first_leaf;
        } else {
            void *m = os::mmap(nullptr, sizeof(Leaf), PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED)
                return nullptr;
            l = static_cast<Leaf *>(m);
        }
        g_root[root].store(l, std::memory_order_release);
    }
    return l;
}

bool set_range(uint8_t *base, size_t size, Chunk *value) {
    for (size_t off = 0; off < size; off += kChunkSize) {
        size_t r, i;
        if (!split(reinterpret_cast<uintptr_t>(base + off), r, i))
            return false;
        Leaf *l = leaf_for(r, value != nullptr);
        if (!l)
            return false;
        l->slot[i].store(value, std::memory_order_release);
    }
    return true;
}

}  // namespace

bool chunk_map_insert(Chunk *c) {
    if (set_range(c->base, c->size, c))
        return true;
    set_range(c->base, c->size, nullptr);
    return false;
}

void chunk_map_erase(Chunk *c) { set_range(c->base, c->size, nullptr); }

// Every jit_free and update starts here: two loads and a range check, no call (leaf_for
// serves the writers).
Chunk *chunk_lookup(const void *p) {
    const auto addr = reinterpret_cast<uintptr_t>(p);
    if (addr >> kAddressBits)
        return nullptr;
    const uintptr_t slot = addr >> kChunkShift;
    Leaf *l = g_root[slot >> kLeafBits].load(std::memory_order_acquire);
    return l ? l->slot[slot & ((size_t{1} << kLeafBits) - 1)].load(std::memory_order_acquire)
             : nullptr;
}

}  // namespace jitalloc
