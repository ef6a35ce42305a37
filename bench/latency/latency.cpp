// Tail latency and scale (issue 11 item 7): the distribution of single alloc, free and
// update times at many live functions, metadata per live object, and jit_shrink after
// freeing a random half.
//
//   jitalloc_latency_bench [--sizes 5000,50000,1000000] [--steps N]
//                          [--contenders a,b,...] [--workloads bpf,small]
//                          [--out FILE.json] [--commit ID]
//
// Per contender (bench/contender.h) and live count N, in a fresh contender:
//   fill     N loads of BPF-sized functions (bench::bpf_size), timed only as a whole
//   steps    --steps times: free a random live function, load a new BPF-sized one (and
//            call it once, untimed), update the first 64 B of a random live function
//            with a new function; each of the three operations timed alone (wall clock,
//            CLOCK_MONOTONIC) into a preallocated array, percentiles computed after
//            Before each update, "raw_write": the 64 bytes it targets written back
//            unchanged with one pwrite to /proc/self/mem (the kernel write alone, on the
//            same memory at the same moment; where /proc/self/mem can write the mapping)
//   memory   metadata bytes per live object; (resident code bytes + metadata) / requested
//            bytes, resident from /proc/self/smaps like the memory benchmark
//   shrink   free a random half, then time Contender::shrink (jit_arena_shrink) and record
//            the bytes it gives back and resident code before / after
// Each operation's JSON also has "bands": its samples grouped by the octave of the
// function's size ([2^k, 2^(k+1)) bytes; bands of 200 samples or more), p50 and p99 in
// each, so the tail of an operation at one size is read apart from the size mix's
// (operations of no size — the fixed work, getppid — have none).
// After each load, "raw_alloc": the bytes it wrote written again at the same place with
// one raw pwrite to /proc/self/mem, the same size at the same moment (where it works).
// And "raw_scattered" / "raw_scattered_read": one raw pwrite of the load's length at a
// random place of a trap region as large as the contender's code, alone and followed by a
// read-back (ScatteredFloor): the kernel write where code has to go at this scale.
// Workloads: bpf (sizes of bench::bpf_size) and small (uniform 64..512 B: the same
// operations with little size spread, so a tail in them is the allocator's, not the
// cost of writing a 64 KiB function against a 200 B one).
// The machine's own tail: each step also times "reference", a fixed amount of CPU work
// (calibrated at start to about 3 µs, near a jitalloc operation's median) that touches no
// allocator; its p99/p50 is what preemption and host noise alone do to a constant
// operation in the same loop at the same moment; "syscall" (getppid, the cheapest kernel
// entry) what they do to anything that enters the kernel, as every strict W^X write does.
// Chunk growth is counted apart: Contender::growth_counter() is read before and after
// each operation, outside the timed window; an operation during which it moved (a chunk
// or an asmjit block mapped or given back) goes to the "growth" figures, not into the
// percentiles. Each operation's CPU time (CLOCK_THREAD_CPUTIME_ID, user + kernel) is
// taken around the same window: what wall time has and CPU time has not is time off the
// CPU. floor_proc_mem / floor_memfd (one raw pwrite per load and update, nothing per
// free; their code is not called) give the tail of the kernel write alone.
// Wall time on a shared VM includes preemption by other tenants: the JSON
// keeps the load average at the start and end of every contender's run.
#include "../contender.h"
#include "../workload.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace bench;

