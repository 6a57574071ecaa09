//===- add.cu - moe.add: out = round(scale * lhs + rhs) -------------------===//
// scale * lhs and the sum are each rounded to fp32 (no fused multiply-add, as
// in the CPU backend), then the sum is rounded once to the data type.
#include "common.cuh"

namespace moek {
namespace {

constexpr int kAddThreads = 256;

template <typename Elem>
__global__ __launch_bounds__(kAddThreads) void addScalarKernel(
    const Elem *lhs, const Elem *rhs, Elem *out, int64_t n, float scale) {
  using Tr = detail::ElemTraits<Elem>;
  detail::pdlWaitAndTrigger();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = Tr::fromFloat(
        __fadd_rn(__fmul_rn(scale, Tr::toFloat(lhs[i])), Tr::toFloat(rhs[i])));
}

/// 8 two-byte elements per thread (16-byte accesses); n8 = n / 8.
template <typename Elem>
__global__ __launch_bounds__(kAddThreads) void addVec8Kernel(
    const Elem *lhs, const Elem *rhs, Elem *out, int64_t n8, float scale) {
  using Tr = detail::ElemTraits<Elem>;
  detail::pdlWaitAndTrigger();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n8;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint4 a = reinterpret_cast<const uint4 *>(lhs)[i];
    uint4 b = reinterpret_cast<const uint4 *>(rhs)[i];
    uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w}, o[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float2 fa = Tr::unpack2(av[k]), fb = Tr::unpack2(bv[k]);
      o[k] = Tr::pack2(__fadd_rn(__fmul_rn(scale, fa.x), fb.x),
                       __fadd_rn(__fmul_rn(scale, fa.y), fb.y));
    }
    reinterpret_cast<uint4 *>(out)[i] = make_uint4(o[0], o[1], o[2], o[3]);
  }
}

template <typename Elem>
cudaError_t launchAdd(const void *lhs, const void *rhs, void *out, int64_t n,
                      float scale, bool pdl, cudaStream_t stream) {
  const Elem *l = static_cast<const Elem *>(lhs);
  const Elem *r = static_cast<const Elem *>(rhs);
  Elem *o = static_cast<Elem *>(out);
  const bool aligned = ((reinterpret_cast<uintptr_t>(lhs) |
                         reinterpret_cast<uintptr_t>(rhs) |
                         reinterpret_cast<uintptr_t>(out)) %
                        16) == 0;
  int64_t head = 0;
  if constexpr (sizeof(Elem) == 2) {
    if (aligned && n >= 8) {
      int64_t n8 = n / 8;
      int64_t blocks = detail::ceilDiv(n8, kAddThreads);
      if (blocks > 65536 * 8)
        blocks = 65536 * 8;
      MOEK_CHECK_CUDA(detail::launchKernel(pdl, addVec8Kernel<Elem>,
                                           dim3(unsigned(blocks)),
                                           dim3(kAddThreads), 0, stream, l, r,
                                           o, n8, scale));
      MOEK_CHECK_LAUNCH("addVec8Kernel");
      head = n8 * 8;
    }
  }
  int64_t rest = n - head;
  if (rest > 0) {
    int64_t blocks = detail::ceilDiv(rest, kAddThreads);
    if (blocks > 65536 * 8)
      blocks = 65536 * 8;
    MOEK_CHECK_CUDA(detail::launchKernel(
        pdl, addScalarKernel<Elem>, dim3(unsigned(blocks)), dim3(kAddThreads), 0,
        stream, l + head, r + head, o + head, rest, scale));
    MOEK_CHECK_LAUNCH("addScalarKernel");
  }
  return cudaSuccess;
}

} // namespace

cudaError_t add(const void *lhs, const void *rhs, void *out, int64_t n,
                float scale, DType dtype, cudaStream_t stream,
                const KernelConfigs *configs) {
  if (n < 0)
    return detail::invalid("add: n < 0");
  if (n == 0)
    return cudaSuccess;
  if (!lhs || !rhs || !out)
    return detail::invalid("add: null pointer");
  LaunchShape shape;
  shape.op = LaunchOp::Add;
  shape.rows = n;
  const bool pdl = resolveLaunchConfig(shape, configs).pdl;
  switch (dtype) {
  case DType::BF16:
    return launchAdd<__nv_bfloat16>(lhs, rhs, out, n, scale, pdl, stream);
  case DType::F16:
    return launchAdd<__half>(lhs, rhs, out, n, scale, pdl, stream);
  case DType::F32:
    return launchAdd<float>(lhs, rhs, out, n, scale, pdl, stream);
  }
  return detail::invalid("add: dtype");
}

} // namespace moek
