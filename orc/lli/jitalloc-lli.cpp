// jitalloc-lli: runs an LLVM IR program in LLJIT (JITLink) on jitalloc's ORC memory
// manager, with the host process's symbols (libc, libstdc++, libm, libgcc_s) visible:
//
//   jitalloc-lli [--writer W] [--module EXTRA.bc]... [--stats] PROG.ll|PROG.bc [ARGS...]
//
// Static constructors run before main, static destructors and atexit handlers of the
// JIT code after it; the exit status is main's. Extra modules are linked into the same
// JITDylib (function pointers and calls between modules). --stats prints the memory
// manager's statistics to stderr at the end. Errors: a message on stderr, status 125.
#include <jitalloc/orc.hpp>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/TargetProcess/TargetExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kToolFailure = 125;  // as env(1) and friends: the runner itself failed

int usage() {
    std::fprintf(stderr,
                 "usage: jitalloc-lli [--writer W] [--module EXTRA.bc]... [--stats] "
                 "PROG.ll|PROG.bc [ARGS...]\n"
                 "  W: auto proc_mem memfd temp_alias persistent_alias mprotect\n");
    return kToolFailure;
}

int fail(llvm::Error err, const char *what) {
    llvm::errs() << "jitalloc-lli: " << what << ": " << llvm::toString(std::move(err)) << "\n";
    return kToolFailure;
}

bool parse_writer(const char *name, jitalloc::Writer *out) {
    for (int w = JIT_WRITER_AUTO; w < JIT_WRITER_COUNT; w++)
        if (std::strcmp(name, jit_writer_name(static_cast<jit_writer>(w))) == 0) {
            *out = static_cast<jitalloc::Writer>(w);
            return true;
        }
    return std::strcmp(name, "auto") == 0 && (*out = jitalloc::Writer::Auto, true);
}

void print_stats(const jitalloc::orc::Stats &s) {
    std::fprintf(stderr, "jitalloc-lli: graphs %" PRIu64 " live, %" PRIu64 " linked\n", s.graphs,
                 s.total_graphs);
    auto data = [](const char *what, const jitalloc::orc::DataStats &d) {
        std::fprintf(stderr,
                     "  %s data: blocks %" PRIu64 "  mapped %" PRIu64 " KiB  in use %" PRIu64
                     " B  resident %" PRIu64 " KiB\n",
                     what, d.blocks, d.bytes_mapped / 1024, d.bytes_in_use, d.bytes_resident / 1024);
    };
    data("read-write", s.read_write);
    data("read-only ", s.read_only);
    jit_stats_print(stderr, &s.code);
}

}  // namespace

int main(int argc, char **argv) {
    jitalloc::orc::Options options;
    std::vector<std::string> extra_modules;
    bool want_stats = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (std::strcmp(argv[i], "--writer") == 0 && i + 1 < argc) {
            if (!parse_writer(argv[++i], &options.writer)) {
                std::fprintf(stderr, "jitalloc-lli: unknown writer '%s'\n", argv[i]);
                return usage();
            }
        } else if (std::strcmp(argv[i], "--module") == 0 && i + 1 < argc) {
            extra_modules.push_back(argv[++i]);
        } else if (std::strcmp(argv[i], "--stats") == 0) {
            want_stats = true;
        } else {
            return usage();
        }
    }
    if (i >= argc)
        return usage();
    const std::string program = argv[i++];
    std::vector<std::string> args(argv + i, argv + argc);

    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();

    auto memory = jitalloc::orc::MemoryManager::Create(options);
    if (!memory)
        return fail(memory.takeError(), "memory manager");
    int status = kToolFailure;
    {
        llvm::orc::LLJITBuilder builder;
        if (llvm::Error err = jitalloc::orc::configure(builder, **memory))
            return fail(std::move(err), "configuring LLJIT");
        auto jit = builder.create();
        if (!jit)
            return fail(jit.takeError(), "creating LLJIT");
        llvm::orc::JITDylib &main_jd = (*jit)->getMainJITDylib();
        auto host = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
            (*jit)->getDataLayout().getGlobalPrefix());
        if (!host)
            return fail(host.takeError(), "host symbols");
        main_jd.addGenerator(std::move(*host));

        llvm::orc::ThreadSafeContext context(std::make_unique<llvm::LLVMContext>());
        std::vector<std::string> modules = {program};
        modules.insert(modules.end(), extra_modules.begin(), extra_modules.end());
        for (const std::string &path : modules) {
            llvm::SMDiagnostic diag;
            auto module = llvm::parseIRFile(path, diag, *context.getContext());
            if (!module) {
                diag.print("jitalloc-lli", llvm::errs());
                return kToolFailure;
            }
            if (llvm::Error err = (*jit)->addIRModule(
                    llvm::orc::ThreadSafeModule(std::move(module), context)))
                return fail(std::move(err), path.c_str());
        }
        auto main_addr = (*jit)->lookup("main");
        if (!main_addr)
            return fail(main_addr.takeError(), "looking up main");
        if (llvm::Error err = (*jit)->initialize(main_jd))
            return fail(std::move(err), "running static constructors");
        status = llvm::orc::runAsMain(main_addr->toPtr<int (*)(int, char *[])>(), args, program);
        std::fflush(nullptr);
        if (llvm::Error err = (*jit)->deinitialize(main_jd))
            return fail(std::move(err), "running static destructors");
        std::fflush(nullptr);
        if (want_stats)
            print_stats((*memory)->stats());
    }
    return status;
}
