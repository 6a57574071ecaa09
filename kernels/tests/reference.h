//===- reference.h - CPU reference of the moe ops for the kernel tests ----===//
//
// Straightforward loops with double accumulation that follow the numerics
// contract of moe_kernels.h: act and down partials are rounded to the data
// type, the combine sums weight * partial in fp32 in slot order (fmaf) and
// rounds once. Tensors are float vectors whose values are already
// representable in the data type; round() maps a float to the data type.
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_TESTS_REFERENCE_H
#define MOE_KERNELS_TESTS_REFERENCE_H

#include "moe_kernels.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace moek {
namespace ref {

/// Rounds a float to the nearest value of `t` (ties to even).
float roundTo(DType t, float v);
/// Encodes floats as the bytes of `t` and back.
std::vector<uint8_t> encode(const std::vector<float> &v, DType t);
std::vector<float> decode(const std::vector<uint8_t> &bytes, DType t);

/// Runs body(i) for i in [0, n) on all hardware threads.
void parallelFor(int64_t n, const std::function<void(int64_t)> &body);

std::vector<float> gate(const std::vector<float> &hidden,
                        const std::vector<float> &w, int64_t T, int64_t H,
                        int64_t E);

void topk(const std::vector<float> &logits, const std::vector<float> *bias,
          int64_t T, int64_t E, const TopKParams &p, std::vector<int32_t> &ids,
          std::vector<float> &weights,
          std::vector<float> *keysOut = nullptr /* T x E selection keys */);

std::vector<float> routedExperts(const std::vector<float> &hidden,
                                 const std::vector<int32_t> &ids,
                                 const std::vector<float> &weights,
                                 const std::vector<float> &w13,
                                 const std::vector<float> &w2, int64_t T,
                                 int64_t H, int64_t E, int64_t K, int64_t I,
                                 DType t);

std::vector<float> sharedExperts(const std::vector<float> &hidden,
                                 const std::vector<float> &w13,
                                 const std::vector<float> &w2, int64_t T,
                                 int64_t H, int64_t I, DType t);

std::vector<float> add(const std::vector<float> &lhs,
                       const std::vector<float> &rhs, float scale, DType t);

//===--- fp8 (moe_kernels.h's fp8 numerics contract) -----------------------===//
// Written from the contract alone (no CUDA conversion helpers), so that the
// GPU kernels are checked against an independent reading of it.

/// The e4m3 (f8E4M3FN) byte of v: round to nearest even, saturating to
/// +-448 (cvt.rn.satfinite); NaN -> 0x7f.
uint8_t toE4m3(float v);
/// The value of an e4m3 byte (0x7f / 0xff: NaN).
float fromE4m3(uint8_t b);

/// Rule 1 on a row-major [rows, cols] matrix (cols % 128 == 0) of values:
/// q [rows, cols] and scales [rows, cols/128], bit for bit.
void quantizeFp8(const std::vector<float> &x, int64_t rows, int64_t cols,
                 std::vector<uint8_t> &q, std::vector<float> &scales);

/// Block-scaled e4m3 weights, [n, k] per matrix: scale[n/128, k/128] =
/// amax/448 of the block (at least 2^-20), q = e4m3(w / scale). For test data.
void quantizeWeightsFp8(const std::vector<float> &w, int64_t matrices,
                        int64_t n, int64_t k, std::vector<uint8_t> &q,
                        std::vector<float> &scales);

/// The quantized activation of every (token, slot) pair p = t*K + j (shared
/// experts: p = t), before (value, fp32) and after quantization (q, scales
/// [pairs, I/128]). Rows of ignored pairs are zero.
struct Fp8Act {
  std::vector<float> value;
  std::vector<uint8_t> q;
  std::vector<float> scales;
};

/// The fp8 weights of an expert op: w13 [E, 2I, H] and w2 [E, H, I] e4m3
/// with their block scales (E = 1 for the shared experts).
struct Fp8Weights {
  std::vector<uint8_t> w13, w2;
  std::vector<float> w13Scale, w2Scale;
};

/// Rules 1-3: the act of every pair, with GEMM sums in double (each 128-block
/// sum exact, times the fp32 scale product, summed in double, then rounded
/// to fp32).
Fp8Act routedGateUpFp8(const std::vector<float> &hidden,
                       const std::vector<int32_t> &ids, const Fp8Weights &w,
                       int64_t T, int64_t H, int64_t E, int64_t K, int64_t I);
/// Rule 4 from a given act: down partials rounded to bf16, the combine in
/// fp32 slot order, one rounding. Returns output floats (bf16 values).
std::vector<float> routedDownFp8(const Fp8Act &act,
                                 const std::vector<int32_t> &ids,
                                 const std::vector<float> &weights,
                                 const Fp8Weights &w, int64_t T, int64_t H,
                                 int64_t E, int64_t K, int64_t I);
/// The shared experts (E = 1, one pair per token): rules 1-3 and rule 4
/// (the down projection rounded once to bf16).
Fp8Act sharedGateUpFp8(const std::vector<float> &hidden, const Fp8Weights &w,
                       int64_t T, int64_t H, int64_t I);
std::vector<float> sharedDownFp8(const Fp8Act &act, const Fp8Weights &w,
                                 int64_t T, int64_t H, int64_t I);

} // namespace ref
} // namespace moek

#endif // MOE_KERNELS_TESTS_REFERENCE_H
