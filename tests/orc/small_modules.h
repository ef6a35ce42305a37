// Many small IR modules of one function each, for the ORC tests and the ORC benchmark:
//   define i32 @f<i>(i32 %x)  returns x + i, or, every `chain`-th function (i > 0),
//   f<i-1>(x) + i: a call into the previous module, resolved across graphs.
#pragma once

#include <llvm/AsmParser/Parser.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/SourceMgr.h>

#include <cstdio>
#include <memory>
#include <string>

namespace orct {

inline std::string function_name(unsigned i) { return "f" + std::to_string(i); }

inline bool calls_previous(unsigned i, unsigned chain) { return chain && i > 0 && i % chain == 0; }

// What f<i>(x) returns.
inline int expected_result(unsigned i, int x, unsigned chain) {
    int r = x + static_cast<int>(i);
    while (calls_previous(i, chain))
        r += static_cast<int>(--i);
    return r;
}

inline std::string small_function_ir(unsigned i, unsigned chain) {
    std::string f = "@" + function_name(i);
    if (!calls_previous(i, chain))
        return "define i32 " + f + "(i32 %x) {\n  %r = add i32 %x, " + std::to_string(i) +
               "\n  ret i32 %r\n}\n";
    std::string prev = "@" + function_name(i - 1);
    return "declare i32 " + prev + "(i32)\ndefine i32 " + f +
           "(i32 %x) {\n  %a = call i32 " + prev + "(i32 %x)\n  %r = add i32 %a, " +
           std::to_string(i) + "\n  ret i32 %r\n}\n";
}

// Parses IR text into a module of its own context; aborts on a parse error (test input).
inline llvm::orc::ThreadSafeModule parse_module(const std::string &ir, const std::string &name) {
    auto context = std::make_unique<llvm::LLVMContext>();
    llvm::SMDiagnostic diag;
    auto module = llvm::parseAssemblyString(ir, diag, *context);
    if (!module) {
        std::fprintf(stderr, "bad test IR for %s: %s\n", name.c_str(), diag.getMessage().str().c_str());
        std::abort();
    }
    module->setModuleIdentifier(name);
    return llvm::orc::ThreadSafeModule(std::move(module), std::move(context));
}

inline llvm::orc::ThreadSafeModule small_module(unsigned i, unsigned chain) {
    // Appended, not "m" + std::to_string(i): g++ 12 at -O3 reports a false -Wrestrict in
    // the inlined operator+ (GCC bug 105329).
    std::string name = "m";
    name += std::to_string(i);
    return parse_module(small_function_ir(i, chain), name);
}

}  // namespace orct
