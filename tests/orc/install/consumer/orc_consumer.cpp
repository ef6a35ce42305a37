// The README's "Using it from LLVM ORC" lines, against the installed package.
#include <jitalloc/orc.hpp>

#include <llvm/AsmParser/Parser.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>

#include <cstdio>

int main() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    auto MM = llvm::cantFail(jitalloc::orc::MemoryManager::Create());
    llvm::orc::LLJITBuilder B;
    llvm::cantFail(jitalloc::orc::configure(B, *MM));
    auto J = llvm::cantFail(B.create());

    auto context = std::make_unique<llvm::LLVMContext>();
    llvm::SMDiagnostic diag;
    auto module = llvm::parseAssemblyString(
        "define i32 @triple(i32 %x) {\n  %r = mul i32 %x, 3\n  ret i32 %r\n}\n", diag, *context);
    llvm::cantFail(J->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context))));
    auto triple = llvm::cantFail(J->lookup("triple")).toPtr<int (*)(int)>();
    int r = triple(14);
    jitalloc::orc::Stats s = MM->stats();
    std::printf("triple(14) = %d from the installed jitalloc-orc, %llu graph(s), writer %s\n", r,
                static_cast<unsigned long long>(s.graphs), s.code.writer_name);
    return r == 42 ? 0 : 1;
}
