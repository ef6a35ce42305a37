// Symbol files for GDB's JIT interface (see gdb_symfile.h).
#include "observe/gdb_symfile.h"

#include "observe/host_elf.h"

#include <jitalloc/jitalloc.h>

#include <elf.h>

#include <cstdlib>
#include <cstring>

namespace jitalloc {

namespace {

enum : uint16_t { kSecNull, kSecText, kSecSymtab, kSecStrtab, kSecShstrtab, kNumSec };

}  // namespace

// The image: Ehdr | section headers | symtab | strtab | shstrtab.
jit_code_entry *gdb_symfile_entry(uintptr_t addr, size_t len, const char *name, size_t name_len) {
    static const char shstr[] = "\0.text\0.symtab\0.strtab\0.shstrtab";
    constexpr uint32_t kNameText = 1, kNameSymtab = 7, kNameStrtab = 15, kNameShstrtab = 23;
    const size_t strtab_size = 1 + name_len + 1;

    size_t off_sh = sizeof(Elf64_Ehdr);
    size_t off_sym = off_sh + kNumSec * sizeof(Elf64_Shdr);
    size_t off_str = off_sym + 2 * sizeof(Elf64_Sym);
    size_t off_shstr = off_str + strtab_size;
    size_t size = off_shstr + sizeof shstr;

    auto *block = static_cast<uint8_t *>(std::calloc(1, sizeof(jit_code_entry) + size));
    if (!block)
        return nullptr;
    auto *entry = reinterpret_cast<jit_code_entry *>(block);
    uint8_t *elf = block + sizeof(jit_code_entry);

    auto *eh = reinterpret_cast<Elf64_Ehdr *>(elf);
    std::memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_ident[EI_OSABI] = ELFOSABI_SYSV;
    eh->e_type = ET_REL;
    eh->e_machine = kHostElfMachine;
    eh->e_version = EV_CURRENT;
    eh->e_shoff = off_sh;
    eh->e_ehsize = sizeof(Elf64_Ehdr);
    eh->e_shentsize = sizeof(Elf64_Shdr);
    eh->e_shnum = kNumSec;
    eh->e_shstrndx = kSecShstrtab;

    auto *sh = reinterpret_cast<Elf64_Shdr *>(elf + off_sh);
    // .text: no bytes in the file, its address is the code's (GDB reads code from the
    // process).
    sh[kSecText].sh_name = kNameText;
    sh[kSecText].sh_type = SHT_NOBITS;
    sh[kSecText].sh_flags = SHF_ALLOC | SHF_EXECINSTR;
    sh[kSecText].sh_addr = addr;
    sh[kSecText].sh_offset = off_sym;
    sh[kSecText].sh_size = len;
    sh[kSecText].sh_addralign = JIT_ALLOC_ALIGN;
    sh[kSecSymtab].sh_name = kNameSymtab;
    sh[kSecSymtab].sh_type = SHT_SYMTAB;
    sh[kSecSymtab].sh_offset = off_sym;
    sh[kSecSymtab].sh_size = 2 * sizeof(Elf64_Sym);
    sh[kSecSymtab].sh_link = kSecStrtab;
    sh[kSecSymtab].sh_info = 1;  // first non-local symbol
    sh[kSecSymtab].sh_addralign = 8;
    sh[kSecSymtab].sh_entsize = sizeof(Elf64_Sym);
    sh[kSecStrtab].sh_name = kNameStrtab;
    sh[kSecStrtab].sh_type = SHT_STRTAB;
    sh[kSecStrtab].sh_offset = off_str;
    sh[kSecStrtab].sh_size = strtab_size;
    sh[kSecStrtab].sh_addralign = 1;
    sh[kSecShstrtab].sh_name = kNameShstrtab;
    sh[kSecShstrtab].sh_type = SHT_STRTAB;
    sh[kSecShstrtab].sh_offset = off_shstr;
    sh[kSecShstrtab].sh_size = sizeof shstr;
    sh[kSecShstrtab].sh_addralign = 1;

    auto *sym = reinterpret_cast<Elf64_Sym *>(elf + off_sym);
    sym[1].st_name = 1;
    sym[1].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC);
    sym[1].st_shndx = kSecText;
    sym[1].st_value = 0;  // section-relative (ET_REL)
    sym[1].st_size = len;

    std::memcpy(elf + off_str + 1, name, name_len);
    std::memcpy(elf + off_shstr, shstr, sizeof shstr);

    entry->symfile_addr = reinterpret_cast<const char *>(elf);
    entry->symfile_size = size;
    return entry;
}

}  // namespace jitalloc
