// ORC benchmark (issue 12): N modules of one small function each, linked through LLJIT
// (JITLink ObjectLinkingLayer) with each memory manager, N = 1 000 and 10 000:
//   jitalloc           jitalloc::orc::MemoryManager (default writer)
//   inprocess          LLVM's InProcessMemoryManager (LLJIT's JITLink default)
//   mapper_inprocess   MapperJITLinkMemoryManager + InProcessMemoryMapper
//   mapper_shared      MapperJITLinkMemoryManager + SharedMemoryMapper, in-process through
//                      SelfExecutorProcessControl and ExecutorSharedMemoryMapperService
// The modules are compiled once, to objects (PIC, small code model, default codegen
// optimisation), before any contender runs: every contender links the same bytes.
// Each (contender, N) runs in a forked child of its own, so address space and resident
// memory start equal. Measured per run:
//   link     CPU time of addObjectFile + lookup per module (the thread that links, ORC's
//            in-place dispatcher), and its wall time;
//   mappings /proc/self/maps lines added, and the mappings holding the graphs' memory;
//   memory   mapped and resident bytes (smaps Rss) of the mappings holding the graphs'
//            memory, and the share of resident code bytes on huge pages
//            (AnonHugePages + ShmemPmdMapped over Rss of the mappings holding code);
//   calls    ns per call (CPU time) calling every function once per round, in a fixed
//            random order, median of the repetitions.
// Which mappings hold the graphs' memory is learned from the blocks JITLink placed: the
// contender's manager is wrapped in a recorder that notes each block's address range.
//
//   jitalloc_orc_bench [--quick] [--out FILE.json] [--commit ID]
#include <jitalloc/orc.hpp>

#include "small_modules.h"

#include <llvm/ExecutionEngine/JITLink/EHFrameSupport.h>
#include <llvm/ExecutionEngine/JITLink/JITLink.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/ExecutorProcessControl.h>
#include <llvm/ExecutionEngine/Orc/MapperJITLinkMemoryManager.h>
#include <llvm/ExecutionEngine/Orc/MemoryMapper.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/Orc/Shared/OrcRTBridge.h>
#include <llvm/ExecutionEngine/Orc/TargetProcess/ExecutorSharedMemoryMapperService.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace jl = llvm::jitlink;
namespace lo = llvm::orc;

namespace {

constexpr size_t kMapperReservation = size_t{64} << 20;
const char *const kContenders[] = {"jitalloc", "inprocess", "mapper_inprocess", "mapper_shared"};

double cpu_now() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

double wall_now() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// The first three fields of /proc/loadavg.
std::string loadavg() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
}

std::string utc_now() {
    char b[32];
    time_t t = time(nullptr);
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    return b;
}

// ---------------------------------------------------------------- what the graphs use

enum class Kind { Code, ReadOnly, ReadWrite };

struct Range {
    uintptr_t lo, hi;
    Kind kind;
};

Kind kind_of(lo::MemProt prot) {
    auto bits = static_cast<unsigned>(prot);
    if (bits & static_cast<unsigned>(lo::MemProt::Exec))
        return Kind::Code;
    return bits & static_cast<unsigned>(lo::MemProt::Write) ? Kind::ReadWrite : Kind::ReadOnly;
}

// Forwards to the contender's manager and notes where JITLink put every block.
class Recorder final : public jl::JITLinkMemoryManager {
public:
    explicit Recorder(jl::JITLinkMemoryManager &inner) : inner_(inner) {}
    void allocate(const jl::JITLinkDylib *JD, jl::LinkGraph &G, OnAllocatedFunction OnAllocated) override {
        inner_.allocate(JD, G, [this, &G, OnAllocated = std::move(OnAllocated)](AllocResult r) mutable {
            if (r) {
                std::lock_guard<std::mutex> g(lock_);
                for (jl::Section &S : G.sections())
                    for (jl::Block *B : S.blocks())
                        if (B->getSize())
                            ranges_.push_back({B->getAddress().getValue(),
                                               B->getAddress().getValue() + B->getSize(),
                                               kind_of(S.getMemProt())});
            }
            OnAllocated(std::move(r));
        });
    }
    using JITLinkMemoryManager::allocate;
    void deallocate(std::vector<FinalizedAlloc> Allocs, OnDeallocatedFunction On) override {
        inner_.deallocate(std::move(Allocs), std::move(On));
    }
    using JITLinkMemoryManager::deallocate;
    std::vector<Range> ranges() {
        std::lock_guard<std::mutex> g(lock_);
        return ranges_;
    }

private:
    jl::JITLinkMemoryManager &inner_;
    std::mutex lock_;
    std::vector<Range> ranges_;
};

