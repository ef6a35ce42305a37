// Profiler and debugger support: perf map contents, the GDB JIT descriptor list, and a
// real gdb breaking on a JIT function by name.
#include "gdb_batch.h"
#include "gdb_jit_list.h"

#include <jitalloc/jitalloc.h>

#include <gtest/gtest.h>

#include <elf.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

const unsigned char kRet42[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};

jit_arena *make_arena(unsigned flags) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = flags | JIT_ARENA_IGNORE_ENV;
    return jit_arena_create(&o);
}

std::string perf_map() {
    std::ifstream in("/tmp/perf-" + std::to_string(getpid()) + ".map");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string line_for(const void *p, size_t len, const char *name) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%lx %zx %s\n", (unsigned long)(uintptr_t)p, len, name);
    return buf;
}

// The symbol name and .text address/size of a GDB symfile built by jitalloc.
struct Sym {
    std::string name;
    uint64_t addr = 0, size = 0;
};
Sym read_symfile(const jit_code_entry *e) {
    Sym s;
    const char *base = e->symfile_addr;
    auto *eh = reinterpret_cast<const Elf64_Ehdr *>(base);
    EXPECT_EQ(0, std::memcmp(eh->e_ident, ELFMAG, SELFMAG));
    EXPECT_EQ(ET_REL, eh->e_type);
    auto *sh = reinterpret_cast<const Elf64_Shdr *>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB)
            continue;
        auto *sym = reinterpret_cast<const Elf64_Sym *>(base + sh[i].sh_offset);
        const char *str = base + sh[sh[i].sh_link].sh_offset;
        const Elf64_Shdr &text = sh[sym[1].st_shndx];
        s.name = str + sym[1].st_name;
        s.addr = text.sh_addr + sym[1].st_value;
        s.size = sym[1].st_size;
        EXPECT_EQ(STT_FUNC, ELF64_ST_TYPE(sym[1].st_info));
        EXPECT_EQ(uint32_t{SHF_ALLOC | SHF_EXECINSTR}, text.sh_flags);
    }
    return s;
}

// jitalloc's descriptor, from libjitalloc's own symbol table (as GDB finds it).
const jit_descriptor &descriptor() {
    static const jit_descriptor *d =
        gdbjit_test::descriptor_of_object(reinterpret_cast<void *>(&jit_alloc));
    return *d;
}

const jit_code_entry *find_entry(const void *p) {
    for (const jit_code_entry *e = descriptor().first_entry; e; e = e->next_entry)
        if (read_symfile(e).addr == reinterpret_cast<uintptr_t>(p))
            return e;
    return nullptr;
}

}  // namespace

TEST(PerfMap, EntriesAppearAndDisappear) {
    jit_arena *a = make_arena(JIT_ARENA_PERF_MAP);
    ASSERT_NE(nullptr, a);
    void *f = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "perf_fn_a");
    void *g = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "perf fn b");  // spaces are kept
    void *h = jit_arena_alloc(a, kRet42, sizeof kRet42);                     // unnamed
    ASSERT_TRUE(f && g && h);
    std::string map = perf_map();
    EXPECT_NE(std::string::npos, map.find(line_for(f, sizeof kRet42, "perf_fn_a"))) << map;
    EXPECT_NE(std::string::npos, map.find(line_for(g, sizeof kRet42, "perf fn b"))) << map;
    char unnamed[32];
    std::snprintf(unnamed, sizeof unnamed, "jit_%lx", (unsigned long)(uintptr_t)h);
    EXPECT_NE(std::string::npos, map.find(line_for(h, sizeof kRet42, unnamed))) << map;

    ASSERT_EQ(0, jit_free(f));
    map = perf_map();
    EXPECT_EQ(std::string::npos, map.find("perf_fn_a")) << map;
    EXPECT_NE(std::string::npos, map.find("perf fn b")) << map;
    EXPECT_NE(0, access(("/tmp/perf-" + std::to_string(getpid()) + ".map.tmp").c_str(), F_OK));

    // The freed address is reused under a new name: only the new name is listed.
    void *f2 = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "perf_fn_c");
    ASSERT_NE(nullptr, f2);
    map = perf_map();
    EXPECT_NE(std::string::npos, map.find(line_for(f2, sizeof kRet42, "perf_fn_c"))) << map;

    // Destroying the arena drops all of its entries.
    ASSERT_EQ(0, jit_arena_destroy(a));
    map = perf_map();
    EXPECT_EQ(std::string::npos, map.find("perf fn b")) << map;
    EXPECT_EQ(std::string::npos, map.find("perf_fn_c")) << map;
}

