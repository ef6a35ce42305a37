// Allocation observers: perf map files and the GDB JIT interface.
//
// One table (address -> record) holds every live allocation of an observed arena,
// guarded by g_lock. observe_alloc is called outside the arena's locks; observe_free
// holds g_lock around the arena's commit of the free (which takes arena locks), and
// nothing else here calls back into the allocator, so g_lock comes first whenever it
// nests with arena locks (the inspector takes it only after dropping them).
//
// perf map (/tmp/perf-PID.map, "START SIZE name" per line, hex): perf reads the file
// when `perf report` / `perf script` runs, with no notion of time, so the file should
// describe the code that was sampled. Two modes:
//  - default: the file lists the live allocations. A new allocation is appended (one
//    write(2) with O_APPEND); a free rewrites the file from the table into a new
//    perf-PID.map.XXXXXX (created exclusively, mode 0644) and renames it over the map
//    (O(live) per free), so perf never sees a half-written file, a reused address never
//    carries a stale name, and nothing planted in /tmp is followed.
//  - JITALLOC_PERF_MAP=keep: append-only; freed entries stay, which keeps names for
//    code that was freed before `perf report` ran. When an address is reused, the map
//    then has two entries at one start address and perf keeps only one of them.
// This file does its own open/write/rename: it is not part of the allocator's memory
// path (os.h's seam covers code memory and its bookkeeping).
//
// GDB: each allocation gets a small in-memory ELF64 relocatable object whose .text
// section is SHT_NOBITS at the code's address, with one global STT_FUNC symbol named
// after the allocation; it is linked into __jit_debug_descriptor's list and announced
// through __jit_debug_register_code(), where GDB keeps a breakpoint.
#include "observe/observe.h"

#include "arena/arena.h"

#include <jitalloc/gdb_jit.h>
#include <jitalloc/jitalloc.h>

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

// ---------------------------------------------------------------- GDB's symbols

extern "C" {
__attribute__((visibility("default"))) struct jit_descriptor __jit_debug_descriptor = {
    1, JIT_NOACTION, nullptr, nullptr};

__attribute__((visibility("default"), noinline, used)) void __jit_debug_register_code(void) {
    // GDB sets a breakpoint here; the asm keeps the call from being optimised away.
    __asm__ volatile("" ::: "memory");
}
}