namespace {

uint64_t clock_ns(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
uint64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }
// CPU time of this thread, user + kernel (a system call: not in the vDSO).
uint64_t cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

// An operation whose wall time exceeds its CPU time by more than this spent that time off
// its CPU (preempted by another task or tenant, or blocked): counted as "off_cpu".
constexpr uint64_t kOffCpuNs = 10000;

std::string loadavg() {
    char buf[64] = {0};
    FILE *f = std::fopen("/proc/loadavg", "r");
    if (f) {
        if (!std::fgets(buf, sizeof buf, f))
            buf[0] = 0;
        std::fclose(f);
    }
    std::string s(buf);
    // The first three fields.
    size_t pos = 0;
    for (int i = 0; i < 3 && pos != std::string::npos; i++)
        pos = s.find(' ', pos + 1);
    return s.substr(0, pos);
}

// Times of one kind of operation: growth-free samples in a preallocated array, the
// operations during which the allocator grew counted apart.
// Each sample has its wall time (ns) and the thread's CPU time over the same window
// (cpu), which leaves out what preemption adds: a tail in wall time that CPU time does
// not share is the machine's, one in both is work done on the CPU (the library's, or the
// kernel's for the write).
// Each sample also keeps the size of the function it wrote or freed (bytes), so the
// tail can be read per size band as well as over the whole mix (print_op).
struct OpTimes {
    std::vector<uint64_t> ns, cpu, bytes;
    uint64_t growth_n = 0, growth_max = 0, off_cpu = 0;
    explicit OpTimes(size_t cap) {
        ns.reserve(cap);
        cpu.reserve(cap);
        bytes.reserve(cap);
    }
    void add(uint64_t t, uint64_t c, size_t len, bool grew) {
        if (grew) {
            growth_n++;
            growth_max = std::max(growth_max, t);
        } else {
            ns.push_back(t);
            cpu.push_back(c);
            bytes.push_back(len);
            off_cpu += t > c + kOffCpuNs;
        }
    }
};

// Runs op() on a function of len bytes, timed; the growth counter is read outside the
// timed window, the CPU clock just outside the wall clock's.
template <class F>
void timed(Contender &c, OpTimes &out, size_t len, F &&op) {
    uint64_t g0 = c.growth_counter();
    uint64_t c0 = cpu_ns();
    uint64_t t0 = now_ns();
    op();
    uint64_t t1 = now_ns();
    uint64_t c1 = cpu_ns();
    out.add(t1 - t0, c1 - c0, len, c.growth_counter() != g0);
}

// Nearest-rank percentile of sorted v.
uint64_t pct(const std::vector<uint64_t> &v, double p) {
    if (v.empty())
        return 0;
    size_t k = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.999999);
    return v[std::min(v.size(), std::max<size_t>(k, 1)) - 1];
}

// A size band needs this many samples for its p99 to be read (the 99th percentile of
// 200 samples is the second slowest but one).
constexpr size_t kMinBandSamples = 200;

// The tail per size band: samples grouped by the octave of their size, [2^k, 2^(k+1))
// bytes, each band with enough samples printed as {lo, hi, n, p50, p99} (wall and CPU).
// An operation that writes the whole function costs more the longer it is, so the
// tail over a mix of sizes is the mix's; within a band it is the operation's own.
void print_bands(FILE *f, const OpTimes &o) {
    constexpr int kBands = 64;
    std::vector<uint64_t> ns[kBands], cpu[kBands];
    for (size_t i = 0; i < o.ns.size(); i++) {
        if (!o.bytes[i])
            continue;  // an operation of no size
        int band = 63 - __builtin_clzll(o.bytes[i]);
        ns[band].push_back(o.ns[i]);
        cpu[band].push_back(o.cpu[i]);
    }
    std::fprintf(f, ",\n          \"bands\": [");
    bool first = true;
    for (int b = 0; b < kBands; b++) {
        if (ns[b].size() < kMinBandSamples)
            continue;
        std::sort(ns[b].begin(), ns[b].end());
        std::sort(cpu[b].begin(), cpu[b].end());
        std::fprintf(f,
                     "%s{\"lo\": %lu, \"hi\": %lu, \"n\": %zu, \"p50_ns\": %lu, \"p99_ns\": %lu, "
                     "\"cpu_p50_ns\": %lu, \"cpu_p99_ns\": %lu}",
                     first ? "" : ", ", uint64_t{1} << b, (uint64_t{1} << (b + 1)) - 1,
                     ns[b].size(), pct(ns[b], 50), pct(ns[b], 99), pct(cpu[b], 50),
                     pct(cpu[b], 99));
        first = false;
    }
    std::fprintf(f, "]");
}