// A reservation (no code yet) is announced when its code is written, not before: perf
// must not name traps, and GDB must not put breakpoints into bytes about to change.
TEST(Observers, ReservationIsAnnouncedAtItsFirstWrite) {
    jit_arena *a = make_arena(JIT_ARENA_PERF_MAP | JIT_ARENA_GDB_JIT);
    ASSERT_NE(nullptr, a);
    void *f = jit_arena_alloc_named(a, nullptr, sizeof kRet42, "reserved_fn");
    ASSERT_NE(nullptr, f);
    EXPECT_EQ(std::string::npos, perf_map().find("reserved_fn")) << perf_map();
    EXPECT_EQ(nullptr, find_entry(f));
    ASSERT_EQ(0, jit_update(f, kRet42, sizeof kRet42));
    EXPECT_NE(std::string::npos, perf_map().find(line_for(f, sizeof kRet42, "reserved_fn"))) << perf_map();
    const jit_code_entry *e = find_entry(f);
    ASSERT_NE(nullptr, e);
    EXPECT_EQ("reserved_fn", read_symfile(e).name);
    // A later update re-announces it once: one entry in each, not two.
    ASSERT_EQ(0, jit_update(f, kRet42, sizeof kRet42));
    std::string map = perf_map();
    EXPECT_EQ(map.find("reserved_fn"), map.rfind("reserved_fn")) << map;
    size_t entries = 0;
    for (const jit_code_entry *i = descriptor().first_entry; i; i = i->next_entry)
        entries += read_symfile(i).addr == reinterpret_cast<uintptr_t>(f);
    EXPECT_EQ(1u, entries);
    EXPECT_EQ(42, reinterpret_cast<int (*)()>(f)());
    ASSERT_EQ(0, jit_free(f));
    EXPECT_EQ(std::string::npos, perf_map().find("reserved_fn"));
    EXPECT_EQ(nullptr, find_entry(f));
    ASSERT_EQ(0, jit_arena_destroy(a));
}

// The same through a batch: a reservation made in a batch, or before it, is announced
// when a commit writes its code.
TEST(Observers, BatchAnnouncesCodeItWrites) {
    jit_arena *a = make_arena(JIT_ARENA_PERF_MAP | JIT_ARENA_GDB_JIT);
    ASSERT_NE(nullptr, a);
    void *f = jit_arena_alloc_named(a, nullptr, sizeof kRet42, "batch_reserved_fn");
    ASSERT_NE(nullptr, f);
    jit_batch *b = jit_batch_create(a);
    ASSERT_NE(nullptr, b);
    void *g = jit_batch_alloc(b, nullptr, sizeof kRet42, "batch_empty_fn");
    void *h = jit_batch_alloc(b, nullptr, sizeof kRet42, "batch_own_fn");
    ASSERT_TRUE(g && h);
    ASSERT_EQ(0, jit_batch_update(b, h, kRet42, sizeof kRet42));
    ASSERT_EQ(0, jit_batch_update(b, f, kRet42, sizeof kRet42));
    EXPECT_EQ(nullptr, find_entry(f));
    ASSERT_EQ(0, jit_batch_commit(b));
    std::string map = perf_map();
    EXPECT_NE(std::string::npos, map.find(line_for(f, sizeof kRet42, "batch_reserved_fn"))) << map;
    EXPECT_NE(std::string::npos, map.find(line_for(h, sizeof kRet42, "batch_own_fn"))) << map;
    EXPECT_EQ(std::string::npos, map.find("batch_empty_fn")) << map;  // still only traps
    ASSERT_NE(nullptr, find_entry(f));
    EXPECT_EQ("batch_reserved_fn", read_symfile(find_entry(f)).name);
    ASSERT_NE(nullptr, find_entry(h));
    EXPECT_EQ(nullptr, find_entry(g));
    EXPECT_EQ(42, reinterpret_cast<int (*)()>(f)());
    EXPECT_EQ(42, reinterpret_cast<int (*)()>(h)());
    // A live update of announced code in a later batch leaves one entry, not two.
    ASSERT_EQ(0, jit_batch_update(b, f, kRet42, sizeof kRet42));
    ASSERT_EQ(0, jit_batch_commit(b));
    size_t entries = 0;
    for (const jit_code_entry *i = descriptor().first_entry; i; i = i->next_entry)
        entries += read_symfile(i).addr == reinterpret_cast<uintptr_t>(f);
    EXPECT_EQ(1u, entries);
    jit_batch_destroy(b);
    ASSERT_EQ(0, jit_arena_destroy(a));
}

