// Inspection: disassemble live allocations with libjitalloc-inspect (Capstone), write a
// dump file with jit_dump_file() and read it back with the jitalloc-dump command, as
// one would for a JIT process that is running elsewhere.
//
//   example_inspect PATH-TO-jitalloc-dump
// Exits non-zero if any step does not show what was loaded.
#include <jitalloc/inspect.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int g_failures = 0;

void expect(const std::string &text, const char *what, const char *step) {
    if (text.find(what) == std::string::npos) {
        std::fprintf(stderr, "%s: output lacks \"%s\"\n", step, what);
        g_failures++;
    }
}

// Runs cmd, returns its output and exit status.
std::string run(const std::string &cmd, int *status) {
    std::string out;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) {
        *status = -1;
        return out;
    }
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
        out.append(buf, n);
    *status = pclose(p);
    return out;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: example_inspect PATH-TO-jitalloc-dump\n");
        return 2;
    }
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.name = "inspect-example";
    o.flags = JIT_ARENA_GDB_JIT;  // keeps names, so the dump shows them
    jit_arena *a = jit_arena_create(&o);
    if (!a)
        return 1;
    // uint64 rotate_mix(uint64 x): mov rax, rdi; rol rax, 13; xor rax, rdi; ret
    static const unsigned char mix[] = {0x48, 0x89, 0xf8, 0x48, 0xc1, 0xc0, 0x0d, 0x48, 0x31, 0xf8, 0xc3};
    void *fn = jit_arena_alloc_named(a, mix, sizeof mix, "rotate_mix");
    // A page-run allocation (larger than the biggest slab class): 20000 bytes, nops + ret.
    std::string big(20000, '\x90');
    big.back() = '\xc3';
    void *large = jit_arena_alloc_named(a, big.data(), big.size(), "big_nop_sled");
    if (!fn || !large)
        return 1;
    auto f = reinterpret_cast<uint64_t (*)(uint64_t)>(fn);
    if (f(1) != ((uint64_t{1} << 13) ^ 1))
        g_failures++;
    reinterpret_cast<void (*)()>(large)();  // runs the sled

    // 1. The library function, on a live allocation of this process.
    char *text = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    int n = jit_inspect_disasm_alloc(mem, fn);
    std::fclose(mem);
    std::string live(text, len);
    std::free(text);
    std::printf("live disassembly of rotate_mix (%d instructions):\n%s", n, live.c_str());
    if (n != 4)
        g_failures++;
    for (const char *w : {"mov rax, rdi", "rol rax, 0xd", "xor rax, rdi", "ret"})
        expect(live, w, "jit_inspect_disasm_alloc");

    // 2. A dump file, read by the CLI.
    std::string path = "/tmp/jitalloc-example-" + std::to_string(getpid()) + ".dump";
    if (jit_dump_file(path.c_str(), JIT_DUMP_CODE) != 0) {
        std::perror("jit_dump_file");
        return 1;
    }
    int status = 0;
    std::string out = run(std::string(argv[1]) + " --disasm rotate_mix " + path, &status);
    std::printf("%s", out.c_str());
    if (status != 0)
        g_failures++;
    for (const char *w : {"arena inspect-example", "rotate_mix", "big_nop_sled", "pages", "chunks (1)",
                          "rol rax, 0xd", "size classes in use"})
        expect(out, w, "jitalloc-dump FILE");
    // Disassembly of a page-run allocation selected by address.
    char addr[32];
    std::snprintf(addr, sizeof addr, "%p", large);
    out = run(std::string(argv[1]) + " --disasm " + addr + " " + path, &status);
    expect(out, "disassembly of big_nop_sled", "jitalloc-dump --disasm ADDRESS");
    expect(out, "nop", "jitalloc-dump --disasm ADDRESS");
    // An unknown name is an error.
    run(std::string(argv[1]) + " --disasm no_such_function " + path + " 2>/dev/null", &status);
    if (status == 0) {
        std::fprintf(stderr, "jitalloc-dump accepted an unknown name\n");
        g_failures++;
    }
    std::remove(path.c_str());

    jit_free(fn);
    jit_free(large);
    jit_arena_destroy(a);
    if (g_failures)
        std::fprintf(stderr, "%d failure(s)\n", g_failures);
    return g_failures ? 1 : 0;
}