struct Vma {
    uintptr_t lo = 0, hi = 0;
    uint64_t rss = 0, huge = 0;  // bytes
};

std::vector<Vma> read_smaps() {
    std::vector<Vma> out;
    std::ifstream f("/proc/self/smaps");
    for (std::string line; std::getline(f, line);) {
        unsigned long a, b;
        char dash;
        // "start-end perms ..." opens a mapping; "Name:  N kB" lines describe it.
        if (std::sscanf(line.c_str(), "%lx%c%lx", &a, &dash, &b) == 3 && dash == '-') {
            out.push_back({a, b});
            continue;
        }
        unsigned long kb = 0;
        if (out.empty())
            continue;
        if (std::sscanf(line.c_str(), "Rss: %lu kB", &kb) == 1)
            out.back().rss = kb * 1024;
        else if (std::sscanf(line.c_str(), "AnonHugePages: %lu kB", &kb) == 1 ||
                 std::sscanf(line.c_str(), "ShmemPmdMapped: %lu kB", &kb) == 1)
            out.back().huge += kb * 1024;
    }
    return out;
}

size_t count_maps() {
    std::ifstream f("/proc/self/maps");
    size_t n = 0;
    for (std::string line; std::getline(f, line);)
        n++;
    return n;
}

// ---------------------------------------------------------------- contenders

struct Result {
    std::string contender;
    unsigned n = 0;
    double link_cpu_us = 0, link_wall_us = 0, ns_per_call = 0;
    uint64_t maps_added = 0, holding_maps = 0, holding_code_maps = 0;
    uint64_t mapped = 0, resident = 0, code_resident = 0, code_huge = 0;
    uint64_t bytes[3] = {};  // block bytes JITLink placed, by Kind
    std::string error;
};

struct Setup {
    std::unique_ptr<jl::JITLinkMemoryManager> manager;
    std::unique_ptr<lo::ExecutorProcessControl> mapper_epc;  // mapper_shared's executor side
    std::unique_ptr<lo::rt_bootstrap::ExecutorSharedMemoryMapperService> mapper_service;
};

llvm::Expected<Setup> make_manager(const std::string &name) {
    Setup s;
    if (name == "jitalloc") {
        auto m = jitalloc::orc::MemoryManager::Create();
        if (!m)
            return m.takeError();
        s.manager = std::move(*m);
    } else if (name == "inprocess") {
        auto m = jl::InProcessMemoryManager::Create();
        if (!m)
            return m.takeError();
        s.manager = std::move(*m);
    } else if (name == "mapper_inprocess") {
        auto m = lo::MapperJITLinkMemoryManager::CreateWithMapper<lo::InProcessMemoryMapper>(
            kMapperReservation);
        if (!m)
            return m.takeError();
        s.manager = std::move(*m);
    } else {
        auto epc = lo::SelfExecutorProcessControl::Create();
        if (!epc)
            return epc.takeError();
        s.mapper_epc = std::move(*epc);
        s.mapper_service = std::make_unique<lo::rt_bootstrap::ExecutorSharedMemoryMapperService>();
        llvm::StringMap<lo::ExecutorAddr> syms;
        s.mapper_service->addBootstrapSymbols(syms);
        lo::SharedMemoryMapper::SymbolAddrs sa;
        sa.Instance = syms[lo::rt::ExecutorSharedMemoryMapperServiceInstanceName];
        sa.Reserve = syms[lo::rt::ExecutorSharedMemoryMapperServiceReserveWrapperName];
        sa.Initialize = syms[lo::rt::ExecutorSharedMemoryMapperServiceInitializeWrapperName];
        sa.Deinitialize = syms[lo::rt::ExecutorSharedMemoryMapperServiceDeinitializeWrapperName];
        sa.Release = syms[lo::rt::ExecutorSharedMemoryMapperServiceReleaseWrapperName];
        auto mapper = lo::SharedMemoryMapper::Create(*s.mapper_epc, sa);
        if (!mapper)
            return mapper.takeError();
        s.manager = std::make_unique<lo::MapperJITLinkMemoryManager>(kMapperReservation,
                                                                     std::move(*mapper));
    }
    return s;
}

