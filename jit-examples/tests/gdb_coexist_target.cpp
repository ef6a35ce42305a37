// Several JIT runtimes with GDB's JIT interface in one process: jitalloc (an arena with
// JIT_ARENA_GDB_JIT), libother_gdb_jit (another definer of __jit_debug_descriptor and
// __jit_debug_register_code, versioned like libLLVM-16) and, when built with it,
// libLLVM-16 (llvm_gdb_jit.c). Built twice, linked with jitalloc first or last, so either
// library comes first in the dynamic linker's search order.
//
// Threads register and unregister functions in jitalloc and in the other runtime at once;
// then each library's own descriptor (found in its own symbol table, as GDB finds it)
// must list exactly its own live functions, linked both ways. Last it calls ja_answer
// (jitalloc), ot_answer (the other runtime) and llvm_answer (LLVM): the gdb test breaks on
// each by name.
//   usage: gdb_coexist_target [ROUNDS]     exit 0: lists intact, every function right
#include "gdb_jit_list.h"

#include <jitalloc/jitalloc.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern "C" {
void *other_jit_add(const char *name, int value);
int other_jit_remove(void *fn);
const jit_descriptor *other_jit_bound_descriptor(void);
#ifdef JT_HAVE_LLVM
int (*llvm_gdb_jit_compile(void))(void);
const void *llvm_gdb_jit_inside_libllvm(void);
#endif
}

namespace {

using Fn = int (*)();

int g_failures = 0;

void fail(const std::string &what) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    g_failures++;
}

// mov eax, imm32; ret
std::vector<unsigned char> ret_code(int value) {
    std::vector<unsigned char> c = {0xb8, 0, 0, 0, 0, 0xc3};
    std::memcpy(&c[1], &value, 4);
    return c;
}

void *jitalloc_add(jit_arena *a, const std::string &name, int value) {
    auto code = ret_code(value);
    return jit_arena_alloc_named(a, code.data(), code.size(), name.c_str());
}

constexpr int kPerRound = 4;

void churn_jitalloc(jit_arena *a, int thread, int rounds) {
    for (int r = 0; r < rounds; r++) {
        void *fns[kPerRound];
        for (int k = 0; k < kPerRound; k++) {
            std::string name = "ja_churn_" + std::to_string(thread) + "_" + std::to_string(k);
            fns[k] = jitalloc_add(a, name, r + k);
            if (!fns[k] || reinterpret_cast<Fn>(fns[k])() != r + k)
                return fail("jitalloc function " + name);
        }
        for (void *f : fns)
            if (jit_free(f) != 0)
                return fail("jit_free");
    }
}

void churn_other(int thread, int rounds) {
    for (int r = 0; r < rounds; r++) {
        void *fns[kPerRound];
        for (int k = 0; k < kPerRound; k++) {
            std::string name = "ot_churn_" + std::to_string(thread) + "_" + std::to_string(k);
            fns[k] = other_jit_add(name.c_str(), r + k);
            if (!fns[k] || reinterpret_cast<Fn>(fns[k])() != r + k)
                return fail("other function " + name);
        }
        for (void *f : fns)
            if (other_jit_remove(f) != 0)
                return fail("other_jit_remove");
    }
}

// The list of one descriptor must hold exactly `want` (function names, in any order)
// plus, with prefix_only, any entry whose names avoid `foreign_prefixes`.
void check_list(const char *who, const jit_descriptor *d, const std::vector<std::string> &want,
                const std::vector<std::string> &foreign_prefixes) {
    if (!d)
        return fail(std::string(who) + ": no descriptor in its own symbol table");
    std::vector<const jit_code_entry *> entries;
    std::string why;
    if (!gdbjit_test::walk(d, entries, why))
        return fail(std::string(who) + ": list broken: " + why);
    std::vector<std::string> left = want;
    for (const jit_code_entry *e : entries)
        for (const std::string &n : gdbjit_test::function_names(e)) {
            for (const std::string &p : foreign_prefixes)
                if (n.compare(0, p.size(), p) == 0)
                    fail(std::string(who) + "'s list holds " + n + ", another runtime's function");
            for (auto it = left.begin(); it != left.end(); ++it)
                if (*it == n) {
                    left.erase(it);
                    break;
                }
        }
    for (const std::string &n : left)
        fail(std::string(who) + "'s list lacks " + n);
    std::printf("%s: %zu entries\n", who, entries.size());
}

}  // namespace

int main(int argc, char **argv) {
    int rounds = argc > 1 ? std::atoi(argv[1]) : 2000;

    jit_arena_options o;
    jit_arena_options_init(&o);
    o.flags = JIT_ARENA_GDB_JIT | JIT_ARENA_IGNORE_ENV;
    jit_arena *a = jit_arena_create(&o);
    if (!a) {
        std::perror("jit_arena_create");
        return 1;
    }
#ifdef JT_HAVE_LLVM
    Fn llvm_answer = llvm_gdb_jit_compile();
    if (!llvm_answer)
        fail("LLVM could not compile llvm_answer");
#endif

    std::vector<std::thread> threads;
    for (int t = 0; t < 2; t++) {
        threads.emplace_back(churn_jitalloc, a, t, rounds);
        threads.emplace_back(churn_other, t, rounds);
    }
    for (auto &t : threads)
        t.join();

    void *ja = jitalloc_add(a, "ja_answer", 42);
    void *ot = other_jit_add("ot_answer", 7);
    if (!ja || !ot)
        fail("final functions");

    const jit_descriptor *ja_desc = gdbjit_test::descriptor_of_object(reinterpret_cast<void *>(&jit_alloc));
    const jit_descriptor *ot_desc =
        gdbjit_test::descriptor_of_object(reinterpret_cast<void *>(&other_jit_add));
    if (other_jit_bound_descriptor() != ot_desc)
        fail("the other runtime writes a descriptor that is not its own");
    check_list("jitalloc", ja_desc, {"ja_answer"}, {"ot_", "llvm_"});
    check_list("other", ot_desc, {"ot_answer"}, {"ja_", "llvm_"});
#ifdef JT_HAVE_LLVM
    const jit_descriptor *llvm_desc = gdbjit_test::descriptor_of_object(llvm_gdb_jit_inside_libllvm());
    check_list("libLLVM-16", llvm_desc, {"llvm_answer"}, {"ja_", "ot_"});
#endif

    if (ja && reinterpret_cast<Fn>(ja)() != 42)
        fail("ja_answer");
    if (ot && reinterpret_cast<Fn>(ot)() != 7)
        fail("ot_answer");
#ifdef JT_HAVE_LLVM
    if (llvm_answer && llvm_answer() != 9)
        fail("llvm_answer");
#endif
    if (g_failures)
        return 1;
    std::printf("lists intact\n");
    return 0;
}
