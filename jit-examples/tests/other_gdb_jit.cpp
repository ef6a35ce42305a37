// libother_gdb_jit: a stand-in for another JIT runtime in the process (libLLVM's ORC and
// MCJIT, LuaJIT, ...) that defines GDB's JIT interface symbols itself. Like libLLVM-16 it
// exports them under its own symbol version (other_gdb_jit.map) and reaches its descriptor
// through the GOT, so the dynamic linker decides which definition its code writes; it
// guards its list with its own mutex. Its functions are `mov eax, imm32; ret`, each in a
// page it maps RW, writes and turns RX, announced with a symbol file from jitalloc's
// builder (src/observe/gdb_symfile.cpp is compiled into this library).
#include "observe/gdb_symfile.h"

#include <sys/mman.h>

#include <cstring>
#include <mutex>

extern "C" {

struct jit_descriptor __jit_debug_descriptor = {1, JIT_NOACTION, nullptr, nullptr};

__attribute__((noinline)) void __jit_debug_register_code(void) { __asm__ volatile("" ::: "memory"); }

}  // extern "C"

namespace {

std::mutex g_lock;  // this runtime's lock over its descriptor

constexpr size_t kCodeOffset = 16;  // the page starts with the entry pointer

void announce(jit_code_entry *e, uint32_t action) {
    __jit_debug_descriptor.relevant_entry = e;
    __jit_debug_descriptor.action_flag = action;
    __jit_debug_register_code();
}

}  // namespace

extern "C" {

// A new function returning value, named name for GDB; nullptr on failure.
void *other_jit_add(const char *name, int value) {
    void *page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return nullptr;
    auto *code = static_cast<unsigned char *>(page) + kCodeOffset;
    code[0] = 0xb8;  // mov eax, imm32
    std::memcpy(code + 1, &value, 4);
    code[5] = 0xc3;  // ret
    jit_code_entry *e = jitalloc::gdb_symfile_entry(reinterpret_cast<uintptr_t>(code), 6, name,
                                                    std::strlen(name));
    if (!e) {
        munmap(page, 4096);
        return nullptr;
    }
    *static_cast<jit_code_entry **>(page) = e;
    if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) {
        std::free(e);
        munmap(page, 4096);
        return nullptr;
    }
    std::lock_guard<std::mutex> g(g_lock);
    e->next_entry = __jit_debug_descriptor.first_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e;
    __jit_debug_descriptor.first_entry = e;
    announce(e, JIT_REGISTER_FN);
    return code;
}

int other_jit_remove(void *fn) {
    void *page = static_cast<unsigned char *>(fn) - kCodeOffset;
    jit_code_entry *e = *static_cast<jit_code_entry **>(page);
    {
        std::lock_guard<std::mutex> g(g_lock);
        if (e->prev_entry)
            e->prev_entry->next_entry = e->next_entry;
        else
            __jit_debug_descriptor.first_entry = e->next_entry;
        if (e->next_entry)
            e->next_entry->prev_entry = e->prev_entry;
        announce(e, JIT_UNREGISTER_FN);
        __jit_debug_descriptor.relevant_entry = nullptr;
        __jit_debug_descriptor.action_flag = JIT_NOACTION;
    }
    std::free(e);
    return munmap(page, 4096);
}

// The descriptor this library's own code writes: whatever the dynamic linker bound its
// GOT entry to.
const jit_descriptor *other_jit_bound_descriptor(void) { return &__jit_debug_descriptor; }

}  // extern "C"
