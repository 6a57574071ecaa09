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

__device__ __forceinline__ uint4 loadStreaming(const uint4 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

/// 2-byte data, 8 columns (16 bytes) per thread. The K partial rows stay
/// packed in registers until all loads are issued (32 registers for 8
/// slots), which keeps the kernel at 4 blocks of 256 threads per SM.
template <typename Elem>
__global__ __launch_bounds__(kCombineThreads, 4) void combineVec8Kernel(
    const uint4 *__restrict__ partial, int ldpVec,
    const int32_t *__restrict__ inverse, const float *__restrict__ weights,
    Elem *out, int T, int K, int64_t H, int64_t c0, int chunks) {
  using Tr = ElemTraits<Elem>;
  pdlWaitAndTrigger();
  const int n = T * chunks;
  for (int idx = blockIdx.x * kCombineThreads + threadIdx.x; idx < n;
       idx += gridDim.x * kCombineThreads) {
    const int t = idx / chunks;
    const int c = idx - t * chunks;
    float acc[8];
#pragma unroll
    for (int v = 0; v < 8; ++v)
      acc[v] = 0.f;
    for (int j0 = 0; j0 < K; j0 += kSlotBatch) {
      uint4 raw[kSlotBatch];
      float w[kSlotBatch];
      bool live[kSlotBatch];
#pragma unroll
      for (int jj = 0; jj < kSlotBatch; ++jj) {
        const int j = j0 + jj;
        const int pos = j < K ? inverse[int64_t(t) * K + j] : -1;
        live[jj] = pos >= 0;
        w[jj] = live[jj] ? weights[int64_t(t) * K + j] : 0.f;
        raw[jj] = live[jj] ? loadStreaming(partial + int64_t(pos) * ldpVec + c)
                           : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int jj = 0; jj < kSlotBatch; ++jj) {
        if (!live[jj])
          continue; // ignored pair (id outside [0, E)) or past K
        const uint32_t wds[4] = {raw[jj].x, raw[jj].y, raw[jj].z, raw[jj].w};
#pragma unroll
        for (int v = 0; v < 4; ++v) {
          float2 f = Tr::unpack2(wds[v]);
          acc[2 * v] = __fadd_rn(acc[2 * v], __fmul_rn(w[jj], f.x));
          acc[2 * v + 1] = __fadd_rn(acc[2 * v + 1], __fmul_rn(w[jj], f.y));
        }
      }
    }
    uint4 o;
    o.x = Tr::pack2(acc[0], acc[1]);
    o.y = Tr::pack2(acc[2], acc[3]);
    o.z = Tr::pack2(acc[4], acc[5]);
    o.w = Tr::pack2(acc[6], acc[7]);
    *reinterpret_cast<uint4 *>(out + int64_t(t) * H + c0 + c * 8) = o;
  }
}

/// Any element type and alignment: one column per thread.
template <typename Elem>
__global__ __launch_bounds__(kCombineThreads) void combineScalarKernel(
    const Elem *__restrict__ partial, int64_t ldp,
    const int32_t *__restrict__ inverse, const float *__restrict__ weights,
    Elem *out, int64_t T, int K, int64_t H, int64_t c0, int64_t ncols) {
  using Tr = ElemTraits<Elem>;
  pdlWaitAndTrigger();
  const int64_t n = T * ncols;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx / ncols;
    const int64_t c = idx - t * ncols;
    float acc = 0.f;
    for (int j = 0; j < K; ++j) {
      const int pos = inverse[t * K + j];
      if (pos < 0)
        continue;
      acc = __fadd_rn(acc, __fmul_rn(weights[t * K + j],
                                     Tr::toFloat(partial[int64_t(pos) * ldp + c])));
    }
    out[t * H + c0 + c] = Tr::fromFloat(acc);
  }
}

template <typename Elem>
cudaError_t launchTyped(const void *partial, int64_t ldp,
                        const int32_t *inverse, const float *weights,
                        void *out, int64_t T, int64_t K, int64_t H,
                        int64_t c0, int64_t ncols, bool pdl,
                        cudaStream_t stream) {
  const int64_t chunks = ncols / 8;
  const bool vec8 =
      sizeof(Elem) == 2 && ncols % 8 == 0 && ldp % 8 == 0 && H % 8 == 0 &&
      c0 % 8 == 0 && T * chunks < INT32_MAX && K < INT32_MAX &&
      (reinterpret_cast<uintptr_t>(partial) | reinterpret_cast<uintptr_t>(out)) %
              16 == 0;
  const int64_t work = vec8 ? T * chunks : T * ncols;
  if (work == 0)
    return cudaSuccess;
  int64_t blocks = ceilDiv(work, kCombineThreads);
  if (blocks > 65536 * 8)
    blocks = 65536 * 8; // grid-stride beyond that
  if constexpr (sizeof(Elem) == 2) {
    if (vec8) {
      MOEK_CHECK_CUDA(launchKernel(
          pdl, combineVec8Kernel<Elem>, dim3(unsigned(blocks)), dim3(kCombineThreads),
          0, stream, static_cast<const uint4 *>(partial), int(ldp / 8), inverse,
          weights, static_cast<Elem *>(out), int(T), int(K), H, c0,
          int(chunks)));
      return cudaSuccess;
    }
  }
  MOEK_CHECK_CUDA(launchKernel(
      pdl, combineScalarKernel<Elem>, dim3(unsigned(blocks)), dim3(kCombineThreads),
      0, stream, static_cast<const Elem *>(partial), ldp, inverse, weights,
      static_cast<Elem *>(out), T, int(K), H, c0, ncols));
  return cudaSuccess;
}

} // namespace

cudaError_t launchCombine(const void *partial, int64_t ldp,
                          const int32_t *inverse, const float *weights,
                          void *out, int64_t T, int64_t K, int64_t H,
                          int64_t c0, int64_t ncols, DType dtype,
                          const LaunchConfig &config, cudaStream_t stream) {
  switch (dtype) {
  case DType::BF16:
    return launchTyped<__nv_bfloat16>(partial, ldp, inverse, weights, out, T,
                                      K, H, c0, ncols, config.pdl, stream);
  case DType::F16:
    return launchTyped<__half>(partial, ldp, inverse, weights, out, T, K, H,
                               c0, ncols, config.pdl, stream);
  case DType::F32:
    return launchTyped<float>(partial, ldp, inverse, weights, out, T, K, H, c0,
                              ncols, config.pdl, stream);
  }
  return invalid("combine: dtype");
}

} // namespace detail
} // namespace moek
