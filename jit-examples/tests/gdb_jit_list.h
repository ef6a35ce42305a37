// Reading GDB JIT descriptor lists in tests the way GDB does: one object file's own
// descriptor, found in that object's symbol table, and each entry's ELF symbol file.
#pragma once

#include <jitalloc/gdb_jit.h>

#include <dlfcn.h>
#include <elf.h>

#include <cstring>
#include <string>
#include <vector>

namespace gdbjit_test {

// The __jit_debug_descriptor defined by the shared object containing `inside` (any
// address in it), looked up in that object's own symbol table; nullptr if it has none.
inline const jit_descriptor *descriptor_of_object(const void *inside) {
    Dl_info info;
    if (!dladdr(inside, &info) || !info.dli_fname)
        return nullptr;
    void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return nullptr;
    void *sym = dlsym(h, "__jit_debug_descriptor");
    Dl_info where;
    // dlsym searches the object's dependencies too: accept only the object's own symbol.
    bool own = sym && dladdr(sym, &where) && where.dli_fbase == info.dli_fbase;
    dlclose(h);
    return own ? static_cast<const jit_descriptor *>(sym) : nullptr;
}

// The STT_FUNC symbol names in one entry's ELF symbol file.
inline std::vector<std::string> function_names(const jit_code_entry *e) {
    std::vector<std::string> names;
    const char *base = e->symfile_addr;
    if (!base || e->symfile_size < sizeof(Elf64_Ehdr) || std::memcmp(base, ELFMAG, SELFMAG) != 0)
        return names;
    auto *eh = reinterpret_cast<const Elf64_Ehdr *>(base);
    auto *sh = reinterpret_cast<const Elf64_Shdr *>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_entsize != sizeof(Elf64_Sym))
            continue;
        auto *sym = reinterpret_cast<const Elf64_Sym *>(base + sh[i].sh_offset);
        const char *str = base + sh[sh[i].sh_link].sh_offset;
        for (size_t k = 0; k < sh[i].sh_size / sizeof(Elf64_Sym); k++)
            if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC)
                names.emplace_back(str + sym[k].st_name);
    }
    return names;
}

// Walks the list from first_entry: every entry's prev link points at the one before it,
// and the list ends within `limit` entries. False (with why) if not.
inline bool walk(const jit_descriptor *d, std::vector<const jit_code_entry *> &out,
                 std::string &why, size_t limit = size_t{1} << 20) {
    out.clear();
    const jit_code_entry *prev = nullptr;
    for (const jit_code_entry *e = d->first_entry; e; e = e->next_entry) {
        if (e->prev_entry != prev) {
            why = "entry " + std::to_string(out.size()) + ": prev link does not match";
            return false;
        }
        if (out.size() == limit) {
            why = "list longer than " + std::to_string(limit) + " (a cycle?)";
            return false;
        }
        out.push_back(e);
        prev = e;
    }
    return true;
}

}  // namespace gdbjit_test
