// libjitalloc-inspect: parse jit_dump output, print it as tables, disassemble with
// Capstone. Only the public API of libjitalloc is used.
#include <jitalloc/inspect.h>

#include "arch/arch.h"

#include <capstone/capstone.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Alloc {
    uint64_t addr = 0;
    uint64_t usable = 0, requested = 0;
    std::string kind, name;
    std::vector<uint8_t> code;
};

struct Arena {
    std::string id, writer, flags, name, strict_wx, sync_core;
    std::vector<std::pair<std::string, std::string>> stats;
    std::vector<std::string> orders, classes, chunks, slabs;
    std::vector<Alloc> allocs;
};

struct Dump {
    long pid = 0;
    std::vector<Arena> arenas;
};

// "key value key value ... name rest of line" -> value of key (or "").
std::string field(const std::vector<std::string> &t, const char *key) {
    for (size_t i = 0; i + 1 < t.size(); i++)
        if (t[i] == key)
            return t[i + 1];
    return "";
}

std::vector<std::string> split(const std::string &line) {
    std::vector<std::string> t;
    std::istringstream in(line);
    for (std::string w; in >> w;)
        t.push_back(w);
    return t;
}

// The name is the rest of the line after " name " (it may contain spaces).
std::string rest_after_name(const std::string &line) {
    size_t at = line.find(" name ");
    return at == std::string::npos ? "-" : line.substr(at + 6);
}

uint64_t hex(const std::string &s) { return std::strtoull(s.c_str(), nullptr, 16); }
uint64_t dec(const std::string &s) { return std::strtoull(s.c_str(), nullptr, 10); }

// What is wrong with a dump, for the reader: where, and what was expected.
struct ParseError {
    std::string what;
    bool failed() const { return !what.empty(); }
};

// Records that carry a second field the printer reads (t[1]).
bool needs_operand(const std::string &k) {
    return k == "order" || k == "class" || k == "chunk" || k == "slab" || k == "alloc";
}

