// The second module of the cross-module exceptions program (see exceptions_main.cpp).
#include "exceptions_lib.h"

#include <cstdio>

namespace {

struct Trace {
    const char *where;
    explicit Trace(const char *w) : where(w) {}
    ~Trace() { std::printf("  lib unwinds %s\n", where); }
};

}  // namespace

std::string LibError::describe() const { return "LibError#" + std::to_string(code); }

int lib_parse(const char *text) {
    return std::stoi(text);  // libstdc++ throws std::invalid_argument
}

int lib_recurse(int n, int (*back)(int)) {
    Trace t("lib_recurse");
    return back(n) * 2;
}

void lib_throw_custom(int code) {
    Trace t("lib_throw_custom");
    throw LibError("custom from lib", code);
}

int lib_catch_from(void (*f)(int)) {
    int caught = 0;
    for (int i = 0; i < 10; i++) {
        try {
            f(i);
        } catch (int) {
            caught++;
        }
    }
    return caught;
}
