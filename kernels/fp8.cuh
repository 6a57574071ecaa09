//===- fp8.cuh - Internal interfaces of the fp8 expert kernels --*- CUDA
//-*-===//
//
// The fp8 (e4m3, 128-block scaled) routed and shared experts run as:
//   quantize (hidden -> e4m3 + per-128-column scales, once per op)
//   -> gate-up GEMM (gathered quantized rows x w13, block-scaled promotion,
//      SiLU*up and the act quantization fused into the epilogue)
//   -> down GEMM (act x w2, bf16 partials or output) [-> combine].
// This header holds the numerics helpers both the quantize kernel and the
// GEMM epilogue use (so the two quantizations are the same code), the Hopper
// async primitives of the fp8 GEMM, and the launchers' internal interfaces.
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_FP8_CUH
#define MOE_KERNELS_FP8_CUH

#include "routing.cuh"

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

//===--- Hopper async primitives (TMA, mbarrier, cp.async, wgmma)
//-----------===//
namespace sm90 {

__device__ __forceinline__ uint32_t smemAddr(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar),
               "r"(count)
               : "memory");
}

/// Spins until the phase with `parity` has completed. The loop lives inside
/// the asm block: a C++ loop around try_wait is divergent control flow to
/// ptxas, which then serialises the wgmma instructions that follow.
__device__ __forceinline__ void mbarWait(uint32_t bar, uint32_t parity) {
  asm volatile("{\n"
               ".reg .pred p;\n"
               "WAIT_%=:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
               "@!p bra WAIT_%=;\n"
               "}\n" ::"r"(bar),
               "r"(parity)
               : "memory");
}

__device__ __forceinline__ void mbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar)
               : "memory");
}

__device__ __forceinline__ void mbarArriveExpectTx(uint32_t bar,
                                                   uint32_t bytes) {
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
      "r"(bytes)
      : "memory");
}

/// 16 bytes global -> shared (L2 only); zero-filled when !valid.
__device__ __forceinline__ void cpAsync16(uint32_t dst, const void *src,
                                          bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}

/// 4 bytes global -> shared; zero-filled when !valid.
__device__ __forceinline__ void cpAsync4(uint32_t dst, const void *src,
                                         bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst),
               "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}

/// Arrives on `bar` once all earlier cp.async of this thread have landed; the
/// barrier's expected count includes this arrival (.noinc).
__device__ __forceinline__ void cpAsyncArriveNoinc(uint32_t bar) {
  asm volatile(
      "cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar)
      : "memory");
}

__device__ __forceinline__ void tmaLoad2d(uint32_t dst, const CUtensorMap *map,
                                          uint32_t bar, int x, int y) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_"
      "tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(x), "r"(y)
      : "memory");
}

__device__ __forceinline__ void tmaStore2d(const CUtensorMap *map, uint32_t src,
                                           int x, int y) {
  asm volatile(
      "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], "
      "[%1];\n" ::"l"(reinterpret_cast<uint64_t>(map)),
      "r"(src), "r"(x), "r"(y)
      : "memory");
}
__device__ __forceinline__ void bulkCommit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
/// Waits until earlier bulk stores of this thread have read their source.
__device__ __forceinline__ void bulkWaitRead() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void bulkWaitAll() {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}

__device__ __forceinline__ void fenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

__device__ __forceinline__ void wgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

/// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups
/// 1024 bytes apart (rows of 128 bytes: 64 bf16 or 128 e4m3).
__device__ __forceinline__ uint64_t makeDesc(uint32_t addr) {
  uint64_t desc = (addr & 0x3FFFFu) >> 4;
  desc |= uint64_t(16 >> 4) << 16;   // leading byte offset (unused here)
  desc |= uint64_t(1024 >> 4) << 32; // stride byte offset
  desc |= uint64_t(1) << 62;         // SWIZZLE_128B
  return desc;
}

__device__ __forceinline__ void namedBarrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

/// Four 8x8 matrices of 16-bit elements to shared memory: lanes 8g..8g+7
/// give the addresses of the 16-byte rows of matrix g, and each thread's
/// register g holds two adjacent elements of one row of matrix g (the
/// accumulator layout of wgmma).
__device__ __forceinline__ void
stmatrixX4(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
  asm volatile(
      "stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::
          "r"(addr),
      "r"(r0), "r"(r1), "r"(r2), "r"(r3)
      : "memory");
}
__device__ __forceinline__ uint4 ldShared128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}
__device__ __forceinline__ float ldSharedF32(uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
__device__ __forceinline__ void stShared16(uint32_t addr, uint16_t v) {
  asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(addr), "h"(v) : "memory");
}

} // namespace sm90

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
