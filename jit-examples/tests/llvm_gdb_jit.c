/* libLLVM-16 as a third JIT runtime in the process: compiles `int llvm_answer(void)`
 * (returns 9) with ORC's LLJIT on an RTDyld object layer carrying LLVM's GDB registration
 * listener, so LLVM announces it in the __jit_debug_descriptor that libLLVM-16.so defines.
 * Built only where LLVM 16's C headers and library are installed (llvm-16-dev). */
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/OrcEE.h>
#include <llvm-c/Target.h>

#include <stdio.h>

static LLVMOrcObjectLayerRef make_layer(void *ctx, LLVMOrcExecutionSessionRef es, const char *triple) {
    (void)ctx;
    (void)triple;
    LLVMOrcObjectLayerRef layer = LLVMOrcCreateRTDyldObjectLinkingLayerWithSectionMemoryManager(es);
    LLVMOrcRTDyldObjectLinkingLayerRegisterJITEventListener(layer, LLVMCreateGDBRegistrationListener());
    return layer;
}

static int failed(const char *what, LLVMErrorRef err) {
    char *msg = LLVMGetErrorMessage(err);
    fprintf(stderr, "llvm_gdb_jit: %s: %s\n", what, msg);
    LLVMDisposeErrorMessage(msg);
    return 1;
}

/* The compiled llvm_answer, or NULL. The JIT stays alive for the whole process. */
int (*llvm_gdb_jit_compile(void))(void) {
    static LLVMOrcLLJITRef jit;
    LLVMErrorRef err;
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter())
        return NULL;
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator(builder, make_layer, NULL);
    if ((err = LLVMOrcCreateLLJIT(&jit, builder)) && failed("LLJIT", err))
        return NULL;

    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMContextRef c = LLVMOrcThreadSafeContextGetContext(tsc);
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("llvm_answer", c);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c);
    LLVMValueRef f = LLVMAddFunction(m, "llvm_answer", LLVMFunctionType(i32, NULL, 0, 0));
    LLVMBuilderRef ir = LLVMCreateBuilderInContext(c);
    LLVMPositionBuilderAtEnd(ir, LLVMAppendBasicBlockInContext(c, f, "entry"));
    LLVMBuildRet(ir, LLVMConstInt(i32, 9, 0));
    LLVMDisposeBuilder(ir);
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    if ((err = LLVMOrcLLJITAddLLVMIRModule(jit, LLVMOrcLLJITGetMainJITDylib(jit), tsm)) &&
        failed("add module", err))
        return NULL;
    LLVMOrcExecutorAddress addr = 0;
    if ((err = LLVMOrcLLJITLookup(jit, &addr, "llvm_answer")) && failed("lookup", err))
        return NULL;
    return (int (*)(void))addr;
}

/* Any address inside libLLVM-16.so, to find its own descriptor. */
const void *llvm_gdb_jit_inside_libllvm(void) { return (const void *)&LLVMContextCreate; }
