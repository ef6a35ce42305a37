// Cold start (issue 16): what the first allocations of a *fresh process* cost, for every
// jitalloc writer and the peers, and where jitalloc's time goes.
//
//   jitalloc_cold_bench [--runs N] [--out FILE.json] [--commit ID]
//       parent: N fresh processes per contender (round-robin, so host noise spreads
//       over all of them), medians, a markdown table on stdout, every raw figure in
//       FILE.json
//   jitalloc_cold_bench --child NAME        one measurement in this (fresh) process:
//       prints "first_us ten_us first_cpu_us ten_cpu_us": the first load, and the first 10
//       loads together, in wall-clock and in CPU time. NAME_threaded: the same with one
//       more thread started (and sleeping) before the loads
//   jitalloc_cold_bench --breakdown WRITER  one fresh process: the chunk and write steps
//       of jitalloc's first allocation (placement, the writer's first step with the code
//       in its fill, the code write that then only verifies it) called one by one through
//       the library's internals, CPU time each; the
//       parent shows what the first load costs beyond them (arena, metadata, chunk map)
//   jitalloc_cold_bench --steady            steady state (writer from JITALLOC_WRITER):
//       share of resident code on huge pages after filling and churning, the figure cold
//       start must not regress
//
// jitalloc contenders go through the real first-call path: jit_alloc on the default arena
// (created inside the first call), the writer chosen with JITALLOC_WRITER. A "load" is
// what a JIT does to get one 128-byte function runnable: jit_alloc(code) / asmjit
// JitAllocator alloc + copy + icache flush / mmap + copy + mprotect RX. Each function is
// called once after the timed region, so a broken load cannot pass for a fast one.
#include "../workload.h"

#include "arena/arena.h"
#include "chunk/chunk.h"
#include "chunk/growth.h"
#include "poke/writer.h"

#include <jitalloc/jitalloc.h>

#include <asmjit/core.h>

#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char **environ;