bool is_hex(const std::string &s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

// Parses one dump. On failure, err says what is wrong, with the line number.
bool parse(FILE *f, Dump &d, ParseError &err) {
    std::string line;
    bool header = false, ended = false;
    Arena *a = nullptr;
    unsigned lineno = 0;
    auto fail = [&](const std::string &why) {
        err.what = "line " + std::to_string(lineno) + ": " + why;
        return false;
    };
    for (int ch; (ch = std::fgetc(f)) != EOF || !line.empty();) {
        if (ch != '\n' && ch != EOF) {
            line += static_cast<char>(ch);
            continue;
        }
        lineno++;
        std::vector<std::string> t = split(line);
        if (t.empty()) {
            line.clear();
            if (ch == EOF)
                break;
            continue;
        }
        const std::string &k = t[0];
        if (!header && k != "jitalloc-dump")
            return fail("not a jitalloc dump: it must start with \"jitalloc-dump 1 pid P\" (written by "
                        "jit_dump / jit_dump_file), found \"" + line.substr(0, 40) + "\"");
        if (ended)
            return fail("\"" + k + "\" after the final \"end\" line");
        if (needs_operand(k) && t.size() < 2)
            return fail("\"" + k + "\" record without its value");
        if (k == "jitalloc-dump") {
            if (header)
                return fail("a second \"jitalloc-dump\" header (two dumps in one file?)");
            if (t.size() < 2 || t[1] != "1")
                return fail("dump format version " + (t.size() < 2 ? std::string("missing") : t[1]) +
                            ", this reader knows version 1");
            header = true;
            d.pid = static_cast<long>(dec(field(t, "pid")));
        } else if (k == "arena") {
            d.arenas.emplace_back();
            a = &d.arenas.back();
            a->id = t.size() > 1 ? t[1] : "?";
            a->writer = field(t, "writer");
            a->flags = field(t, "flags");
            a->strict_wx = field(t, "strict_wx");
            a->sync_core = field(t, "sync_core");
            a->name = rest_after_name(line);
        } else if (k == "end") {
            ended = true;
        } else if (!a) {
            return fail("\"" + k + "\" before the first \"arena\" line");
        } else if (k == "stats") {
            for (size_t i = 1; i + 1 < t.size(); i += 2)
                a->stats.emplace_back(t[i], t[i + 1]);
        } else if (k == "order") {
            a->orders.push_back(line);
        } else if (k == "class") {
            a->classes.push_back(line);
        } else if (k == "chunk") {
            a->chunks.push_back(line);
        } else if (k == "slab") {
            a->slabs.push_back(line);
        } else if (k == "alloc") {
            if (!is_hex(t[1]))
                return fail("allocation address \"" + t[1] + "\" is not hex");
            Alloc al;
            al.addr = hex(t[1]);
            al.usable = dec(field(t, "usable"));
            al.requested = dec(field(t, "requested"));
            al.kind = field(t, "kind");
            al.name = rest_after_name(line);
            a->allocs.push_back(std::move(al));
        } else if (k == "code") {
            if (t.size() < 3)
                return fail("\"code\" record without an address and hex bytes");
            if (a->allocs.empty() || hex(t[1]) != a->allocs.back().addr)
                return fail("code bytes for " + t[1] + " do not follow the \"alloc " + t[1] + "\" line");
            const std::string &h = t[2];
            if (!is_hex(h) || h.size() % 2 != 0)
                return fail("code bytes for " + t[1] + " are not an even number of hex digits");
            std::vector<uint8_t> &code = a->allocs.back().code;
            code.reserve(h.size() / 2);
            for (size_t i = 0; i + 1 < h.size(); i += 2)
                code.push_back(static_cast<uint8_t>(std::strtoul(h.substr(i, 2).c_str(), nullptr, 16)));
        } else if (k != "end-arena") {
            return fail("unknown record \"" + k + "\"");
        }
        line.clear();
        if (ch == EOF)
            break;
    }
    if (!header) {
        err.what = "empty file: not a jitalloc dump";
        return false;
    }
    if (!ended) {
        err.what = "truncated after line " + std::to_string(lineno) +
                   ": no final \"end\" line (the writing process stopped mid-dump?)";
        return false;
    }
    return true;
}

void print_arena(FILE *out, const Arena &a) {
    std::fprintf(out, "arena %s  (id %s)\n  writer %s, flags %s, strict W^X %s, sync_core %s\n",
                 a.name.c_str(), a.id.c_str(), a.writer.c_str(), a.flags.c_str(),
                 a.strict_wx == "1" ? "yes" : "no", a.sync_core == "1" ? "yes" : "no");
    std::fprintf(out, "  stats:\n");
    for (const auto &[k, v] : a.stats)
        std::fprintf(out, "    %-18s %s\n", k.c_str(), v.c_str());
    std::fprintf(out, "  buddy orders (4 KiB << order):   order       free     cached   released\n");
    for (const std::string &l : a.orders) {
        auto t = split(l);
        std::fprintf(out, "  %32s %6s %10s %10s %10s\n", "", t[1].c_str(), field(t, "free").c_str(),
                     field(t, "cached").c_str(), field(t, "released").c_str());
    }
    if (!a.classes.empty()) {
        std::fprintf(out, "  size classes in use:  object  pages  per_slab  slabs  in_use   free\n");
        for (const std::string &l : a.classes) {
            auto t = split(l);
            std::fprintf(out, "  %20s %7s %6s %9s %6s %7s %6s\n", "", t[1].c_str(), field(t, "pages").c_str(),
                         field(t, "per_slab").c_str(), field(t, "slabs").c_str(), field(t, "in_use").c_str(),
                         field(t, "free").c_str());
        }
    }
    std::fprintf(out, "  chunks (%zu):\n", a.chunks.size());
    for (const std::string &l : a.chunks) {
        auto t = split(l);
        std::fprintf(out, "    0x%s  %8s bytes  %-5s  free pages %s\n", t[1].c_str(), field(t, "size").c_str(),
                     field(t, "kind").c_str(), field(t, "free_pages").c_str());
    }
    std::fprintf(out, "  slabs (%zu):\n", a.slabs.size());
    for (const std::string &l : a.slabs) {
        auto t = split(l);
        std::fprintf(out, "    0x%s  object %5s  objects %4s  live %4s  avail %4s  (chunk 0x%s)\n", t[1].c_str(),
                     field(t, "object_size").c_str(), field(t, "objects").c_str(), field(t, "live").c_str(),
                     field(t, "avail").c_str(), field(t, "chunk").c_str());
    }
    std::fprintf(out, "  allocations (%zu):\n", a.allocs.size());
    for (const Alloc &al : a.allocs)
        std::fprintf(out, "    0x%" PRIx64 "  usable %7" PRIu64 "  requested %7" PRIu64 "  %-5s  %s\n", al.addr,
                     al.usable, al.requested, al.kind.c_str(), al.name.c_str());
}

bool selected(const Alloc &al, const char *spec) {
    if (!spec)
        return false;
    if (std::strcmp(spec, "all") == 0)
        return true;
    if (al.name == spec)
        return true;
    char *end = nullptr;
    const char *s = spec[0] == '0' && (spec[1] == 'x' || spec[1] == 'X') ? spec + 2 : spec;
    unsigned long long v = std::strtoull(s, &end, 16);
    return end && *end == '\0' && end != s && v == al.addr;
}

}  // namespace

