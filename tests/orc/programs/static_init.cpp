// Static initialisation and destruction: global objects constructed in order before main,
// function-local statics on first use, C constructor/destructor attributes, destructors
// and atexit handlers after main, in reverse order.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

int g_counter = 0;

struct Noisy {
    std::string name;
    int order;
    explicit Noisy(const char *n) : name(n), order(++g_counter) {
        std::printf("construct %s (%d)\n", name.c_str(), order);
    }
    ~Noisy() { std::printf("destroy %s (%d)\n", name.c_str(), order); }
};

Noisy first("first");
Noisy second("second");
std::vector<int> table = [] {
    std::vector<int> v;
    for (int i = 0; i < 10; i++)
        v.push_back(i * i);
    std::printf("table built (%zu entries)\n", v.size());
    return v;
}();

Noisy &lazy() {
    static Noisy instance("lazy");
    return instance;
}

__attribute__((constructor)) void c_constructor() { std::printf("C constructor, counter %d\n", g_counter); }
__attribute__((destructor)) void c_destructor() { std::printf("C destructor\n"); }

void at_exit_handler() { std::printf("atexit handler\n"); }

}  // namespace

int main() {
    std::atexit(at_exit_handler);
    std::printf("main: counter %d, table[7] = %d\n", g_counter, table[7]);
    std::printf("lazy order %d\n", lazy().order);
    std::printf("lazy again %d\n", lazy().order);
    return 0;
}