lo::JITTargetMachineBuilder target() {
    auto jtmb = llvm::cantFail(lo::JITTargetMachineBuilder::detectHost());
    jtmb.setRelocationModel(llvm::Reloc::PIC_);
    jtmb.setCodeModel(llvm::CodeModel::Small);
    return jtmb;
}

using IntFn = int (*)(int);

Result run_one(const std::string &contender, unsigned n, const std::vector<std::string> &objects,
               int call_reps) {
    Result r;
    r.contender = contender;
    r.n = n;
    auto fail = [&](llvm::Error e) {
        r.error = llvm::toString(std::move(e));
        return r;
    };
    const size_t maps_before = count_maps();
    auto setup = make_manager(contender);
    if (!setup)
        return fail(setup.takeError());
    Recorder recorder(*setup->manager);
    lo::LLJITBuilder b;
    b.setJITTargetMachineBuilder(target());
    b.setObjectLinkingLayerCreator([&](lo::ExecutionSession &ES, const llvm::Triple &)
                                       -> llvm::Expected<std::unique_ptr<lo::ObjectLayer>> {
        auto layer = std::make_unique<lo::ObjectLinkingLayer>(ES, recorder);
        layer->addPlugin(std::make_unique<lo::EHFrameRegistrationPlugin>(
            ES, std::make_unique<jl::InProcessEHFrameRegistrar>()));
        return layer;
    });
    auto jit = b.create();
    if (!jit)
        return fail(jit.takeError());
    std::vector<IntFn> fns(n);
    double c0 = cpu_now(), w0 = wall_now();
    for (unsigned i = 0; i < n; i++) {
        if (llvm::Error e = (*jit)->addObjectFile(
                llvm::MemoryBuffer::getMemBuffer(objects[i], orct::function_name(i), false)))
            return fail(std::move(e));
        auto addr = (*jit)->lookup(orct::function_name(i));
        if (!addr)
            return fail(addr.takeError());
        fns[i] = addr->toPtr<IntFn>();
    }
    r.link_cpu_us = (cpu_now() - c0) * 1e6 / n;
    r.link_wall_us = (wall_now() - w0) * 1e6 / n;
    for (unsigned i = 0; i < n; i++)
        if (fns[i](3) != orct::expected_result(i, 3, 0)) {
            r.error = "wrong result from " + orct::function_name(i);
            return r;
        }

    // Memory: the mappings holding any block of any graph.
    r.maps_added = count_maps() - maps_before;
    std::vector<Range> ranges = recorder.ranges();
    std::vector<Vma> vmas = read_smaps();
    std::set<size_t> holding, holding_code;
    for (const Range &g : ranges) {
        r.bytes[static_cast<int>(g.kind)] += g.hi - g.lo;
        auto it = std::upper_bound(vmas.begin(), vmas.end(), g.lo,
                                   [](uintptr_t a, const Vma &v) { return a < v.lo; });
        if (it == vmas.begin())
            continue;
        size_t idx = static_cast<size_t>(std::prev(it) - vmas.begin());
        if (g.lo < vmas[idx].hi) {
            holding.insert(idx);
            if (g.kind == Kind::Code)
                holding_code.insert(idx);
        }
    }
    for (size_t i : holding) {
        r.mapped += vmas[i].hi - vmas[i].lo;
        r.resident += vmas[i].rss;
    }
    for (size_t i : holding_code) {
        r.code_resident += vmas[i].rss;
        r.code_huge += vmas[i].huge;
    }
    r.holding_maps = holding.size();
    r.holding_code_maps = holding_code.size();

    // Calls: every function once per round, in one fixed random order.
    std::vector<IntFn> order = fns;
    std::shuffle(order.begin(), order.end(), std::mt19937(12345));
    const unsigned rounds = std::max(1u, 2000000u / n);
    std::vector<double> per_call;
    volatile int sink = 0;
    for (int rep = 0; rep < call_reps; rep++) {
        double t0 = cpu_now();
        int acc = 0;
        for (unsigned round = 0; round < rounds; round++)
            for (IntFn f : order)
                acc += f(round);
        sink = sink + acc;
        per_call.push_back((cpu_now() - t0) * 1e9 / (double(rounds) * n));
    }
    std::sort(per_call.begin(), per_call.end());
    r.ns_per_call = per_call[per_call.size() / 2];
    return r;
}

std::string json_escaped(const std::string &text) {
    std::string out;
    for (char c : text)
        if (c == '"' || c == '\\')
            out += {'\\', c};
        else
            out += c == '\n' ? ' ' : c;
    return out;
}

