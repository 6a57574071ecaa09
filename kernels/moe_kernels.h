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
// bytes given by include/moe/Runtime/Workspace.h (routedExpertsWorkspaceBytes /
// sharedExpertsWorkspaceBytes below) and carve 256-byte-aligned sub-buffers
// from it in the formula's order.
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_MOE_KERNELS_H
#define MOE_KERNELS_MOE_KERNELS_H

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

struct cublasContext;
typedef struct cublasContext *cublasHandle_t;

namespace moek {

enum class DType : int { BF16 = 0, F16 = 1, F32 = 2 };

inline int dtypeBytes(DType t) { return t == DType::F32 ? 4 : 2; }

enum class Scoring : int { Softmax = 0, Sigmoid = 1 };

struct TopKParams {
  int k = 8;
  Scoring scoring = Scoring::Softmax;
  int nGroup = 1;     // experts form nGroup equal groups
  int topkGroup = 1;  // only experts of the best topkGroup groups are eligible
  bool renormalize = true;
  float routedScalingFactor = 1.0f;
};

/// Which matrix-multiply implementation the routed/shared experts use.
enum class GemmImpl : int {
  Auto = 0,   // wgmma on sm_90 when shapes allow, else mma.sync, else SIMT
  Wgmma = 1,  // Hopper warp-specialised TMA + wgmma kernels
  MmaSync = 2,// portable tensor-core kernels (mma.sync m16n8k16, cp.async)
  Simt = 3,   // plain fp32 FMA kernels (any dtype, any alignment; slow)
};

/// Process-wide choice (default Auto, or the environment variable
/// MOEK_GEMM_IMPL=auto|wgmma|mma|simt). Meant for tests and benchmarks.
void setGemmImpl(GemmImpl impl);
GemmImpl getGemmImpl();

/// Master switch of programmatic dependent launch (default on, where the
/// launch policy asks for it; MOEK_PDL=0 turns it off).
void setProgrammaticLaunch(bool enabled);

/// Overrides of the per-op launch policy, for experiments. By default an op
/// whose GEMMs average fewer than 64 rows per expert (decode) uses
/// programmatic dependent launch and lets idle consumer warpgroups skip
/// wgmma; larger ones use neither (both measured to cost 5-15% there). Bits:
/// 1 force the idle skip, 4 forbid it, 8 force PDL, 16 forbid it, 2 trigger
/// dependents at the start of the persistent GEMMs, 32 / 64 force 128 x 256 /
/// 128 x 128 tiles (default: 128 x 128 when the 128 x 256 tiles would not give
/// every SM four), 128 load full 128-row A boxes in the down GEMM even for
/// tiles of at most 64 rows (default with the idle skip: 64-row boxes), 256
/// stage the down GEMM's full tiles with 32-bit shared-memory stores instead
/// of stmatrix (the measured baseline), 512 store the down GEMM's partial
/// tiles (an expert's last rows, a narrow last column block) straight from
/// registers with 4-byte stores instead of staging them (the baseline).
/// Default 0; also the environment variable MOEK_TUNING.
void setTuningFlags(int flags);

/// Text describing the last failure on this thread ("" when none).
const char *lastErrorMessage();

//===--- moe.gate -----------------------------------------------------------===//
/// logits[T, E] (fp32) = hidden[T, H] x gate_weight[E, H]^T, fp32 accumulation
/// (cuBLAS). `handle` may be null: a per-thread, per-device handle is used.
cudaError_t gate(const void *hidden, const void *gateWeight, float *logits,
                 int64_t T, int64_t H, int64_t E, DType dtype,
                 cudaStream_t stream, cublasHandle_t handle = nullptr);
/// The same with different dtypes for hidden and gate_weight (e.g. bf16
/// tokens, an fp32 router): equal dtypes go to cuBLAS, mixed ones to a tiled
/// fp32 kernel (exact products, fp32 accumulation; slower).
cudaError_t gate(const void *hidden, DType hiddenDtype, const void *gateWeight,
                 DType weightDtype, float *logits, int64_t T, int64_t H,
                 int64_t E, cudaStream_t stream,
                 cublasHandle_t handle = nullptr);

//===--- moe.topk -----------------------------------------------------------===//
/// Selects k experts per token. Slots are ordered by decreasing selection
/// score (the biased score for sigmoid+bias), ties to the lower expert index.
/// `bias` may be null. E <= 1024, k <= 32.
cudaError_t topk(const float *logits, const float *bias, int32_t *topkIds,
                 float *topkWeights, int64_t T, int64_t E,
                 const TopKParams &params, cudaStream_t stream);

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
                          cudaStream_t stream);

//===--- moe.shared_experts ---------------------------------------------------===//
size_t sharedExpertsWorkspaceBytes(int64_t T, int64_t I, DType dtype);

/// output = down(silu(gate(x)) * up(x)); w13: [2I, H], w2: [H, I].
/// `output` may equal `hidden` (in place) but not partially overlap it.
cudaError_t sharedExperts(const void *hidden, const void *w13, const void *w2,
                          void *output, int64_t T, int64_t H, int64_t I,
                          DType dtype, void *workspace, size_t workspaceBytes,
                          cudaStream_t stream);

//===--- moe.add --------------------------------------------------------------===//
/// out = round(scale * lhs + rhs) over n elements; out may alias lhs or rhs.
cudaError_t add(const void *lhs, const void *rhs, void *out, int64_t n,
                float scale, DType dtype, cudaStream_t stream);

} // namespace moek

#endif // MOE_KERNELS_MOE_KERNELS_H
