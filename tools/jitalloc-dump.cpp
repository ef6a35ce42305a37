// jitalloc-dump: print a jitalloc dump (arenas, stats, buddy orders, size classes,
// chunks, slabs, allocations) and disassemble allocations with Capstone.
//
//   jitalloc-dump [--disasm SPEC] DUMPFILE
//       DUMPFILE was written by jit_dump_file(path, JIT_DUMP_CODE) in the JIT process
//       ("-" reads standard input). SPEC: all, a hex address or an allocation name.
//   jitalloc-dump --self-demo [--disasm SPEC]
//       loads a few functions into an arena of this process, runs them, and inspects
//       its own process (default SPEC: all). Exits non-zero if the disassembly does not
//       show the demo's instructions.
#include <jitalloc/inspect.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

const char kUsage[] =
    "usage: jitalloc-dump [--disasm all|ADDRESS|NAME] DUMPFILE|-\n"
    "       jitalloc-dump --self-demo [--disasm all|ADDRESS|NAME]\n"
    "       jitalloc-dump --help\n"
    "Prints a jitalloc dump (written by jit_dump_file(path, JIT_DUMP_CODE) in the JIT\n"
    "process; - reads standard input): arenas, stats, buddy orders, size classes, chunks,\n"
    "slabs, allocations. --disasm disassembles all allocations, the one starting at a hex\n"
    "ADDRESS, or those named NAME. --self-demo inspects a demo arena of its own process.\n"
    "Exit status: 0 ok, 1 the dump is malformed or --disasm matched nothing, 2 bad usage.\n";

// Bad usage: what was wrong, then the usage, on stderr.
int usage_error(const char *why, const char *arg) {
    std::fprintf(stderr, "jitalloc-dump: %s%s%s\n%s", why, arg ? " " : "", arg ? arg : "", kUsage);
    return 2;
}

int self_demo(const char *spec) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.name = "dump-demo";
    o.flags = JIT_ARENA_GDB_JIT;  // records names (and makes them visible to gdb)
    jit_arena *a = jit_arena_create(&o);
    if (!a) {
        std::perror("jit_arena_create");
        return 1;
    }
    // int demo_add(int a, int b): lea eax, [rdi+rsi]; ret
    static const unsigned char add[] = {0x8d, 0x04, 0x37, 0xc3};
    // int64 demo_sum(const int64 *p, size_t n): a loop
    static const unsigned char sum[] = {0x31, 0xc0, 0x48, 0x85, 0xf6, 0x74, 0x0c, 0x48, 0x03, 0x07,
                                        0x48, 0x83, 0xc7, 0x08, 0x48, 0xff, 0xce, 0x75, 0xf4, 0xc3};
    // int demo_answer(void): mov eax, 42; ret
    static const unsigned char answer[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};
    void *f1 = jit_arena_alloc_named(a, add, sizeof add, "demo_add");
    void *f2 = jit_arena_alloc_named(a, sum, sizeof sum, "demo_sum");
    void *f3 = jit_arena_alloc_named(a, answer, sizeof answer, "demo_answer");
    if (!f1 || !f2 || !f3) {
        std::perror("jit_arena_alloc_named");
        return 1;
    }
    const long long v[] = {1, 2, 3, 4, 5};
    int ok = reinterpret_cast<int (*)(int, int)>(f1)(2, 3) == 5 &&
             reinterpret_cast<long long (*)(const long long *, size_t)>(f2)(v, 5) == 15 &&
             reinterpret_cast<int (*)()>(f3)() == 42;
    if (!ok)
        std::fprintf(stderr, "self-demo: the demo functions returned wrong results\n");

    char *text = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem || jit_inspect_self(mem, spec) != 0) {
        if (errno == ENOENT)
            std::fprintf(stderr, "jitalloc-dump: no allocation named or starting at \"%s\" in this process\n", spec);
        else
            std::perror("jit_inspect_self");
        return 1;
    }
    std::fclose(mem);
    std::fwrite(text, 1, len, stdout);
    std::string out(text, len);
    std::free(text);
    if (!spec || std::strcmp(spec, "all") == 0) {
        for (const char *want : {"arena dump-demo", "demo_add", "lea eax, [rdi + rsi]", "jne",
                                 "mov", "eax, 0x2a", "ret", "slabs (2)"})
            if (out.find(want) == std::string::npos) {
                std::fprintf(stderr, "self-demo: output lacks \"%s\"\n", want);
                ok = 0;
            }
    }
    jit_arena_destroy(a);
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
    const char *spec = nullptr, *path = nullptr;
    bool demo = false;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--disasm") == 0) {
            if (i + 1 == argc)
                return usage_error("--disasm needs all, an ADDRESS or a NAME", nullptr);
            spec = argv[++i];
        } else if (std::strcmp(argv[i], "--self-demo") == 0) {
            demo = true;
        } else if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return usage_error("more than one dump file:", argv[i]);
        }
    }
    if (demo)
        return self_demo(spec ? spec : "all");
    if (!path)
        return usage_error("no dump file given", nullptr);
    bool from_stdin = std::strcmp(path, "-") == 0;
    FILE *f = from_stdin ? stdin : std::fopen(path, "r");
    if (!f) {
        std::fprintf(stderr, "jitalloc-dump: cannot open dump file %s: %s\n", path, std::strerror(errno));
        return 1;
    }
    char why[512] = "";
    int rc = jit_inspect_print_msg(stdout, f, spec, why, sizeof why);
    if (rc != 0) {
        const char *what = from_stdin ? "standard input" : path;
        if (errno == EINVAL)
            std::fprintf(stderr, "jitalloc-dump: %s is not a valid jitalloc dump: %s\n", what, why);
        else
            std::fprintf(stderr, "jitalloc-dump: %s: %s\n", what, why);
    }
    if (!from_stdin)
        std::fclose(f);
    return rc == 0 ? 0 : 1;
}