std::string to_json(const Result &r) {
    char b[2048];
    std::snprintf(b, sizeof b,
                  "{\"contender\": \"%s\", \"n\": %u, \"link_cpu_us\": %.2f, \"link_wall_us\": %.2f, "
                  "\"ns_per_call\": %.3f, \"maps_added\": %" PRIu64 ", \"holding_maps\": %" PRIu64
                  ", \"holding_code_maps\": %" PRIu64 ", \"mapped\": %" PRIu64 ", \"resident\": %" PRIu64
                  ", \"code_resident\": %" PRIu64 ", \"code_huge\": %" PRIu64 ", \"code_bytes\": %" PRIu64
                  ", \"ro_bytes\": %" PRIu64 ", \"rw_bytes\": %" PRIu64 ", \"error\": \"%s\"}",
                  r.contender.c_str(), r.n, r.link_cpu_us, r.link_wall_us, r.ns_per_call, r.maps_added,
                  r.holding_maps, r.holding_code_maps, r.mapped, r.resident, r.code_resident,
                  r.code_huge, r.bytes[0], r.bytes[1], r.bytes[2], json_escaped(r.error.substr(0, 500)).c_str());
    return b;
}

// Runs one measurement in a child process; its JSON comes back through a pipe.
std::string run_in_child(const std::string &contender, unsigned n,
                         const std::vector<std::string> &objects, int call_reps) {
    int fds[2];
    if (pipe(fds) != 0)
        return "";
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        std::string j = to_json(run_one(contender, n, objects, call_reps));
        ssize_t unused = write(fds[1], j.data(), j.size());
        (void)unused;
        _exit(0);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    for (ssize_t k; (k = read(fds[0], buf, sizeof buf)) > 0;)
        out.append(buf, static_cast<size_t>(k));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (out.empty()) {
        Result r;
        r.contender = contender;
        r.n = n;
        r.error = "child died (status " + std::to_string(status) + ")";
        out = to_json(r);
    }
    return out;
}

}  // namespace

int main(int argc, char **argv) {
    bool quick = false;
    std::string out_path = "orc.json", commit = "unknown";
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (std::strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else if (std::strcmp(argv[i], "--commit") == 0 && i + 1 < argc)
            commit = argv[++i];
        else {
            std::fprintf(stderr, "usage: jitalloc_orc_bench [--quick] [--out FILE.json] [--commit ID]\n");
            return 2;
        }
    }
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();

    const std::string load_start = loadavg();
    const std::vector<unsigned> sizes = {1000, 10000};
    const unsigned max_n = sizes.back();
    const int call_reps = quick ? 3 : 7;
    std::fprintf(stderr, "orc bench: compiling %u modules\n", max_n);
    auto tm = llvm::cantFail(target().createTargetMachine());
    lo::SimpleCompiler compile(*tm);
    std::vector<std::string> objects;
    double c0 = cpu_now();
    for (unsigned i = 0; i < max_n; i++) {
        lo::ThreadSafeModule m = orct::small_module(i, 0);
        auto obj = m.withModuleDo([&](llvm::Module &mod) {
            mod.setDataLayout(tm->createDataLayout());
            return compile(mod);
        });
        if (!obj) {
            std::fprintf(stderr, "compile: %s\n", llvm::toString(obj.takeError()).c_str());
            return 1;
        }
        objects.emplace_back((*obj)->getBufferStart(), (*obj)->getBufferSize());
    }
    double compile_s = cpu_now() - c0;

    std::string json = "{\n  \"date\": \"" + utc_now() + "\",\n  \"loadavg_start\": \"" +
                       load_start + "\",\n  \"commit\": \"" + commit + "\",\n  \"compile_cpu_s\": " +
                       std::to_string(compile_s) +
                       ",\n  \"object_bytes\": " + std::to_string(objects[0].size()) +
                       ",\n  \"mapper_reservation\": " + std::to_string(kMapperReservation) +
                       ",\n  \"call_repetitions\": " + std::to_string(call_reps) +
                       ",\n  \"results\": [\n";
    bool first = true;
    for (unsigned n : sizes)
        for (const char *c : kContenders) {
            std::fprintf(stderr, "orc bench: %s, %u modules\n", c, n);
            json += (first ? "    " : ",\n    ") + run_in_child(c, n, objects, call_reps);
            first = false;
        }
    json += "\n  ],\n  \"loadavg_end\": \"" + loadavg() + "\"\n}\n";
    std::ofstream(out_path) << json;
    std::fputs(json.c_str(), stdout);
    return 0;
}