void print_op(FILE *f, const char *name, OpTimes &o, bool last) {
    // Bands first: they need the samples in step order, each time with its size.
    OpTimes banded = o;
    std::sort(o.ns.begin(), o.ns.end());
    std::sort(o.cpu.begin(), o.cpu.end());
    size_t over = static_cast<size_t>(
        o.ns.end() - std::upper_bound(o.ns.begin(), o.ns.end(), uint64_t{1000000}));
    size_t over_cpu = static_cast<size_t>(
        o.cpu.end() - std::upper_bound(o.cpu.begin(), o.cpu.end(), uint64_t{1000000}));
    std::fprintf(f,
                 "        \"%s\": {\"n\": %zu, \"p50_ns\": %lu, \"p99_ns\": %lu, "
                 "\"p999_ns\": %lu, \"max_ns\": %lu, \"over_1ms\": %zu, \"growth_n\": %lu, "
                 "\"growth_max_ns\": %lu,\n          \"cpu_p50_ns\": %lu, \"cpu_p99_ns\": %lu, "
                 "\"cpu_p999_ns\": %lu, \"cpu_max_ns\": %lu, \"off_cpu\": %lu, \"over_1ms_cpu\": %zu",
                 name, o.ns.size(), pct(o.ns, 50), pct(o.ns, 99), pct(o.ns, 99.9),
                 o.ns.empty() ? 0ul : o.ns.back(), over, o.growth_n, o.growth_max,
                 pct(o.cpu, 50), pct(o.cpu, 99), pct(o.cpu, 99.9),
                 o.cpu.empty() ? 0ul : o.cpu.back(), o.off_cpu, over_cpu);
    print_bands(f, banded);
    std::fprintf(f, "}%s\n", last ? "" : ",");
}

// Fixed CPU work: n dependent multiply-adds.
uint64_t g_ref_iters = 1000;
void fixed_work(uint64_t iters) {
    volatile uint64_t x = 1;
    for (uint64_t i = 0; i < iters; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
}
void reference_work() { fixed_work(g_ref_iters); }

// The machine's tail at other lengths: the same fixed work made to last each of these
// (about, from the 3 µs calibration), one of them per step in turn, timed in the same
// loop ("fixed_<ns>"). An interruption (a timer tick, the host taking the vCPU) lands
// in a window with a chance that grows with the window's length, so p99/p50 of work of
// a fixed length jumps once that chance passes 1% (here between about 4 and 8 µs): an
// operation of that length has that tail whatever it does. report_latency.py shows each
// size band next to the rung nearest its median. One rung per step, not all: the
// rungs' time between the operations is itself a change to what is measured.
constexpr uint64_t kLadderNs[] = {1500, 3000, 6000, 12000, 24000};
constexpr size_t kLadder = sizeof kLadderNs / sizeof kLadderNs[0];

// Sets g_ref_iters so that reference_work takes about target_ns (median of 101 tries).
void calibrate_reference(uint64_t target_ns) {
    std::vector<uint64_t> t(101);
    for (auto &v : t) {
        uint64_t a = now_ns();
        reference_work();
        v = now_ns() - a;
    }
    std::sort(t.begin(), t.end());
    g_ref_iters = std::max<uint64_t>(1, g_ref_iters * target_ns / std::max<uint64_t>(t[50], 1));
}

struct Fn {
    void *p;
    size_t len;
};

// The kernel write where an allocator at this scale has to put code: anywhere in a
// footprint as large as the contender's code, not in the 32 MiB a floor contender reuses
// round-robin (whose pages stay hot in the caches and the TLB). A region of that size,
// huge pages of traps made read+execute, written by one raw pwrite to /proc/self/mem of
// each load's length at a random place: "raw_scattered" (the kernel write alone) and
// "raw_scattered_read" (the same write, then the bytes read back once from user space,
// as jitalloc does after every write and a JIT does when it first runs new code: on a
// host with shadow paging the first user access to a page the kernel has just written
// may cost a host fault).
class ScatteredFloor {
public:
    explicit ScatteredFloor(size_t bytes) {
        constexpr size_t kHuge = size_t{2} << 20;
        size_ = (bytes + kHuge - 1) / kHuge * kHuge;
        void *r = mmap(nullptr, size_ + kHuge, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        fd_ = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
        if (r == MAP_FAILED || fd_ < 0)
            return;
        map_ = static_cast<uint8_t *>(r);
        base_ = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(map_) + kHuge - 1) &
                                            ~(kHuge - 1));
        madvise(base_, size_, MADV_HUGEPAGE);
        std::memset(base_, 0xCC, size_);
        if (mprotect(base_, size_, PROT_READ | PROT_EXEC) != 0)
            base_ = nullptr;
        std::memset(traps_, 0xCC, sizeof traps_);
    }
    ~ScatteredFloor() {
        if (map_)
            munmap(map_, size_ + (size_t{2} << 20));
        if (fd_ >= 0)
            close(fd_);
    }
    bool works() const { return base_ != nullptr; }
    // Where the next write of len bytes goes: 16-aligned, anywhere in the region.
    uint8_t *place(std::mt19937_64 &rng, size_t len) const {
        size_t slots = (size_ - len) / 16;
        return base_ + rng() % slots * 16;
    }
    bool write(uint8_t *at, size_t len) const {
        return pwrite(fd_, traps_, len, static_cast<off_t>(reinterpret_cast<uintptr_t>(at))) ==
               static_cast<ssize_t>(len);
    }
    static bool read_back(const uint8_t *at, size_t len) {
        return std::memcmp(at, traps_, len) == 0;
    }

private:
    static uint8_t traps_[65536];
    uint8_t *map_ = nullptr, *base_ = nullptr;
    size_t size_ = 0;
    int fd_ = -1;
};
uint8_t ScatteredFloor::traps_[65536];

