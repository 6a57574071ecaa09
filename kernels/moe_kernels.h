//===- moe_kernels.h - CUDA kernels of the moe ops: host launchers --------===//
//
// Plain C++ launchers for every moe op. All pointers are device pointers to
// row-major, contiguous tensors; every launcher enqueues work on `stream` and
// returns without synchronising. Launchers never exit or abort: they return a
// cudaError_t (cudaSuccess, cudaErrorInvalidValue for bad arguments,
// cudaErrorNotSupported for unsupported dtype/shape combinations, the CUDA
// error of a failed call, or cudaErrorUnknown for a cuBLAS failure); a text
// describing the last failure of the calling thread is in lastErrorMessage().
//
// Numerics contract (the CPU reference implements exactly this):
//   * GEMMs take bf16 (or f16) operands and accumulate in fp32.
//   * routed/shared experts: act = round(silu(g) * u) with g, u the fp32
//     accumulators and silu(g) = g / (1 + exp(-g)) in fp32; the down
//     projection of each (token, slot) pair is rounded to the data type
//     (partials); the combine sums topk_weight * partial in fp32 in slot order
//     j = 0..K-1 (product and sum each rounded to fp32, no FMA) and rounds
//     once. The shared experts' down projection is rounded once.
//   * add: out = round(fp32(scale * lhs) + rhs), no FMA.
//   * Everything is deterministic: no floating-point atomics anywhere, the
//     same inputs give the same bytes.
//
// Workspaces: routedExperts and sharedExperts take `workspace` of at least the
// bytes given by include/moe-runtime/Workspace.h (routedExpertsWorkspaceBytes /
// sharedExpertsWorkspaceBytes below) and carve 256-byte-aligned sub-buffers
// from it in the formula's order.
//
// Launch configurations (configs.h): every launcher takes an optional
// KernelConfigs. Without one, each kernel launch uses the heuristic's choice
// for its shape (chooseGemmConfig / chooseLaunchConfig) with the rules of the
// process-wide tuning table (loadTuningFile) applied, if one is loaded. The
// choice never changes the numerics contract's rounding points; the GEMM
// implementations differ only in the fp32 accumulation order.
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_MOE_KERNELS_H
#define MOE_KERNELS_MOE_KERNELS_H

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "configs.h"

struct cublasContext;
typedef struct cublasContext *cublasHandle_t;

namespace moek {

enum class Scoring : int { Softmax = 0, Sigmoid = 1 };

struct TopKParams {
  int k = 8;
  Scoring scoring = Scoring::Softmax;
  int nGroup = 1;     // experts form nGroup equal groups
  int topkGroup = 1;  // only experts of the best topkGroup groups are eligible
  bool renormalize = true;
  float routedScalingFactor = 1.0f;
};

/// Text describing the last failure on this thread ("" when none).
const char *lastErrorMessage();

//===--- moe.gate -----------------------------------------------------------===//
/// logits[T, E] (fp32) = hidden[T, H] x gate_weight[E, H]^T, fp32 accumulation
/// (cuBLAS). `handle` may be null: a per-thread, per-device handle is used.
cudaError_t gate(const void *hidden, const void *gateWeight, float *logits,
                 int64_t T, int64_t H, int64_t E, DType dtype,
                 cudaStream_t stream, cublasHandle_t handle = nullptr,
                 const KernelConfigs *configs = nullptr);
/// The same with different dtypes for hidden and gate_weight (e.g. bf16
/// tokens, an fp32 router): equal dtypes go to cuBLAS, mixed ones to a tiled
/// fp32 kernel (exact products, fp32 accumulation; slower).
cudaError_t gate(const void *hidden, DType hiddenDtype, const void *gateWeight,
                 DType weightDtype, float *logits, int64_t T, int64_t H,
                 int64_t E, cudaStream_t stream,
                 cublasHandle_t handle = nullptr,
                 const KernelConfigs *configs = nullptr);

//===--- moe.topk -----------------------------------------------------------===//
/// Selects k experts per token. Slots are ordered by decreasing selection
/// score (the biased score for sigmoid+bias), ties to the lower expert index.
/// `bias` may be null. E <= 1024, k <= 32.
cudaError_t topk(const float *logits, const float *bias, int32_t *topkIds,
                 float *topkWeights, int64_t T, int64_t E,
                 const TopKParams &params, cudaStream_t stream,
                 const KernelConfigs *configs = nullptr);

//===--- moe.routed_experts ---------------------------------------------------===//
size_t routedExpertsWorkspaceBytes(int64_t T, int64_t H, int64_t E, int64_t K,
                                   int64_t I, DType dtype);

/// output[t] = sum_j topk_weights[t, j] * down_e(silu(gate_e(x)) * up_e(x)),
/// e = topk_ids[t, j]. w13: [E, 2I, H] (gate rows, then up rows); w2: [E, H, I].
/// `output` may equal `hidden` (in place). Pairs whose id is outside [0, E)
/// contribute nothing.
cudaError_t routedExperts(const void *hidden, const int32_t *topkIds,
                          const float *topkWeights, const void *w13,
                          const void *w2, void *output, int64_t T, int64_t H,
                          int64_t E, int64_t K, int64_t I, DType dtype,
                          void *workspace, size_t workspaceBytes,
                          cudaStream_t stream,
                          const KernelConfigs *configs = nullptr);

//===--- moe.shared_experts ---------------------------------------------------===//
size_t sharedExpertsWorkspaceBytes(int64_t T, int64_t I, DType dtype);

/// output = down(silu(gate(x)) * up(x)); w13: [2I, H], w2: [H, I].
/// `output` may equal `hidden` (in place) but not partially overlap it.
cudaError_t sharedExperts(const void *hidden, const void *w13, const void *w2,
                          void *output, int64_t T, int64_t H, int64_t I,
                          DType dtype, void *workspace, size_t workspaceBytes,
                          cudaStream_t stream,
                          const KernelConfigs *configs = nullptr);

//===--- moe.add --------------------------------------------------------------===//
/// out = round(scale * lhs + rhs) over n elements; out may alias lhs or rhs.
cudaError_t add(const void *lhs, const void *rhs, void *out, int64_t n,
                float scale, DType dtype, cudaStream_t stream,
                const KernelConfigs *configs = nullptr);

} // namespace moek

#endif // MOE_KERNELS_MOE_KERNELS_H
