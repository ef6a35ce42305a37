// jitalloc::orc::configure: what LLJIT needs to link on the jitalloc memory manager
// (see include/jitalloc/orc.hpp for why each setting is there).
#include <jitalloc/orc.hpp>

#include <llvm/ExecutionEngine/JITLink/EHFrameSupport.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>

namespace jitalloc::orc {

llvm::Error configure(llvm::orc::LLJITBuilder &B, MemoryManager &memory, EHFrames eh_frames) {
    auto &JTMB = B.getJITTargetMachineBuilder();
    if (!JTMB) {
        auto host = llvm::orc::JITTargetMachineBuilder::detectHost();
        if (!host)
            return host.takeError();
        JTMB = std::move(*host);
    }
    JTMB->setRelocationModel(llvm::Reloc::PIC_);
    JTMB->setCodeModel(llvm::CodeModel::Small);
    B.setObjectLinkingLayerCreator(
        [&memory, eh_frames](llvm::orc::ExecutionSession &ES, const llvm::Triple &)
            -> llvm::Expected<std::unique_ptr<llvm::orc::ObjectLayer>> {
            auto layer = std::make_unique<llvm::orc::ObjectLinkingLayer>(ES, memory);
            if (eh_frames == EHFrames::Register)
                layer->addPlugin(std::make_unique<llvm::orc::EHFrameRegistrationPlugin>(
                    ES, std::make_unique<llvm::jitlink::InProcessEHFrameRegistrar>()));
            return layer;
        });
    return llvm::Error::success();
}

}  // namespace jitalloc::orc