// jit_shrink_alloc: the observers hear of the new length (GDB's symbol, the perf map).
TEST(Observers, ShrinkTellsTheNewLength) {
    jit_arena *a = make_arena(JIT_ARENA_PERF_MAP | JIT_ARENA_GDB_JIT);
    ASSERT_NE(nullptr, a);
    unsigned char code[64];
    std::memset(code, 0x90, sizeof code);  // nops, then the function
    std::memcpy(code, kRet42, sizeof kRet42);
    void *f = jit_arena_alloc_named(a, code, sizeof code, "shrunk_fn");
    ASSERT_NE(nullptr, f);
    ASSERT_NE(nullptr, find_entry(f));
    EXPECT_EQ(sizeof code, read_symfile(find_entry(f)).size);
    ASSERT_EQ(0, jit_shrink_alloc(f, sizeof kRet42));
    const jit_code_entry *e = find_entry(f);
    ASSERT_NE(nullptr, e);
    EXPECT_EQ(sizeof kRet42, read_symfile(e).size);
    std::string map = perf_map();
    EXPECT_NE(std::string::npos, map.find(line_for(f, sizeof kRet42, "shrunk_fn"))) << map;
    EXPECT_EQ(map.find("shrunk_fn"), map.rfind("shrunk_fn")) << map;
    EXPECT_EQ(42, reinterpret_cast<int (*)()>(f)());
    ASSERT_EQ(0, jit_arena_destroy(a));
}

// The jitdump (JIT_ARENA_JITDUMP): a header, then a code-load record with the bytes each
// time code is written — a reservation only once written, an update again with the new
// bytes and a fresh code index. (perf_jitdump runs the real perf tools on it.)
namespace {
struct DumpLoad {
    uint64_t addr = 0, size = 0, index = 0;
    std::string name, code;
};
std::vector<DumpLoad> read_jitdump(const std::string &path, uint32_t *magic) {
    std::ifstream in(path, std::ios::binary);
    std::string f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<DumpLoad> loads;
    if (f.size() < 40)
        return loads;
    std::memcpy(magic, f.data(), 4);
    uint32_t header_size;
    std::memcpy(&header_size, f.data() + 8, 4);
    for (size_t at = header_size; at + 16 <= f.size();) {
        uint32_t id, total;
        std::memcpy(&id, f.data() + at, 4);
        std::memcpy(&total, f.data() + at + 4, 4);
        if (total < 16 || at + total > f.size())
            break;
        if (id == 0) {  // JIT_CODE_LOAD
            DumpLoad l;
            std::memcpy(&l.addr, f.data() + at + 32, 8);
            std::memcpy(&l.size, f.data() + at + 40, 8);
            std::memcpy(&l.index, f.data() + at + 48, 8);
            l.name = std::string(f.data() + at + 56);
            l.code = f.substr(at + 56 + l.name.size() + 1, l.size);
            loads.push_back(l);
        }
        at += total;
    }
    return loads;
}
}  // namespace