extern "C" int jit_inspect_disasm(FILE *out, const void *code, size_t len, uint64_t addr) {
    csh h;
#if defined(__x86_64__)
    cs_err e = cs_open(CS_ARCH_X86, CS_MODE_64, &h);
#elif defined(__aarch64__)
    cs_err e = cs_open(CS_ARCH_ARM64, CS_MODE_ARM, &h);
#endif
    if (e != CS_ERR_OK) {
        errno = ENOSYS;
        return -1;
    }
    cs_insn *insn = nullptr;
    size_t n = cs_disasm(h, static_cast<const uint8_t *>(code), len, addr, 0, &insn);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        char bytes[3 * 16 + 1] = "";
        for (size_t b = 0; b < insn[i].size && b < 10; b++)
            std::snprintf(bytes + 3 * b, 4, "%02x ", insn[i].bytes[b]);
        std::fprintf(out, "  %" PRIx64 ":  %-30s %s %s\n", insn[i].address, bytes, insn[i].mnemonic, insn[i].op_str);
        done += insn[i].size;
    }
    if (done < len)
        std::fprintf(out, "  %" PRIx64 ":  (%zu bytes not decoded)\n", addr + done, len - done);
    if (insn)
        cs_free(insn, n);
    cs_close(&h);
    return static_cast<int>(n);
}

extern "C" int jit_inspect_disasm_alloc(FILE *out, const void *p) {
    size_t n = jit_size(p);
    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    const auto *b = static_cast<const uint8_t *>(p);
    // The trap fill after the code (by address phase: arm64's brk is 4 bytes).
    while (n > 0 && b[n - 1] == jitalloc::arch::trap_byte_at(reinterpret_cast<uintptr_t>(b + n - 1)))
        n--;
    return jit_inspect_disasm(out, p, n ? n : 1, reinterpret_cast<uintptr_t>(p));
}

namespace {

// Copies why into msg (when given) and fails with err.
int fail_with(int err, const std::string &why, char *msg, size_t msg_len) {
    if (msg && msg_len)
        std::snprintf(msg, msg_len, "%s", why.c_str());
    errno = err;
    return -1;
}

}  // namespace

extern "C" int jit_inspect_print_msg(FILE *out, FILE *dump, const char *disasm, char *msg, size_t msg_len) {
    Dump d;
    ParseError err;
    if (!out || !dump)
        return fail_with(EINVAL, "no output or no dump stream", msg, msg_len);
    if (!parse(dump, d, err))
        return fail_with(EINVAL, err.what, msg, msg_len);
    std::fprintf(out, "jitalloc dump of process %ld: %zu arena(s)\n\n", d.pid, d.arenas.size());
    bool matched = false;
    size_t allocs = 0, named = 0;
    for (const Arena &a : d.arenas) {
        print_arena(out, a);
        for (const Alloc &al : a.allocs) {
            allocs++;
            named += al.name != "-";
            if (!selected(al, disasm))
                continue;
            matched = true;
            std::fprintf(out, "\n  disassembly of %s at 0x%" PRIx64 " (%" PRIu64 " bytes):\n", al.name.c_str(),
                         al.addr, al.requested);
            if (al.code.empty())
                std::fprintf(out, "  (no code bytes in the dump: write it with JIT_DUMP_CODE)\n");
            else if (jit_inspect_disasm(out, al.code.data(), al.code.size(), al.addr) < 0)
                return fail_with(errno, "Capstone could not be opened", msg, msg_len);
        }
        std::fputc('\n', out);
    }
    if (disasm && !matched)
        return fail_with(ENOENT,
                         std::string("no allocation named or starting at \"") + disasm + "\" (the dump has " +
                             std::to_string(allocs) + " allocation(s), " + std::to_string(named) +
                             " of them named; names come from jit_arena_alloc_named with "
                             "JIT_ARENA_PERF_MAP or JIT_ARENA_GDB_JIT)",
                         msg, msg_len);
    return 0;
}

extern "C" int jit_inspect_print(FILE *out, FILE *dump, const char *disasm) {
    return jit_inspect_print_msg(out, dump, disasm, nullptr, 0);
}

extern "C" int jit_inspect_self(FILE *out, const char *disasm) {
    FILE *tmp = std::tmpfile();
    if (!tmp)
        return -1;
    int rc = jit_dump(tmp, JIT_DUMP_CODE);
    if (rc == 0) {
        std::rewind(tmp);
        rc = jit_inspect_print(out, tmp, disasm);
    }
    int err = errno;
    std::fclose(tmp);
    errno = err;
    return rc;
}
