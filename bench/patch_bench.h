// Live-patching benchmarks (patch/...): see patch_bench.cpp.
#pragma once

namespace bench {

// Registers the patch/ benchmarks; quick: shorter minimum times.
void register_patch(bool quick);

}  // namespace bench
