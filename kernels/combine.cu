//===- combine.cu - Weighted sum of the K down-projection partials --------===//
//
// out[t, c0 + c] = round(sum_{j=0..K-1} w[t, j] * partial[inverse[t*K+j], c])
// The sum runs in fp32, in slot order; the product and the sum are each
// rounded to fp32 (no fused multiply-add, as in the CPU backend); nothing is
// atomic, so the result is bit-for-bit reproducible. Memory-bound: each thread owns 8
// columns (16-byte loads and stores) and issues the K loads before using them.
//===----------------------------------------------------------------------===//
#include "routing.cuh"

namespace moek {
namespace detail {
namespace {

constexpr int kCombineThreads = 256;
constexpr int kSlotBatch = 8; // loads in flight per thread

template <typename Elem, int VEC> struct Vec;
template <typename Elem> struct Vec<Elem, 8> {
  static_assert(sizeof(Elem) == 2, "8-wide vectors are 16 bytes of 2-byte data");
  __device__ __forceinline__ static void load(const Elem *p, float (&v)[8]) {
    uint4 raw = *reinterpret_cast<const uint4 *>(p);
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 f = ElemTraits<Elem>::unpack2(w[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  }
  __device__ __forceinline__ static void store(Elem *p, const float (&v)[8]) {
    uint4 raw;
    raw.x = ElemTraits<Elem>::pack2(v[0], v[1]);
    raw.y = ElemTraits<Elem>::pack2(v[2], v[3]);
    raw.z = ElemTraits<Elem>::pack2(v[4], v[5]);
    raw.w = ElemTraits<Elem>::pack2(v[6], v[7]);
    *reinterpret_cast<uint4 *>(p) = raw;
  }
};
template <typename Elem> struct Vec<Elem, 1> {
  __device__ __forceinline__ static void load(const Elem *p, float (&v)[1]) {
    v[0] = ElemTraits<Elem>::toFloat(*p);
  }
  __device__ __forceinline__ static void store(Elem *p, const float (&v)[1]) {
    *p = ElemTraits<Elem>::fromFloat(v[0]);
  }
};

template <typename Elem, int VEC>
__global__ __launch_bounds__(kCombineThreads) void combineKernel(
    const Elem *__restrict__ partial, int64_t ldp,
    const int32_t *__restrict__ inverse, const float *__restrict__ weights,
    Elem *out, int64_t T, int K, int64_t H, int64_t c0, int64_t ncols) {
  const int64_t chunks = ncols / VEC;
  const int64_t n = T * chunks;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx / chunks;
    const int64_t c = (idx - t * chunks) * VEC;
    float acc[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v)
      acc[v] = 0.f;
    for (int j0 = 0; j0 < K; j0 += kSlotBatch) {
      float vals[kSlotBatch][VEC];
      float w[kSlotBatch];
#pragma unroll
      for (int jj = 0; jj < kSlotBatch; ++jj) {
        const int j = j0 + jj;
        int pos = -1;
        w[jj] = 0.f;
        if (j < K) {
          pos = inverse[t * K + j];
          w[jj] = weights[t * K + j];
        }
        if (pos >= 0) {
          Vec<Elem, VEC>::load(partial + int64_t(pos) * ldp + c, vals[jj]);
        } else {
          w[jj] = 0.f;
#pragma unroll
          for (int v = 0; v < VEC; ++v)
            vals[jj][v] = 0.f;
        }
      }
#pragma unroll
      for (int jj = 0; jj < kSlotBatch; ++jj) {
        if (j0 + jj >= K)
          break;
#pragma unroll
        for (int v = 0; v < VEC; ++v)
          acc[v] = __fadd_rn(acc[v], __fmul_rn(w[jj], vals[jj][v]));
      }
    }
    Vec<Elem, VEC>::store(out + t * H + c0 + c, acc);
  }
}

template <typename Elem>
cudaError_t launchTyped(const void *partial, int64_t ldp,
                        const int32_t *inverse, const float *weights,
                        void *out, int64_t T, int64_t K, int64_t H,
                        int64_t c0, int64_t ncols, cudaStream_t stream) {
  const bool vec8 =
      sizeof(Elem) == 2 && ncols % 8 == 0 && ldp % 8 == 0 && H % 8 == 0 &&
      c0 % 8 == 0 &&
      (reinterpret_cast<uintptr_t>(partial) | reinterpret_cast<uintptr_t>(out)) %
              16 == 0;
  const int64_t work = T * (vec8 ? ncols / 8 : ncols);
  if (work == 0)
    return cudaSuccess;
  int64_t blocks = ceilDiv(work, kCombineThreads);
  if (blocks > 65536 * 8)
    blocks = 65536 * 8; // grid-stride beyond that
  const Elem *pp = static_cast<const Elem *>(partial);
  Elem *po = static_cast<Elem *>(out);
  if constexpr (sizeof(Elem) == 2) {
    if (vec8) {
      combineKernel<Elem, 8><<<static_cast<unsigned>(blocks), kCombineThreads,
                               0, stream>>>(pp, ldp, inverse, weights, po, T,
                                            static_cast<int>(K), H, c0, ncols);
      MOEK_CHECK_LAUNCH("combineKernel");
      return cudaSuccess;
    }
  }
  combineKernel<Elem, 1><<<static_cast<unsigned>(blocks), kCombineThreads, 0,
                           stream>>>(pp, ldp, inverse, weights, po, T,
                                     static_cast<int>(K), H, c0, ncols);
  MOEK_CHECK_LAUNCH("combineKernel");
  return cudaSuccess;
}

} // namespace

cudaError_t launchCombine(const void *partial, int64_t ldp,
                          const int32_t *inverse, const float *weights,
                          void *out, int64_t T, int64_t K, int64_t H,
                          int64_t c0, int64_t ncols, DType dtype,
                          cudaStream_t stream) {
  switch (dtype) {
  case DType::BF16:
    return launchTyped<__nv_bfloat16>(partial, ldp, inverse, weights, out, T,
                                      K, H, c0, ncols, stream);
  case DType::F16:
    return launchTyped<__half>(partial, ldp, inverse, weights, out, T, K, H,
                               c0, ncols, stream);
  case DType::F32:
    return launchTyped<float>(partial, ldp, inverse, weights, out, T, K, H, c0,
                              ncols, stream);
  }
  return invalid("combine: dtype");
}

} // namespace detail
} // namespace moek
