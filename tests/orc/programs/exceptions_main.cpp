// C++ exceptions between modules (this one and exceptions_lib.cpp, linked as separate
// graphs, each with its own eh-frame registration): thrown in one module and caught in
// the other, in both directions; unwinding through frames of both modules at once with
// destructors on the way; a throw from JIT code through a host (libc qsort) frame back
// into JIT code; an exception object of a class defined in the other module.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "exceptions_lib.h"

namespace {

struct Trace {
    const char *where;
    explicit Trace(const char *w) : where(w) {}
    ~Trace() { std::printf("  main unwinds %s\n", where); }
};

int main_depth(int n) {
    Trace t("main_depth");
    if (n == 0)
        throw std::runtime_error("thrown in main, below lib frames");
    return lib_recurse(n - 1, main_depth) + 1;
}

int compare_or_throw(const void *a, const void *b) {
    int x = *static_cast<const int *>(a), y = *static_cast<const int *>(b);
    if (x == 13 || y == 13)
        throw LibError("unlucky element", 13);
    return (x > y) - (x < y);
}

}  // namespace

int main() {
    for (const char *text : {"42", "-7", "x1", ""}) {
        try {
            std::printf("parse '%s' = %d\n", text, lib_parse(text));
        } catch (const std::invalid_argument &e) {
            std::printf("caught from lib: invalid_argument '%s'\n", e.what());
        }
    }
    try {
        main_depth(4);
    } catch (const std::runtime_error &e) {
        std::printf("caught after unwinding both modules: '%s'\n", e.what());
    }
    try {
        lib_throw_custom(5);
    } catch (const LibError &e) {
        std::printf("caught LibError '%s' code %d (%s)\n", e.what(), e.code, e.describe().c_str());
    }
    int values[] = {5, 3, 13, 8, 1};
    try {
        std::qsort(values, 5, sizeof values[0], compare_or_throw);
        std::printf("qsort finished\n");
    } catch (const LibError &e) {
        std::printf("caught through qsort: '%s' code %d\n", e.what(), e.code);
    }
    std::printf("lib caught %d of main's exceptions\n", lib_catch_from([](int i) {
                    if (i % 2)
                        throw i;
                }));
    return 0;
}
