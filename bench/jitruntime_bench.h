// jitalloc::JitRuntime::add on batches against its previous path and asmjit's runtime
// (jitruntime_bench.cpp).
#pragma once

namespace bench {

void register_jitruntime(bool quick);

}  // namespace bench