size_t next_size(const std::string &workload, std::mt19937_64 &rng) {
    return workload == "small" ? uniform_size(rng, 64, 512) : bpf_size(rng);
}

// One contender at one live count; writes one JSON object to f. false on failure.
bool run_one(FILE *f, const std::string &name, const std::string &workload, size_t live,
             size_t steps, bool first) {
    CodeMemory before = code_memory();
    auto c = make_contender(name);
    if (!c)
        return false;
    std::string load0 = loadavg();
    std::mt19937_64 rng(42 + live);
    std::vector<Fn> fns;
    fns.reserve(live);
    uint64_t requested = 0, fill_growth = 0, g0 = c->growth_counter();
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < live; i++) {
        size_t len = next_size(workload, rng);
        void *p = c->load(make_function(len, static_cast<int32_t>(i)), len);
        if (!p) {
            std::fprintf(stderr, "%s: load failed at %zu live\n", name.c_str(), i);
            return false;
        }
        fns.push_back({p, len});
        requested += len;
    }
    double fill_s = static_cast<double>(now_ns() - t0) / 1e9;
    fill_growth = c->growth_counter() - g0;

    OpTimes al(steps), fr(steps), up(steps), ref(steps), sys(steps), raw(steps), raw_al(steps),
        scat(steps), scat_rd(steps);
    // As large as the code the fill left resident (at least what it asked for).
    CodeMemory filled = code_memory();
    const uint64_t grew = filled.resident > before.resident ? filled.resident - before.resident : 0;
    // Gone before the code is measured (it is read+execute memory code_memory() would count).
    auto scattered = std::make_unique<ScatteredFloor>(std::max<uint64_t>(grew, requested));
    std::mt19937_64 place_rng(7 + live);  // its own: the workload's sequence stays as it was
    std::vector<OpTimes> ladder(kLadder, OpTimes(steps));
    // The kernel write alone, on the same memory at the same moment: before each update,
    // the 64 bytes it targets are written back unchanged with one pwrite to /proc/self/mem
    // (what jitalloc's proc_mem writer does under its bookkeeping). Only where that works:
    // private mappings (proc_mem chunks, asmjit_default); shared memfd views refuse it.
    // The same for each load: right after it, the bytes it wrote written again with one
    // raw pwrite, same size, same place ("raw_alloc": the kernel's share of that load).
    int mem_fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    bool raw_works = mem_fd >= 0;
    // One raw pwrite of len bytes from src to at, timed into out; the first refused one
    // ends both rewrites for this contender (its memory is a mapping the kernel will not
    // write through /proc/self/mem) and drops what they timed.
    auto raw_rewrite = [&](OpTimes &out, const void *src, size_t len, void *at) {
        if (!raw_works)
            return;
        bool wrote = true;
        timed(*c, out, len, [&] {
            wrote = pwrite(mem_fd, src, len, static_cast<off_t>(reinterpret_cast<uintptr_t>(at))) ==
                    static_cast<ssize_t>(len);
        });
        if (!wrote) {
            raw_works = false;
            raw = OpTimes(0);
            raw_al = OpTimes(0);
        }
    };
    int sum = 0;
    // A floor (raw pwrite into a 32 MiB region it reuses round-robin, bench/contender.h)
    // overwrites older functions: its code is not called, only its writes are timed.
    const bool call = name.rfind("floor_", 0) != 0;
    for (size_t i = 0; i < steps; i++) {
        size_t k = rng() % fns.size();
        Fn old = fns[k];
        timed(*c, fr, old.len, [&] { c->unload(old.p, old.len); });
        requested -= old.len;
        size_t len = next_size(workload, rng);
        const uint8_t *code = make_function(len, static_cast<int32_t>(i));
        void *p = nullptr;
        timed(*c, al, len, [&] { p = c->load(code, len); });
        if (!p) {
            std::fprintf(stderr, "%s: load failed in step %zu\n", name.c_str(), i);
            return false;
        }
        fns[k] = {p, len};
        requested += len;
        raw_rewrite(raw_al, code, len, p);
        if (scattered->works()) {
            bool ok = true;
            uint8_t *at = scattered->place(place_rng, len);
            timed(*c, scat, len, [&] { ok = scattered->write(at, len); });
            at = scattered->place(place_rng, len);
            timed(*c, scat_rd, len, [&] { ok &= scattered->write(at, len) && ScatteredFloor::read_back(at, len); });
            if (!ok) {
                std::fprintf(stderr, "%s: raw_scattered write failed in step %zu\n", name.c_str(), i);
                return false;
            }
        }
        if (call)
            sum += reinterpret_cast<bench::Fn>(p)(1);
        Fn tgt = fns[rng() % fns.size()];
        const uint8_t *patch = make_function(64, static_cast<int32_t>(i) + 7);
        if (raw_works) {  // read the target only where it is rewritten (warms it)
            uint8_t same[64];
            std::memcpy(same, tgt.p, sizeof same);
            raw_rewrite(raw, same, sizeof same, tgt.p);
        }
        bool ok = true;
        timed(*c, up, 64, [&] { ok = c->update(tgt.p, patch, 64); });
        if (!ok) {
            std::fprintf(stderr, "%s: update failed in step %zu\n", name.c_str(), i);
            return false;
        }
        if (call)
            sum += reinterpret_cast<bench::Fn>(tgt.p)(1);
        timed(*c, ref, 0, reference_work);
        const size_t rung = i % kLadder;
        timed(*c, ladder[rung], 0, [&] { fixed_work(g_ref_iters * kLadderNs[rung] / 3000); });
        timed(*c, sys, 0, [] { (void)syscall(SYS_getppid); });
    }
    if (mem_fd >= 0)
        close(mem_fd);
    scattered.reset();
    if (sum == 12345)
        std::fprintf(stderr, " ");  // keeps the calls

    CodeMemory mid = code_memory();
    double meta = static_cast<double>(c->metadata_bytes());
    double resident = static_cast<double>(mid.resident) - static_cast<double>(before.resident);

    // Free a random half, then shrink.
    std::shuffle(fns.begin(), fns.end(), rng);
    size_t half = fns.size() / 2;
    uint64_t tf = now_ns();
    for (size_t i = 0; i < half; i++)
        c->unload(fns[i].p, fns[i].len);
    double free_half_s = static_cast<double>(now_ns() - tf) / 1e9;
    CodeMemory pre = code_memory();
    uint64_t ts = now_ns();
    size_t given = c->shrink();
    double shrink_us = static_cast<double>(now_ns() - ts) / 1e3;
    CodeMemory post = code_memory();
    for (size_t i = half; i < fns.size(); i++)
        c->unload(fns[i].p, fns[i].len);

    std::fprintf(f,
                 "%s    {\"contender\": \"%s\", \"workload\": \"%s\", \"live\": %zu, "
                 "\"steps\": %zu,\n",
                 first ? "" : ",\n", name.c_str(), workload.c_str(), live, steps);
    std::fprintf(f, "      \"loadavg_start\": \"%s\", \"loadavg_end\": \"%s\",\n", load0.c_str(),
                 loadavg().c_str());
    std::fprintf(f, "      \"fill_s\": %.3f, \"fill_growth\": %lu, \"free_half_s\": %.3f,\n", fill_s,
                 fill_growth, free_half_s);
    std::fprintf(f,
                 "      \"requested_bytes\": %lu, \"resident_bytes\": %.0f, \"metadata_bytes\": "
                 "%.0f, \"metadata_per_live\": %.2f, \"resident_per_req\": %.4f,\n",
                 requested, resident, meta, meta / static_cast<double>(live),
                 (resident + meta) / static_cast<double>(requested));
    std::fprintf(f,
                 "      \"shrink_us\": %.1f, \"shrink_bytes\": %zu, \"resident_before_shrink\": "
                 "%lu, \"resident_after_shrink\": %lu,\n",
                 shrink_us, given, pre.resident - before.resident, post.resident - before.resident);
    std::fprintf(f, "      \"ops\": {\n");
    print_op(f, "alloc", al, false);
    print_op(f, "free", fr, false);
    print_op(f, "update", up, false);
    print_op(f, "reference", ref, false);
    for (size_t r = 0; r < kLadder; r++) {
        char name[32];
        std::snprintf(name, sizeof name, "fixed_%lu", kLadderNs[r]);
        print_op(f, name, ladder[r], false);
    }
    print_op(f, "syscall", sys, false);
    if (!raw.ns.empty())
        print_op(f, "raw_write", raw, false);
    if (!raw_al.ns.empty())
        print_op(f, "raw_alloc", raw_al, false);
    print_op(f, "raw_scattered", scat, false);
    print_op(f, "raw_scattered_read", scat_rd, true);
    std::fprintf(f, "      }}");
    std::fflush(f);
    return true;
}

