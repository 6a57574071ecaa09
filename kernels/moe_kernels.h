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
// fp8 numerics contract (routedExpertsFp8, sharedExpertsFp8; DeepSeek-V3's
// format). hidden/output bf16 [T, H]; w13 e4m3 (f8E4M3FN) [E, 2I, H] (rows
// 0..I-1 gate, I..2I-1 up) with w13_scale fp32 [E, 2I/128, H/128]; w2 e4m3
// [E, H, I] with w2_scale fp32 [E, H/128, I/128]; shared experts the same
// with E = 1 and no leading dimension. H and I are multiples of kFp8Block
// (128). Every weight element (n, k) is w[n, k] * scale[n/128, k/128].
//   1. Activation quantization, per row per group of 128 consecutive
//      columns: a = float(x) for the 128 values; amax = max |a|;
//      s = fmaxf(amax, 1e-10f) / 448.0f; q = e4m3(a / s). Both divisions are
//      fp32 IEEE divisions (never a reciprocal multiply); e4m3() rounds to
//      nearest even and saturates to +-448 (PTX cvt.rn.satfinite.e4m3x2.f32).
//      Scales are fp32 [rows, cols/128]. Bitwise reproducible on a CPU for
//      finite inputs (quantizeTokenGroupsFp8 implements exactly this).
//   2. Gate/up: for each (token, slot) pair routed to expert e and each
//      column n of [0, 2I): acc[n] = sum over K blocks b of
//      P_b * (s_a[row, b] * s_w13[e, n/128, b]), where P_b is the
//      tensor-core sum of the 128 exact products q_a * q_w of block b, the
//      scale product is one fp32 multiply, and the sum over b runs in fp32
//      (in block order; whether the add is fused is unspecified). Then
//      act = silu(g) * u in fp32 with silu(g) = g / (1 + expf(-g)),
//      g = acc[n], u = acc[I + n], n < I.
//   3. act is quantized per pair row per 128 columns exactly as in 1.
//   4. Down: partial[pair, n] = sum over I blocks b of
//      P_b * (s_act[pair, b] * s_w2[e, n/128, b]) as in 2, rounded to bf16;
//      the combine is the bf16 path's (topk_weight * partial in slot order,
//      fp32, no FMA, one rounding). Shared experts: the down projection is
//      rounded once to bf16 into output.
//   5. Deterministic (no floating-point atomics). The hidden is quantized
//      once per op (T rows); the gate/up GEMM gathers quantized rows and
//      their scales through the sorted pairs while loading them.
//   6. output may equal hidden (the hidden is quantized into the workspace
//      before anything is written); partial overlap is an error.
// P_b is the only term whose rounding the contract leaves open: the tensor
// cores' sum of 128 products, which on Hopper keeps about 14 significant bits
// (hence the promotion every 128). A reference therefore matches rule 1 bit
// for bit, and rules 2-4 up to that: on an H100, act scales within ~8e-4 of
// an exact-sum reference, act within ~4e-4 of its group's amax, and ~1% of
// the act codes one (rarely a few) e4m3 steps away.
//
// Workspaces: routedExperts and sharedExperts (and their fp8 forms) take
// `workspace` of at least the bytes given by include/moe-runtime/Workspace.h
// (routedExpertsWorkspaceBytes / sharedExpertsWorkspaceBytes and the Fp8
// ones below) and carve 256-byte-aligned sub-buffers from it in the
// formula's order (include/moe-runtime/WorkspaceLayout.h).
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
#include "moe-runtime/Workspace.h"

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

/// The fp8 formats' block: one scale per kFp8Block consecutive columns of an
/// activation row, one per kFp8Block x kFp8Block block of a weight matrix.
constexpr int64_t kFp8Block = MOERT_FP8_BLOCK;
/// The largest finite e4m3 (f8E4M3FN) value and the floor of a group's amax
/// in the scale (numerics contract, fp8 rule 1).
constexpr float kE4m3Max = 448.0f;
constexpr float kFp8AmaxFloor = 1e-10f;

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

//===--- fp8 (e4m3, 128-block scaled) experts ---------------------------------===//
// Need an sm_90 device (cudaErrorNotSupported elsewhere, with the reason in
// lastErrorMessage(); never a silent bf16 fallback), H and I multiples of
// kFp8Block (cudaErrorInvalidValue otherwise), 16-byte aligned hidden,
// output and weights, 4-byte aligned scales. Workspace sizes are
// include/moe-runtime/Workspace.h's moert_*_experts_fp8_workspace at T.
size_t routedExpertsFp8WorkspaceBytes(int64_t T, int64_t H, int64_t E,
                                      int64_t K, int64_t I);
size_t sharedExpertsFp8WorkspaceBytes(int64_t T, int64_t H, int64_t I);

/// routedExperts with e4m3 weights and block scales (fp8 contract above);
/// hidden and output bf16. `output` may equal `hidden`. Pairs whose id is
/// outside [0, E) contribute nothing.
cudaError_t routedExpertsFp8(const void *hidden, const int32_t *topkIds,
                             const float *topkWeights, const void *w13,
                             const float *w13Scale, const void *w2,
                             const float *w2Scale, void *output, int64_t T,
                             int64_t H, int64_t E, int64_t K, int64_t I,
                             void *workspace, size_t workspaceBytes,
                             cudaStream_t stream,
                             const KernelConfigs *configs = nullptr);

/// sharedExperts with e4m3 weights: w13 [2I, H] with scales [2I/128, H/128],
/// w2 [H, I] with scales [H/128, I/128]; hidden and output bf16.
cudaError_t sharedExpertsFp8(const void *hidden, const void *w13,
                             const float *w13Scale, const void *w2,
                             const float *w2Scale, void *output, int64_t T,
                             int64_t H, int64_t I, void *workspace,
                             size_t workspaceBytes, cudaStream_t stream,
                             const KernelConfigs *configs = nullptr);

/// fp8 rule 1: x bf16 [rows, cols] -> q e4m3 [rows, cols] and scales fp32
/// [rows, cols/128]. cols % 128 == 0; x 16-byte and q 8-byte aligned.
cudaError_t quantizeTokenGroupsFp8(const void *x, int64_t rows, int64_t cols,
                                   void *q, float *scales,
                                   cudaStream_t stream);

//===--- moe.add --------------------------------------------------------------===//
/// out = round(scale * lhs + rhs) over n elements; out may alias lhs or rhs.
cudaError_t add(const void *lhs, const void *rhs, void *out, int64_t n,
                float scale, DType dtype, cudaStream_t stream,
                const KernelConfigs *configs = nullptr);

} // namespace moek

#endif // MOE_KERNELS_MOE_KERNELS_H
