//===- CPUFp8.h - The CPU backend's fp8 experts -----------------*- C++ -*-===//
//
// moe.routed_experts and moe.shared_experts with f8e4m3 (f8E4M3FN) expert
// weights and fp32 128x128 block scales, bf16 activations: the fp8 numerics
// contract of kernels/moe_kernels.h (docs/runtime.md states the same), on
// the fp8 workspaces of include/moe-runtime/WorkspaceLayout.h. Called by
// CPUBackend.cpp for ExpertWeights::fp8(); private to lib/Runtime.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_LIB_RUNTIME_CPUFP8_H
#define MOE_LIB_RUNTIME_CPUFP8_H

#include "Backend.h"

#include <string>

namespace moert {

/// Routing metadata of the routed experts, both CPU paths: a stable counting
/// sort of the `pairs` (token, slot) pairs by expert id (each in [0, E)).
/// `offsets` (E+1) gets each expert's first sorted position, `sortedPairs`
/// the pair at each position, `pairPositions` each pair's position.
void sortPairsByExpert(const int32_t *ids, int64_t pairs, int64_t E,
                       int32_t *offsets, int32_t *sortedPairs,
                       int32_t *pairPositions);

/// Routed experts, fp8 weights. The caller has checked that every topk id is
/// in [0, E) (nothing is written otherwise). Reads all of `hidden` before it
/// writes anything, so `output` may equal `hidden`.
moert_status cpuRoutedExpertsFp8(const RoutedExpertsArgs &args,
                                 std::string &error);

/// Shared experts, fp8 weights. `output` may equal `hidden`.
moert_status cpuSharedExpertsFp8(const SharedExpertsArgs &args,
                                 std::string &error);

} // namespace moert

#endif // MOE_LIB_RUNTIME_CPUFP8_H
