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

} // namespace ref
} // namespace moek

#endif // MOE_KERNELS_TESTS_REFERENCE_H