namespace jitalloc {
namespace {

struct Record {
    jit_arena *arena = nullptr;
    size_t len = 0;
    std::string name;
    bool perf = false;
    jit_code_entry *gdb = nullptr;  // with its ELF image right behind it
};

std::mutex g_lock;
std::map<uintptr_t, Record> g_records;  // guarded by g_lock

// perf map state, guarded by g_lock.
int g_perf_fd = -1;
pid_t g_perf_pid = 0;
bool g_perf_keep = false;

bool env_on(const char *var) {
    const char *v = std::getenv(var);
    return v && *v && std::strcmp(v, "0") != 0;
}

std::string perf_path(pid_t pid) { return "/tmp/perf-" + std::to_string(pid) + ".map"; }

void append_line(std::string &out, uintptr_t addr, const Record &r) {
    char head[64];
    std::snprintf(head, sizeof head, "%lx %zx ", static_cast<unsigned long>(addr), r.len);
    out += head;
    out += r.name;
    out += '\n';
}

bool write_all(int fd, const std::string &s) {
    size_t done = 0;
    while (done < s.size()) {
        ssize_t w = ::write(fd, s.data() + done, s.size() - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        done += static_cast<size_t>(w);
    }
    return true;
}

// Writes every perf record to a fresh file and renames it over the map; the new file
// becomes the one appended to. g_lock held.
void perf_rewrite() {
    pid_t pid = getpid();
    std::string path = perf_path(pid);
    // /tmp is shared: the temporary file gets a fresh name and is created exclusively
    // (O_EXCL: a name planted there, symlink or not, is never opened), and rename()
    // replaces whatever sits at the map's own path without following it.
    std::string tmp = path + ".XXXXXX";
    int fd = ::mkostemp(tmp.data(), O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)::fchmod(fd, 0644);  // mkostemp makes it 0600; perf may run as another user
    std::string text;
    for (const auto &[addr, r] : g_records)
        if (r.perf)
            append_line(text, addr, r);
    if (!write_all(fd, text) || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return;
    }
    if (g_perf_fd >= 0)
        ::close(g_perf_fd);
    g_perf_fd = fd;
    g_perf_pid = pid;
}

// Appends one record; the first use in a process (or in a forked child) starts the
// file afresh from the table. g_lock held.
void perf_add(uintptr_t addr, const Record &r) {
    if (g_perf_fd < 0 || g_perf_pid != getpid()) {
        g_perf_keep = [] {
            const char *v = std::getenv("JITALLOC_PERF_MAP");
            return v && std::strcmp(v, "keep") == 0;
        }();
        perf_rewrite();  // includes r: it is already in the table
        return;
    }
    std::string line;
    append_line(line, addr, r);
    (void)write_all(g_perf_fd, line);
}

// ---------------------------------------------------------------- ELF symbol file

#if defined(__x86_64__)
constexpr uint16_t kElfMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kElfMachine = EM_AARCH64;
#else
#error "unsupported architecture"
#endif

enum : uint16_t { kSecNull, kSecText, kSecSymtab, kSecStrtab, kSecShstrtab, kNumSec };

// The image: Ehdr | section headers | symtab | strtab | shstrtab, in one block after the
// jit_code_entry that points at it. nullptr if out of memory.
jit_code_entry *make_entry(uintptr_t addr, size_t len, const std::string &name) {
    static const char shstr[] = "\0.text\0.symtab\0.strtab\0.shstrtab";
    constexpr uint32_t kNameText = 1, kNameSymtab = 7, kNameStrtab = 15, kNameShstrtab = 23;
    const size_t strtab_size = 1 + name.size() + 1;

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
    eh->e_machine = kElfMachine;
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

    std::memcpy(elf + off_str + 1, name.data(), name.size());
    std::memcpy(elf + off_shstr, shstr, sizeof shstr);

    entry->symfile_addr = reinterpret_cast<const char *>(elf);
    entry->symfile_size = size;
    return entry;
}

// g_lock held for both.
void gdb_register(jit_code_entry *e) {
    e->prev_entry = nullptr;
    e->next_entry = __jit_debug_descriptor.first_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e;
    __jit_debug_descriptor.first_entry = e;
    __jit_debug_descriptor.relevant_entry = e;
    __jit_debug_descriptor.action_flag = JIT_REGISTER_FN;
    __jit_debug_register_code();
}

void gdb_unregister(jit_code_entry *e) {
    if (e->prev_entry)
        e->prev_entry->next_entry = e->next_entry;
    else
        __jit_debug_descriptor.first_entry = e->next_entry;
    if (e->next_entry)
        e->next_entry->prev_entry = e->prev_entry;
    __jit_debug_descriptor.relevant_entry = e;
    __jit_debug_descriptor.action_flag = JIT_UNREGISTER_FN;
    __jit_debug_register_code();
    __jit_debug_descriptor.relevant_entry = nullptr;
    __jit_debug_descriptor.action_flag = JIT_NOACTION;
    std::free(e);
}

// Drops one record; true if the perf map needs a rewrite. g_lock held.
bool drop_locked(std::map<uintptr_t, Record>::iterator it) {
    bool perf = it->second.perf;
    if (it->second.gdb)
        gdb_unregister(it->second.gdb);
    g_records.erase(it);
    return perf && !g_perf_keep;
}

}  // namespace

unsigned observe_env_flags() {
    unsigned f = 0;
    if (env_on("JITALLOC_PERF_MAP"))
        f |= JIT_ARENA_PERF_MAP;
    if (env_on("JITALLOC_GDB_JIT"))
        f |= JIT_ARENA_GDB_JIT;
    return f;
}

void observe_alloc(jit_arena *a, const void *code, size_t len, const char *name) {
    const unsigned flags = a->opts.flags;
    const auto addr = reinterpret_cast<uintptr_t>(code);
    Record r;
    r.arena = a;
    r.len = len;
    if (name && *name) {
        // One line per entry in the perf map: no newlines in names.
        r.name = name;
        for (char &ch : r.name)
            if (ch == '\n' || ch == '\r')
                ch = ' ';
    } else {
        char buf[32];
        std::snprintf(buf, sizeof buf, "jit_%lx", static_cast<unsigned long>(addr));
        r.name = buf;
    }
    r.perf = flags & JIT_ARENA_PERF_MAP;
    jit_code_entry *e = (flags & JIT_ARENA_GDB_JIT) ? make_entry(addr, len, r.name) : nullptr;

    std::lock_guard<std::mutex> g(g_lock);
    auto [it, fresh] = g_records.insert_or_assign(addr, std::move(r));
    (void)fresh;
    if (it->second.perf)
        perf_add(addr, it->second);
    if (e) {
        it->second.gdb = e;
        gdb_register(e);
    }
}

int observe_free(jit_arena *, const void *code, const FreeCommit &commit) {
    std::lock_guard<std::mutex> g(g_lock);
    if (int rc = commit())
        return rc;
    auto it = g_records.find(reinterpret_cast<uintptr_t>(code));
    if (it != g_records.end() && drop_locked(it))
        perf_rewrite();
    return 0;
}

void observe_arena_destroyed(jit_arena *a) {
    std::lock_guard<std::mutex> g(g_lock);
    bool rewrite = false;
    for (auto it = g_records.begin(); it != g_records.end();) {
        auto next = std::next(it);
        if (it->second.arena == a)
            rewrite |= drop_locked(it);
        it = next;
    }
    if (rewrite)
        perf_rewrite();
}

bool observe_name(const void *code, char *buf, size_t buf_len) {
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_records.find(reinterpret_cast<uintptr_t>(code));
    if (it == g_records.end() || buf_len == 0)
        return false;
    std::snprintf(buf, buf_len, "%s", it->second.name.c_str());
    return true;
}

}  // namespace jitalloc