namespace {

using bench::Fn;
constexpr size_t kLen = 128;
constexpr int kLoads = 10;

double now_us() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

// CPU time of this thread: on a host shared by many busy processes, wall time also counts
// the waits for a CPU that a fresh process runs into; CPU time does not.
double cpu_us() {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Contender {
    const char *name;
    const char *writer;  // jitalloc: JITALLOC_WRITER value; nullptr for peers
};
const Contender kContenders[] = {
    {"jitalloc_proc_mem", "proc_mem"},
    {"jitalloc_memfd", "memfd"},
    {"jitalloc_temp_alias", "temp_alias"},
    {"jitalloc_mprotect", "mprotect"},
    {"jitalloc_persistent_alias", "persistent_alias"},
    {"asmjit_default", nullptr},
    {"asmjit_dual", nullptr},
    {"naive_mmap", nullptr},
    // The same first loads in a process that has started one more thread (asleep in a
    // loop) before them, as most JIT hosts have.
    {"jitalloc_proc_mem_threaded", "proc_mem"},
    {"jitalloc_temp_alias_threaded", "temp_alias"},
    {"asmjit_dual_threaded", nullptr},
};
constexpr const char kThreaded[] = "_threaded";

// ---- one fresh process ----

// What every measurement leaves out: the code buffer (64 KiB, faulted in on first use) and
// the clocks' first calls.
void warm_up() {
    (void)bench::make_function(kLen, 0);
    (void)now_us();
    (void)cpu_us();
}

int child(const std::string &full_name) {
    // "<contender>_threaded": the contender, with a second thread running first.
    std::string name = full_name;
    const bool threaded = name.size() > std::strlen(kThreaded) &&
                          name.compare(name.size() - std::strlen(kThreaded), std::string::npos,
                                       kThreaded) == 0;
    if (threaded)
        name.resize(name.size() - std::strlen(kThreaded));
    std::atomic<bool> stop{false};
    std::thread other;
    if (threaded)
        other = std::thread([&stop] {
            while (!stop.load(std::memory_order_relaxed)) {
                struct timespec pause = {0, 1000 * 1000};
                nanosleep(&pause, nullptr);
            }
        });
    struct Join {
        std::atomic<bool> &stop;
        std::thread &t;
        ~Join() {
            stop.store(true);
            if (t.joinable())
                t.join();
        }
    } join{stop, other};
    warm_up();
    void *fns[kLoads] = {};
    double t[kLoads + 1], cpu[kLoads + 1];
    std::unique_ptr<asmjit::JitAllocator> aj;
    cpu[0] = cpu_us();
    t[0] = now_us();
    if (name.rfind("jitalloc_", 0) == 0) {
        for (int i = 0; i < kLoads; i++) {
            fns[i] = jit_alloc(bench::make_function(kLen, i), kLen);
            t[i + 1] = now_us();
            cpu[i + 1] = cpu_us();
        }
    } else if (name.rfind("asmjit_", 0) == 0) {
        asmjit::JitAllocator::CreateParams p;
        p.options = name == "asmjit_dual" ? asmjit::JitAllocatorOptions::kUseDualMapping
                                          : asmjit::JitAllocatorOptions::kNone;
        aj = std::make_unique<asmjit::JitAllocator>(&p);
        for (int i = 0; i < kLoads; i++) {
            void *rx = nullptr, *rw = nullptr;
            if (aj->alloc(&rx, &rw, kLen) == asmjit::kErrorOk) {
                std::memcpy(rw, bench::make_function(kLen, i), kLen);
                asmjit::VirtMem::flushInstructionCache(rx, kLen);
                fns[i] = rx;
            }
            t[i + 1] = now_us();
            cpu[i + 1] = cpu_us();
        }
    } else if (name == "naive_mmap") {
        for (int i = 0; i < kLoads; i++) {
            void *p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p != MAP_FAILED) {
                std::memcpy(p, bench::make_function(kLen, i), kLen);
                fns[i] = mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0 ? p : nullptr;
            }
            t[i + 1] = now_us();
            cpu[i + 1] = cpu_us();
        }
    } else {
        std::fprintf(stderr, "unknown contender %s\n", name.c_str());
        return 2;
    }
    for (int i = 0; i < kLoads; i++)
        if (!fns[i] || reinterpret_cast<Fn>(fns[i])(1) != 1 + i) {
            std::fprintf(stderr, "%s: load %d failed\n", name.c_str(), i);
            return 1;
        }
    std::printf("%.2f %.2f %.2f %.2f\n", t[1] - t[0], t[kLoads] - t[0], cpu[1] - cpu[0],
                cpu[kLoads] - cpu[0]);
    return 0;
}

// The chunk and write steps of a first allocation, in the order jit_alloc runs them (no
// probe: the first allocation proves the writer). What jit_alloc does besides (the arena
// object, chunk metadata, the chunk map) is the first load minus these.
int breakdown(const std::string &writer_name) {
    jit_writer kind = JIT_WRITER_COUNT;
    for (int k = JIT_WRITER_PROC_MEM; k < JIT_WRITER_COUNT; k++)
        if (writer_name == jit_writer_name(static_cast<jit_writer>(k)))
            kind = static_cast<jit_writer>(k);
    const jitalloc::Writer *w = jitalloc::writer_for(kind);
    if (!w)
        return 2;
    jit_arena_options o;
    jit_arena_options_init(&o);
    warm_up();
    double t0 = cpu_us();
    uint8_t *at = jitalloc::reserve_range(jitalloc::make_placement(o), jitalloc::kChunkSize);
    double t1 = cpu_us();
    jitalloc::ChunkMapping m;
    size_t first = jitalloc::initial_exposure(jitalloc::kChunkSize, false, kLen);
    // As jit_alloc does: the chunk made for the first allocation is born holding its code
    // (Writer::map), so the code write after it only verifies it.
    const jitalloc::Writer::Piece code{{bench::make_function(kLen, 0), 0}, kLen};
    if (!at || w->map(m, at, jitalloc::kChunkSize, first, true, &code) != 0)
        return 1;
    double t2 = cpu_us();
    // jit_alloc's write of an allocation born with its code: a read-back (arena.cpp).
    int rc = std::memcmp(m.base, code.src.data, kLen) == 0
                 ? 0
                 : jitalloc::poke_fresh(*w, m, m.base, code.src.data, kLen);
    double t3 = cpu_us();
    if (rc || reinterpret_cast<Fn>(m.base)(1) != 1)
        return 1;
    std::printf("%.2f %.2f %.2f\n", t1 - t0, t2 - t1, t3 - t2);
    return 0;
}

// Huge-page share of resident code memory after 20 000 BPF-sized loads and as many
// churn steps (free a random one, load another) on the default arena.
int steady() {
    bench::CodeMemory before = bench::code_memory();
    std::mt19937_64 rng(42);
    std::vector<void *> live;
    constexpr size_t kLive = 20000;
    for (size_t i = 0; i < 2 * kLive; i++) {
        if (live.size() == kLive) {
            size_t j = rng() % live.size();
            if (jit_free(live[j]) != 0)
                return 1;
            live[j] = live.back();
            live.pop_back();
        }
        size_t len = bench::bpf_size(rng);
        void *p = jit_alloc(bench::make_function(len, 0), len);
        if (!p)
            return 1;
        live.push_back(p);
    }
    bench::CodeMemory after = bench::code_memory();
    double rss = static_cast<double>(after.rss - before.rss);
    double huge = static_cast<double>(after.huge - before.huge);
    std::printf("%.4f %.0f\n", rss > 0 ? huge / rss : 0, rss);
    return 0;
}

// ---- the parent ----

// Runs this program with args (and JITALLOC_WRITER=writer if set); its stdout.
bool run_child(const std::vector<std::string> &args, const char *writer, std::string &out) {
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    std::vector<std::string> env;
    for (char **e = environ; *e; e++)
        if (std::strncmp(*e, "JITALLOC_", 9) != 0)
            env.emplace_back(*e);
    if (writer)
        env.push_back(std::string("JITALLOC_WRITER=") + writer);
    std::vector<char *> argv, envp;
    for (const std::string &a : args)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    for (std::string &e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return false;
    }
    char buf[256];
    ssize_t n;
    out.clear();
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

double median(std::vector<double> v) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<double> parse(const std::string &s) {
    std::vector<double> v;
    const char *p = s.c_str();
    char *end;
    for (double d = std::strtod(p, &end); end != p; d = std::strtod(p, &end)) {
        v.push_back(d);
        p = end;
    }
    return v;
}

std::string json_list(const std::vector<double> &v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); i++) {
        char b[32];
        std::snprintf(b, sizeof b, "%s%.2f", i ? ", " : "", v[i]);
        s += b;
    }
    return s + "]";
}

