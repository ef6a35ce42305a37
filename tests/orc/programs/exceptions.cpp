// C++ exceptions thrown across JIT frames and caught in JIT code: nested frames with
// destructors run during unwinding, rethrow, exception_ptr, standard exceptions thrown by
// libstdc++ (a host frame) and caught in JIT code, catch by base class, noexcept.
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Guard {
    const char *name;
    explicit Guard(const char *n) : name(n) {}
    ~Guard() { std::printf("  unwind %s\n", name); }
};

struct MyError : std::runtime_error {
    int depth;
    MyError(const std::string &what, int d) : std::runtime_error(what), depth(d) {}
};

__attribute__((noinline)) int thrower(int depth) {
    Guard g("thrower");
    if (depth == 0)
        throw MyError("bottom reached", depth);
    return thrower(depth - 1) + 1;
}

__attribute__((noinline)) int middle(int depth) {
    Guard g("middle");
    return thrower(depth) * 2;
}

__attribute__((noinline)) void rethrower() {
    try {
        middle(1);
    } catch (MyError &e) {
        std::printf("  rethrowing '%s'\n", e.what());
        throw;
    }
}

}  // namespace

int main() {
    try {
        middle(3);
    } catch (const MyError &e) {
        std::printf("caught MyError '%s' depth %d\n", e.what(), e.depth);
    }
    try {
        rethrower();
    } catch (const std::exception &e) {
        std::printf("caught rethrown as std::exception '%s'\n", e.what());
    }
    std::vector<int> v(3);
    try {
        std::printf("v.at(10) = %d\n", v.at(10));
    } catch (const std::out_of_range &) {
        std::printf("caught std::out_of_range from libstdc++\n");
    }
    std::exception_ptr saved;
    try {
        throw 42;
    } catch (...) {
        saved = std::current_exception();
    }
    try {
        std::rethrow_exception(saved);
    } catch (int x) {
        std::printf("caught int %d through exception_ptr\n", x);
    }
    int total = 0;
    for (int i = 0; i < 1000; i++) {
        try {
            if (i % 3 == 0)
                throw i;
            total += i;
        } catch (int j) {
            total -= j;
        }
    }
    std::printf("loop total %d\n", total);
    return 0;
}
