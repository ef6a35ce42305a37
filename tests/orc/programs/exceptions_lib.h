// The interface between exceptions_main.cpp and exceptions_lib.cpp.
#pragma once

#include <stdexcept>
#include <string>

struct LibError : std::runtime_error {
    int code;
    LibError(const char *what, int c) : std::runtime_error(what), code(c) {}
    std::string describe() const;  // defined in exceptions_lib.cpp
};

int lib_parse(const char *text);                  // throws std::invalid_argument
int lib_recurse(int n, int (*back)(int));         // calls back(n) below its own frames
[[noreturn]] void lib_throw_custom(int code);     // throws LibError
int lib_catch_from(void (*f)(int));               // calls f(0..9), counts what it throws
