//===- fp8.cuh - Internal interfaces of the fp8 expert kernels -*- CUDA -*-===//
//
// The fp8 (e4m3, 128-block scaled) routed and shared experts run as:
//   quantize (hidden -> e4m3 + per-128-column scales, once per op)
//   -> gate-up GEMM (gathered quantized rows x w13, block-scaled promotion,
//      SiLU*up and the act quantization fused into the epilogue)
//   -> down GEMM (act x w2, bf16 partials or output) [-> combine].
// This header holds the numerics helpers both the quantize kernel and the
// GEMM epilogue use (so the two quantizations are the same code) and the
// launchers' internal interfaces; the Hopper primitives are in sm90.cuh.
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_FP8_CUH
#define MOE_KERNELS_FP8_CUH

#include "routing.cuh"
#include "sm90.cuh"

#include <cuda.h>

namespace moek {
namespace detail {

//===--- Quantization (numerics contract rule 1)
//----------------------------===//

/// The scale of a 128-value group with max |a| = amax: fmaxf(amax, floor) /
/// 448 with IEEE division (never a reciprocal multiply, whatever the flags).
__device__ __forceinline__ float fp8GroupScale(float amax) {
  return __fdiv_rn(fmaxf(amax, kFp8AmaxFloor), kE4m3Max);
}

/// Two floats to two e4m3 bytes (lo = a): round to nearest even, saturating
/// to +-448 (cvt.rn.satfinite; NaN stays NaN).
__device__ __forceinline__ uint16_t cvtE4m3x2(float a, float b) {
  uint16_t r;
  // cvt's first source goes to the upper byte.
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(b), "f"(a));
  return r;
}

/// e4m3 bytes of a / s and b / s, IEEE division.
__device__ __forceinline__ uint16_t quantizePair(float a, float b, float s) {
  return cvtE4m3x2(__fdiv_rn(a, s), __fdiv_rn(b, s));
}


//===--- Launchers -------------------------------------------------------===//

/// One fp8 grouped GEMM launch (kernels/gemm_fp8_wgmma.cu). Row r of group g
/// is global row offsets[g] + r; every K step is one 128-column scale block.
struct Fp8GemmProblem {
  GemmOp mode = GemmOp::GateUp;
  const int32_t *offsets = nullptr; // numGroups+1 (device); null: one group
  int numGroups = 1;
  int64_t rows = 0; // T*K (routed) or T (shared)
  // A: e4m3 [*, kDim] with scales fp32 [*, kDim/128]. GateUp: the quantized
  // hidden [T, kDim] in token order, read through `gather` (row -> pair,
  // token = pair / topk; null: identity). Down: act [rows, kDim].
  const uint8_t *a = nullptr;
  const float *aScale = nullptr;
  const int32_t *gather = nullptr;
  int topk = 1;
  int64_t kDim = 0;
  // B: e4m3 [G * bGroupRows, kDim] with scales [G * bGroupRows/128,
  // kDim/128]. GateUp: w13 (bGroupRows = 2*inter); Down: w2 (bGroupRows = H,
  // rows [bRowOffset, bRowOffset + nExtent) used).
  const uint8_t *b = nullptr;
  const float *bScale = nullptr;
  int64_t bGroupRows = 0;
  int64_t inter = 0;      // GateUp: I
  int64_t nExtent = 0;    // Down: output columns of this launch
  int64_t bRowOffset = 0; // Down: first B row (column block start)
  // Output. GateUp: act e4m3 [rows, inter] and its scales [rows, inter/128].
  // Down: bf16 out[row * ldo + col].
  void *out = nullptr;
  float *outScale = nullptr;
  int64_t ldo = 0;
  Fp8GemmConfig config;
};

cudaError_t launchGemmFp8Wgmma(const Fp8GemmProblem &p, cudaStream_t stream);

/// quantizeTokenGroupsFp8 without argument checks (cols % 128 == 0, x
/// 16-byte and q 8-byte aligned).
cudaError_t launchQuantizeFp8(const void *x, int64_t rows, int64_t cols,
                              uint8_t *q, float *scales, bool pdl,
                              cudaStream_t stream);

//===--- The routed op in stages (for the benchmark's per-GEMM times)
//-------===//

/// Everything routedExpertsFp8 launches, checked and carved: the public
/// function is planRoutedExpertsFp8 + runRoutedExpertsFp8(all stages).
struct RoutedFp8Plan {
  const void *hidden = nullptr;
  const int32_t *topkIds = nullptr;
  const float *topkWeights = nullptr;
  void *output = nullptr;
  int64_t T = 0, H = 0, E = 0, K = 0, I = 0, C = 0;
  int32_t *offsets = nullptr, *sorted = nullptr, *inverse = nullptr;
  uint8_t *hiddenQ = nullptr;
  float *hiddenScales = nullptr;
  void *partials = nullptr;
  LaunchConfig launch;
  Fp8GemmProblem gateUp;
  Fp8GemmConfig downFull, downLast; // every down launch but the last; last
  Fp8GemmProblem downTemplate;      // the down launch without its block
};

enum RoutedFp8Stage : unsigned {
  kFp8StagePrepare = 1, // routing + hidden quantization
  kFp8StageGateUp = 2,
  kFp8StageDown = 4,    // every column block's down GEMM
  kFp8StageCombine = 8, // every column block's combine
  kFp8StageAll = 15,
};

/// Validates the arguments and the device and fills `plan` (no device work).
cudaError_t planRoutedExpertsFp8(const void *hidden, const int32_t *topkIds,
                                 const float *topkWeights, const void *w13,
                                 const float *w13Scale, const void *w2,
                                 const float *w2Scale, void *output, int64_t T,
                                 int64_t H, int64_t E, int64_t K, int64_t I,
                                 void *workspace, size_t workspaceBytes,
                                 const KernelConfigs *configs,
                                 RoutedFp8Plan &plan);

/// Enqueues the stages named in `stages` (a mask of RoutedFp8Stage), in the
/// op's order. Only kFp8StageAll computes the op; subsets are for timing.
cudaError_t runRoutedExpertsFp8(const RoutedFp8Plan &plan, unsigned stages,
                                cudaStream_t stream);

} // namespace detail
} // namespace moek

#endif // MOE_KERNELS_FP8_CUH
