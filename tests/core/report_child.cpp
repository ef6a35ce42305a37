// A process for the report tests (report_test.cpp): makes arenas as one scenario says,
// then returns from main, so the exit report (JITALLOC_STATS) runs as in any program.
//   live        arena "kept" with three live functions, left live at exit
//   destroyed   arena "gone": one function allocated and freed, then destroyed
//   no_proc_mem /proc/self/mem cannot be opened (fault seam: EACCES): arena "fallback"
//   refused     jit_arena_create with a bad option (EINVAL), then arena "after"
#include "../common/host_code.h"
#include "os/os.h"

#include <jitalloc/jitalloc.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

jit_arena *named_arena(const char *name) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.name = name;
    return jit_arena_create(&o);
}

int fail(const char *what) {
    std::perror(what);
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    const std::vector<uint8_t> code = jt_code::ret_imm_code(7);
    if (std::strcmp(mode, "live") == 0) {
        jit_arena *a = named_arena("kept");
        for (int i = 0; i < 3; i++)
            if (!a || !jit_arena_alloc(a, code.data(), code.size()))
                return fail("live");
        return 0;
    }
    if (std::strcmp(mode, "destroyed") == 0) {
        jit_arena *a = named_arena("gone");
        void *p = a ? jit_arena_alloc(a, code.data(), code.size()) : nullptr;
        if (!p || jit_free(p) != 0 || jit_arena_destroy(a) != 0)
            return fail("destroyed");
        return 0;
    }
    if (std::strcmp(mode, "no_proc_mem") == 0) {
        jitalloc::os::set_fault({1, EACCES, jitalloc::os::mask_of(jitalloc::os::Call::open), false, false});
        jit_arena *a = named_arena("fallback");
        jitalloc::os::clear_fault();
        return a ? 0 : fail("no_proc_mem");
    }
    if (std::strcmp(mode, "refused") == 0) {
        jit_arena_options o;
        jit_arena_options_init(&o);
        o.flags = ~0u;  // unknown flags: EINVAL
        if (jit_arena_create(&o) != nullptr || errno != EINVAL)
            return fail("refused");
        return named_arena("after") ? 0 : fail("after");
    }
    std::fprintf(stderr, "usage: %s live|destroyed|no_proc_mem|refused\n", argv[0]);
    return 2;
}