int parent(int runs, const char *out_path, const char *commit) {
    std::map<std::string, std::vector<double>> first, ten, first_cpu, ten_cpu;
    std::map<std::string, std::vector<std::vector<double>>> pieces;
    std::map<std::string, std::vector<double>> steady_share;
    for (int r = 0; r < runs; r++) {
        for (const Contender &c : kContenders) {
            std::string out;
            if (!run_child({"cold", "--child", c.name}, c.writer, out)) {
                std::fprintf(stderr, "%s: child failed\n", c.name);
                continue;
            }
            std::vector<double> v = parse(out);
            if (v.size() == 4) {
                first[c.name].push_back(v[0]);
                ten[c.name].push_back(v[1]);
                first_cpu[c.name].push_back(v[2]);
                ten_cpu[c.name].push_back(v[3]);
            }
            if (c.writer && !std::strstr(c.name, kThreaded)) {
                if (run_child({"cold", "--breakdown", c.writer}, nullptr, out))
                    pieces[c.name].push_back(parse(out));
            }
        }
    }
    for (const Contender &c : kContenders) {
        if (!c.writer || std::strstr(c.name, kThreaded))
            continue;
        std::string out;
        if (run_child({"cold", "--steady"}, c.writer, out)) {
            std::vector<double> v = parse(out);
            if (!v.empty())
                steady_share[c.name].push_back(v[0]);
        }
    }
    double dual = median(first["asmjit_dual"]), dual_cpu = median(first_cpu["asmjit_dual"]);
    std::printf("| contender | first load (us) | first 10 loads (us) | first vs asmjit_dual | "
                "first load, CPU (us) | first 10, CPU (us) | first CPU vs asmjit_dual | "
                "huge-page share after churn |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const Contender &c : kContenders) {
        double f = median(first[c.name]), fc = median(first_cpu[c.name]);
        std::string share = "";
        if (!steady_share[c.name].empty()) {
            char b[32];
            std::snprintf(b, sizeof b, "%.0f%%", 100 * steady_share[c.name][0]);
            share = b;
        }
        std::printf("| %s | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx | %s |\n", c.name, f,
                    median(ten[c.name]), dual > 0 ? f / dual : 0, fc, median(ten_cpu[c.name]),
                    dual_cpu > 0 ? fc / dual_cpu : 0, share.c_str());
    }
    std::printf("\n| jitalloc writer | placement (CPU us) | map chunk, first step (CPU us) | "
                "first write (CPU us) | rest of the first load (CPU us) |\n"
                "|---|---:|---:|---:|---:|\n");
    for (const Contender &c : kContenders) {
        if (!c.writer || pieces[c.name].empty())
            continue;
        std::vector<double> col[3];
        for (const std::vector<double> &p : pieces[c.name])
            for (size_t i = 0; i < 3 && i < p.size(); i++)
                col[i].push_back(p[i]);
        double rest = median(first_cpu[c.name]) - median(col[0]) - median(col[1]) - median(col[2]);
        std::printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", c.writer, median(col[0]),
                    median(col[1]), median(col[2]), rest);
    }
    if (out_path) {
        FILE *f = std::fopen(out_path, "w");
        if (!f)
            return 1;
        char load[64] = "";
        if (FILE *l = std::fopen("/proc/loadavg", "r")) {
            if (!std::fgets(load, sizeof load, l))
                load[0] = 0;
            std::fclose(l);
            load[std::strcspn(load, "\n")] = 0;
        }
        std::fprintf(f, "{\n  \"commit\": \"%s\",\n  \"runs\": %d,\n  \"loadavg_end\": \"%s\",\n"
                        "  \"load_bytes\": %zu,\n  \"contenders\": {\n", commit, runs, load, kLen);
        bool firstc = true;
        for (const Contender &c : kContenders) {
            std::fprintf(f, "%s    \"%s\": {\"first_us\": %s, \"ten_us\": %s, \"first_cpu_us\": %s, "
                            "\"ten_cpu_us\": %s", firstc ? "" : ",\n", c.name,
                         json_list(first[c.name]).c_str(), json_list(ten[c.name]).c_str(),
                         json_list(first_cpu[c.name]).c_str(), json_list(ten_cpu[c.name]).c_str());
            firstc = false;
            if (c.writer) {
                std::fprintf(f, ", \"breakdown_us\": [");
                for (size_t i = 0; i < pieces[c.name].size(); i++)
                    std::fprintf(f, "%s%s", i ? ", " : "", json_list(pieces[c.name][i]).c_str());
                std::fprintf(f, "], \"huge_share_after_churn\": %s",
                             json_list(steady_share[c.name]).c_str());
            }
            std::fprintf(f, "}");
        }
        std::fprintf(f, "\n  },\n  \"breakdown_columns\": [\"placement\", \"map_chunk\", "
                        "\"first_write\"],\n  \"breakdown_clock\": \"cpu\"\n}\n");
        std::fclose(f);
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    int runs = 30;
    const char *out = nullptr, *commit = "unknown";
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--child" && i + 1 < argc)
            return child(argv[i + 1]);
        if (a == "--breakdown" && i + 1 < argc)
            return breakdown(argv[i + 1]);
        if (a == "--steady")
            return steady();
        if (a == "--runs" && i + 1 < argc)
            runs = std::atoi(argv[++i]);
        else if (a == "--out" && i + 1 < argc)
            out = argv[++i];
        else if (a == "--commit" && i + 1 < argc)
            commit = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--runs N] [--out FILE.json] [--commit ID]\n", argv[0]);
            return 2;
        }
    }
    return parent(runs, out, commit);
}
