// One-line diagnostics to stderr (see diag.h).
#include "diag/diag.h"

#include <cstdarg>
#include <cstdio>

namespace jitalloc {

namespace {

void vline(const char *fmt, va_list ap) {
    char msg[512];
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    std::fprintf(stderr, "jitalloc: %s\n", msg);
}

}  // namespace

void diag_line(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vline(fmt, ap);
    va_end(ap);
}

void diag_once(std::atomic<bool> &once, const char *fmt, ...) {
    if (once.exchange(true, std::memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vline(fmt, ap);
    va_end(ap);
}

}  // namespace jitalloc