TEST(Jitdump, LoadRecordsCarryTheCodeWhenWritten) {
    char dir[] = "/tmp/jitalloc-jitdump-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(dir));
    setenv("JITALLOC_JITDUMP_DIR", dir, 1);
    jit_arena *a = make_arena(JIT_ARENA_JITDUMP);
    ASSERT_NE(nullptr, a);
    void *f = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "dump_fn");
    void *r = jit_arena_alloc_named(a, nullptr, sizeof kRet42, "dump_reserved");
    ASSERT_TRUE(f && r);
    const std::string path = std::string(dir) + "/jit-" + std::to_string(getpid()) + ".dump";
    uint32_t magic = 0;
    std::vector<DumpLoad> loads = read_jitdump(path, &magic);
    EXPECT_EQ(0x4A695444u, magic);
    ASSERT_EQ(1u, loads.size());
    EXPECT_EQ("dump_fn", loads[0].name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f), loads[0].addr);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(kRet42), sizeof kRet42), loads[0].code);
    // The marker perf record sees: the dump mapped executable, never writable.
    std::ifstream maps("/proc/self/maps");
    std::string line, marker;
    while (std::getline(maps, line))
        if (line.find(path) != std::string::npos)
            marker = line;
    EXPECT_NE(std::string::npos, marker.find(" r-xp ")) << marker;

    const unsigned char ret43[] = {0xb8, 0x2b, 0x00, 0x00, 0x00, 0xc3};
    ASSERT_EQ(0, jit_update(r, kRet42, sizeof kRet42));
    ASSERT_EQ(0, jit_update(f, ret43, sizeof ret43));
    loads = read_jitdump(path, &magic);
    ASSERT_EQ(3u, loads.size());
    EXPECT_EQ("dump_reserved", loads[1].name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r), loads[1].addr);
    EXPECT_EQ("dump_fn", loads[2].name);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(ret43), sizeof ret43), loads[2].code);
    EXPECT_TRUE(loads[0].index != loads[1].index && loads[1].index != loads[2].index);
    ASSERT_EQ(0, jit_arena_destroy(a));
    unsetenv("JITALLOC_JITDUMP_DIR");
    std::remove(path.c_str());
    rmdir(dir);
}

TEST(PerfMap, UnobservedArenaWritesNothing) {
    jit_arena *a = make_arena(0);
    ASSERT_NE(nullptr, a);
    void *f = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "never_in_perf_map");
    ASSERT_NE(nullptr, f);
    EXPECT_EQ(std::string::npos, perf_map().find("never_in_perf_map"));
    jit_arena_destroy(a);
}

TEST(GdbJit, DescriptorListTracksAllocations) {
    ASSERT_NE(nullptr, gdbjit_test::descriptor_of_object(reinterpret_cast<void *>(&jit_alloc)));
    EXPECT_EQ(1u, descriptor().version);
    jit_arena *a = make_arena(JIT_ARENA_GDB_JIT);
    ASSERT_NE(nullptr, a);
    void *f = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "gdb_fn_one");
    ASSERT_NE(nullptr, f);
    // The newest entry is the relevant one and heads the list.
    EXPECT_EQ(uint32_t{JIT_REGISTER_FN}, descriptor().action_flag);
    const jit_code_entry *e = find_entry(f);
    ASSERT_NE(nullptr, e);
    EXPECT_EQ(e, descriptor().relevant_entry);
    EXPECT_EQ(e, descriptor().first_entry);
    EXPECT_EQ(nullptr, e->prev_entry);
    Sym s = read_symfile(e);
    EXPECT_EQ("gdb_fn_one", s.name);
    EXPECT_EQ(sizeof kRet42, s.size);
    EXPECT_EQ(42, reinterpret_cast<int (*)()>(f)());

    void *g = jit_arena_alloc_named(a, kRet42, sizeof kRet42, "gdb_fn_two");
    ASSERT_NE(nullptr, g);
    const jit_code_entry *e2 = find_entry(g);
    ASSERT_NE(nullptr, e2);
    EXPECT_EQ(e2, descriptor().first_entry);
    EXPECT_EQ(e, e2->next_entry);
    EXPECT_EQ(e2, e->prev_entry);

    ASSERT_EQ(0, jit_free(f));
    EXPECT_EQ(nullptr, find_entry(f));
    EXPECT_EQ(e2, find_entry(g));
    EXPECT_EQ(nullptr, e2->next_entry);
    ASSERT_EQ(0, jit_arena_destroy(a));
    EXPECT_EQ(nullptr, find_entry(g));
}

TEST(GdbJit, BatchGdbBreaksOnJitFunctionByName) {
    if (!gdbjit_test::have_gdb())
        GTEST_SKIP() << "gdb is not installed";
    std::string out = gdbjit_test::run_gdb(
        "-ex 'break jit_answer_fn' -ex run -ex 'info symbol $pc' -ex 'x/2i $pc' -ex continue",
        GDB_JIT_TARGET);
    if (gdbjit_test::ptrace_refused(out))
        GTEST_SKIP() << "ptrace is not permitted here:\n" << out;
    EXPECT_NE(std::string::npos, out.find("Breakpoint 1, ")) << out;
    EXPECT_NE(std::string::npos, out.find("in jit_answer_fn")) << out;
    EXPECT_NE(std::string::npos, out.find("in section .text of <in-memory@")) << out;
    EXPECT_NE(std::string::npos, out.find("jit_answer_fn returned 42")) << out;
    EXPECT_NE(std::string::npos, out.find("exited normally")) << out;
}