std::vector<std::string> split(const std::string &s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.push_back(item);
    return out;
}

}  // namespace

int main(int argc, char **argv) {
    std::string sizes = "5000,50000,1000000", out, commit = "unknown", workloads = "bpf";
    std::string names = "jitalloc_proc_mem,jitalloc_memfd,jitalloc_temp_alias,"
                        "jitalloc_persistent_alias,asmjit_default,asmjit_dual";
    size_t steps = 50000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--sizes") sizes = argv[i + 1];
        else if (a == "--steps") steps = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--contenders") names = argv[i + 1];
        else if (a == "--workloads") workloads = argv[i + 1];
        else if (a == "--out") out = argv[i + 1];
        else if (a == "--commit") commit = argv[i + 1];
        else {
            std::fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    calibrate_reference(3000);
    FILE *f = out.empty() ? stdout : std::fopen(out.c_str(), "w");
    if (!f) {
        std::perror(out.c_str());
        return 1;
    }
    std::fprintf(f, "{\"commit\": \"%s\", \"steps\": %zu, \"loadavg_start\": \"%s\",\n \"runs\": [\n",
                 commit.c_str(), steps, loadavg().c_str());
    bool first = true, ok = true;
    for (const auto &wl : split(workloads))
        for (const auto &n : split(names))
            for (const auto &s : split(sizes)) {
                std::fprintf(stderr, "latency: %s, %s sizes, %s live\n", n.c_str(), wl.c_str(),
                             s.c_str());
                if (run_one(f, n, wl, std::strtoul(s.c_str(), nullptr, 10), steps, first))
                    first = false;
                else
                    ok = false;
            }
    std::fprintf(f, "\n ], \"loadavg_end\": \"%s\"}\n", loadavg().c_str());
    if (f != stdout)
        std::fclose(f);
    return ok ? 0 : 1;
}
