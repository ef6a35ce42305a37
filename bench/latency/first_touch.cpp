// What the first user-space access to code memory costs after the kernel has written it
// (bench/RESULTS.md section 11: where the tail of a write and its read-back comes from).
//
//   jitalloc_first_touch [--mib N] [--len BYTES] [--steps N]
//
// A region of N MiB (default 160) of traps on huge pages, made read+execute like a
// proc_mem chunk, then three loops of --steps each, timed in TSC cycles (converted with a
// measured rate), every place random and 16-aligned:
//   write             one raw pwrite of BYTES (default 5000) to /proc/self/mem
//   read_after_write  a pwrite like that, then a one-byte user-space read at another
//                     random place (timed: the read)
//   read_after_call   getppid (a system call that writes nothing), then the same read
// and prints p50 / p99 / p99.9 of each in µs. On a host whose memory management makes
// user accesses after a write through /proc/self/mem costly (a paravirtualised guest with
// shadow page tables), read_after_write has a tail that read_after_call has not.
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <random>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

double cycles_per_us() {
    timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = __rdtsc();
    usleep(100000);
    uint64_t t1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = static_cast<double>(b.tv_sec - a.tv_sec) * 1e6 +
                static_cast<double>(b.tv_nsec - a.tv_nsec) / 1e3;
    return static_cast<double>(t1 - t0) / us;
}

void report(const char *name, std::vector<uint64_t> &v, double rate) {
    std::sort(v.begin(), v.end());
    auto at = [&](double p) { return static_cast<double>(v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))]) / rate; };
    std::printf("%-16s p50 %7.2f  p99 %7.2f  p99.9 %7.2f us\n", name, at(0.5), at(0.99), at(0.999));
}

}  // namespace

int main(int argc, char **argv) {
    size_t mib = 160, len = 5000, steps = 20000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        size_t v = std::strtoul(argv[i + 1], nullptr, 10);
        if (a == "--mib") mib = v;
        else if (a == "--len") len = v;
        else if (a == "--steps") steps = v;
        else {
            std::fprintf(stderr, "usage: %s [--mib N] [--len BYTES] [--steps N]\n", argv[0]);
            return 2;
        }
    }
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t size = mib << 20;
    if (len == 0 || len > 65536 || size < kHuge || steps == 0) {
        std::fprintf(stderr, "need 1 <= --len <= 65536, --mib >= 2, --steps >= 1\n");
        return 2;
    }
    void *r = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (r == MAP_FAILED || fd < 0) {
        std::perror("mmap or /proc/self/mem");
        return 1;
    }
    auto *base = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(r) + kHuge - 1) & ~(kHuge - 1));
    madvise(base, size, MADV_HUGEPAGE);
    std::memset(base, 0xCC, size);
    if (mprotect(base, size, PROT_READ | PROT_EXEC) != 0) {
        std::perror("mprotect");
        return 1;
    }
    static uint8_t traps[65536];
    std::memset(traps, 0xCC, sizeof traps);
    std::mt19937_64 rng(1);
    auto place = [&] { return base + rng() % ((size - len) / 16) * 16; };
    auto write_at = [&](uint8_t *d) {
        return pwrite(fd, traps, len, static_cast<off_t>(reinterpret_cast<uintptr_t>(d))) ==
               static_cast<ssize_t>(len);
    };
    auto read_at = [](uint8_t *d) {
        uint64_t t0 = __rdtsc();
        (void)*static_cast<volatile uint8_t *>(d);
        return __rdtsc() - t0;
    };
    std::vector<uint64_t> write, after_write, after_call;
    for (size_t s = 0; s < steps; s++) {
        uint8_t *d = place();
        uint64_t t0 = __rdtsc();
        bool ok = write_at(d);
        write.push_back(__rdtsc() - t0);
        if (!ok) {
            std::perror("pwrite");
            return 1;
        }
    }
    for (size_t s = 0; s < steps; s++) {
        if (!write_at(place())) {
            std::perror("pwrite");
            return 1;
        }
        after_write.push_back(read_at(place()));
    }
    for (size_t s = 0; s < steps; s++) {
        (void)getppid();
        after_call.push_back(read_at(place()));
    }
    const double rate = cycles_per_us();
    std::printf("%zu MiB, %zu-byte writes, %zu steps\n", mib, len, steps);
    report("write", write, rate);
    report("read_after_write", after_write, rate);
    report("read_after_call", after_call, rate);
    return 0;
}