// Code named at reservation and written later, code rewritten, code freed: GDB must hear
// of each before the bytes change. Otherwise the breakpoint it inserted at the
// reservation is overwritten (never hits) and, at its next stop, GDB writes the byte it
// saved (a trap, or the old code) back over the new bytes.
namespace {

std::string gdb_on_target(const std::string &target_and_args, int continues) {
    std::string cmds = "-ex 'break jit_answer_fn' -ex 'break jit_checkpoint' -ex 'break asm_answer' -ex run";
    for (int i = 0; i < continues; i++)
        cmds += " -ex continue";
    return gdbjit_test::run_gdb(cmds, target_and_args);
}

size_t count(const std::string &s, const std::string &what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
        n++;
    return n;
}

#define SKIP_WITHOUT_GDB(out)                                                  \
    do {                                                                       \
        if (gdbjit_test::ptrace_refused(out))                                  \
            GTEST_SKIP() << "ptrace is not permitted here:\n" << (out);        \
    } while (0)

}  // namespace

// gdb_jit_target in a mode that reserves jit_answer_fn by name, stops, writes it, stops
// and calls it: the breakpoint hits once and the call returns 42.
#define EXPECT_RESERVED_THEN_WRITTEN_UNDER_GDB(mode)                                              \
    do {                                                                                          \
        if (!gdbjit_test::have_gdb())                                                             \
            GTEST_SKIP() << "gdb is not installed";                                               \
        std::string out = gdb_on_target(std::string(GDB_JIT_TARGET) + " " mode, 5);               \
        SKIP_WITHOUT_GDB(out);                                                                    \
        EXPECT_EQ(1u, count(out, "in jit_answer_fn ()")) << out;                                  \
        EXPECT_NE(std::string::npos, out.find("jit_answer_fn returned 42 (reserved, then written)")) \
            << out;                                                                               \
        EXPECT_NE(std::string::npos, out.find("exited normally")) << out;                         \
    } while (0)

TEST(GdbJit, BreaksOnFunctionReservedThenWritten) { EXPECT_RESERVED_THEN_WRITTEN_UNDER_GDB("reserve"); }

TEST(GdbJit, BreaksAgainAfterUpdate) {
    if (!gdbjit_test::have_gdb())
        GTEST_SKIP() << "gdb is not installed";
    std::string out = gdb_on_target(std::string(GDB_JIT_TARGET) + " update", 5);
    SKIP_WITHOUT_GDB(out);
    EXPECT_EQ(2u, count(out, "in jit_answer_fn ()")) << out;
    EXPECT_NE(std::string::npos, out.find("jit_answer_fn returned 42 (allocated with its code)")) << out;
    EXPECT_NE(std::string::npos, out.find("jit_answer_fn returned 43 (after the update)")) << out;
    EXPECT_NE(std::string::npos, out.find("exited normally")) << out;
}

TEST(GdbJit, FreedCodeStaysTrapsUnderGdb) {
    if (!gdbjit_test::have_gdb())
        GTEST_SKIP() << "gdb is not installed";
    std::string out = gdb_on_target(std::string(GDB_JIT_TARGET) + " free", 4);
    SKIP_WITHOUT_GDB(out);
    EXPECT_EQ(1u, count(out, "in jit_answer_fn ()")) << out;
    EXPECT_NE(std::string::npos, out.find("reserved again at the same address: 11 of 11 bytes are traps")) << out;
    EXPECT_NE(std::string::npos, out.find("exited normally")) << out;
}

TEST(GdbJit, BreaksOnFunctionReservedThenWrittenByABatch) {
    EXPECT_RESERVED_THEN_WRITTEN_UNDER_GDB("batch");
}

#ifdef GDB_JITRUNTIME_TARGET
TEST(GdbJit, BreaksOnJitRuntimeFunction) {
    if (!gdbjit_test::have_gdb())
        GTEST_SKIP() << "gdb is not installed";
    std::string out = gdb_on_target(GDB_JITRUNTIME_TARGET, 3);
    SKIP_WITHOUT_GDB(out);
    EXPECT_EQ(1u, count(out, "in asm_answer ()")) << out;
    EXPECT_NE(std::string::npos, out.find("asm_answer returned 42")) << out;
    EXPECT_NE(std::string::npos, out.find("exited normally")) << out;
}
#endif
