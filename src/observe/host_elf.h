// The ELF machine of the code this library generates and describes (GDB symbol files,
// perf jitdump headers).
#pragma once

#include <elf.h>

#include <cstdint>

namespace jitalloc {

#if defined(__x86_64__)
constexpr uint16_t kHostElfMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kHostElfMachine = EM_AARCH64;
#else
#error "unsupported architecture"
#endif

}  // namespace jitalloc
