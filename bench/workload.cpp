#include "workload.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace bench {

jit_arena *proc_mem_arena() {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = JIT_WRITER_PROC_MEM;
    o.flags |= JIT_ARENA_IGNORE_ENV;
    return jit_arena_create(&o);
}

const uint8_t *make_function(size_t len, int32_t imm) {
    static thread_local std::vector<uint8_t> buf;
    if (buf.size() < len) {
        buf.assign(std::max<size_t>(len, 65536), 0xCC);
        buf[0] = 0x8D;  // lea eax, [rdi + imm32]
        buf[1] = 0x87;
        buf[6] = 0xC3;  // ret
    }
    std::memcpy(&buf[2], &imm, 4);
    return buf.data();
}

size_t uniform_size(std::mt19937_64 &rng, size_t lo, size_t hi) {
    return lo + rng() % (hi - lo + 1);
}

size_t bpf_size(std::mt19937_64 &rng) {
    unsigned u = static_cast<unsigned>(rng() % 100);
    if (u < 50) return uniform_size(rng, 64, 499);
    if (u < 75) return uniform_size(rng, 500, 2047);
    if (u < 95) return uniform_size(rng, 2048, 8191);
    return uniform_size(rng, 8192, 65536);
}

namespace {

bool is_code_path(const std::string &path) {
    return path.empty() || path.rfind("/memfd:", 0) == 0 || path.rfind("/dev/shm/", 0) == 0 ||
           path.rfind("[anon", 0) == 0;
}

}  // namespace

CodeMemory code_memory() {
    CodeMemory out;
    FILE *f = std::fopen("/proc/self/smaps", "r");
    if (!f)
        return out;
    char line[512];
    bool in_code = false;
    std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
    while (std::fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int pathpos = 0;
        if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &pathpos) == 3 &&
            pathpos > 0) {
            std::string path = line + pathpos;
            while (!path.empty() && (path.back() == '\n' || path.back() == ' '))
                path.pop_back();
            in_code = perms[2] == 'x' && is_code_path(path);
            if (in_code) {
                out.mapped += hi - lo;
                out.mappings++;
                ranges.emplace_back(lo, hi);
            }
            continue;
        }
        if (!in_code)
            continue;
        unsigned long kb;
        if (std::sscanf(line, "Rss: %lu kB", &kb) == 1)
            out.rss += kb << 10;
        else if (std::sscanf(line, "AnonHugePages: %lu kB", &kb) == 1 ||
                 std::sscanf(line, "ShmemPmdMapped: %lu kB", &kb) == 1 ||
                 std::sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1)
            out.huge += kb << 10;
    }
    std::fclose(f);
    std::vector<unsigned char> vec;
    for (auto [lo, hi] : ranges) {
        vec.resize((hi - lo) / 4096);
        if (mincore(reinterpret_cast<void *>(lo), hi - lo, vec.data()) != 0)
            continue;
        for (unsigned char v : vec)
            out.resident += (v & 1) * 4096ull;
    }
    return out;
}

}  // namespace bench
