//===- gate.cu - moe.gate: the router GEMM through cuBLAS -----------------===//
//
// logits[T, E] = hidden[T, H] x gate_weight[E, H]^T with fp32 accumulation and
// fp32 output. In cuBLAS's column-major terms this is
// logits^T (E x T) = gate_weight (H x E)^T * hidden^T (H x T).
//===----------------------------------------------------------------------===//
#include "common.cuh"

#include <cublas_v2.h>

namespace moek {
namespace {

const char *cublasStatusText(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  default: return "cuBLAS error";
  }
}

cudaError_t cublasFailure(cublasStatus_t s, const char *what) {
  // A failed execution is usually the device's own (sticky) error, e.g. an
  // earlier kernel's illegal memory access: name that instead of "unknown".
  cudaError_t cause = cudaErrorUnknown;
  if (s == CUBLAS_STATUS_EXECUTION_FAILED) {
    cudaError_t sticky = cudaDeviceSynchronize();
    if (sticky != cudaSuccess)
      cause = sticky;
  }
  return detail::setError(cause,
                          std::string(what) + " (" + cublasStatusText(s) + ")");
}

/// One handle per thread and device, created on first use and kept for the
/// life of the thread (cuBLAS handles are expensive to create).
cudaError_t threadHandle(cublasHandle_t &out) {
  static thread_local cublasHandle_t handles[64] = {};
  int dev = 0;
  MOEK_CHECK_CUDA(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64)
    return detail::unsupported("device index >= 64");
  if (!handles[dev]) {
    cublasStatus_t s = cublasCreate(&handles[dev]);
    if (s != CUBLAS_STATUS_SUCCESS) {
      handles[dev] = nullptr;
      return cublasFailure(s, "cublasCreate");
    }
  }
  out = handles[dev];
  return cudaSuccess;
}

/// logits = x . w^T for mixed element types: 64x64 output tiles, 16x16
/// threads with 4x4 outputs each, 32-wide K steps through shared memory,
/// fp32 accumulation of exact products.
constexpr int kGT = 64, kGK = 32;

template <typename TA, typename TB>
__global__ __launch_bounds__(256) void gateMixedKernel(const TA *x, const TB *w,
                                                       float *out, int64_t T,
                                                       int64_t H, int64_t E) {
  __shared__ float xs[kGK][kGT + 1];
  __shared__ float ws[kGK][kGT + 1];
  detail::pdlWaitAndTrigger();
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t t0 = int64_t(blockIdx.y) * kGT, e0 = int64_t(blockIdx.x) * kGT;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < H; k0 += kGK) {
    for (int i = threadIdx.x; i < kGT * kGK; i += 256) {
      int r = i / kGK, k = i % kGK;
      int64_t kk = k0 + k;
      xs[k][r] = (t0 + r < T && kk < H)
                     ? detail::ElemTraits<TA>::toFloat(x[(t0 + r) * H + kk])
                     : 0.f;
      ws[k][r] = (e0 + r < E && kk < H)
                     ? detail::ElemTraits<TB>::toFloat(w[(e0 + r) * H + kk])
                     : 0.f;
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kGK; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[k][ty * 4 + i];
        b[i] = ws[k][tx * 4 + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int64_t t = t0 + ty * 4 + i, e = e0 + tx * 4 + j;
      if (t < T && e < E)
        out[t * E + e] = acc[i][j];
    }
}

template <typename TA>
cudaError_t launchMixed(const void *x, DType wt, const void *w, float *out,
                        int64_t T, int64_t H, int64_t E, bool pdl,
                        cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(detail::ceilDiv(E, kGT)),
            static_cast<unsigned>(detail::ceilDiv(T, kGT)));
  if (detail::ceilDiv(T, kGT) > 65535)
    return detail::unsupported("gate (mixed dtypes): T > 4M");
  const TA *xa = static_cast<const TA *>(x);
  cudaError_t err;
  switch (wt) {
  case DType::BF16:
    err = detail::launchKernel(pdl, gateMixedKernel<TA, __nv_bfloat16>,
                               grid, dim3(256), 0, stream, xa,
                               static_cast<const __nv_bfloat16 *>(w), out, T,
                               H, E);
    break;
  case DType::F16:
    err = detail::launchKernel(pdl, gateMixedKernel<TA, __half>, grid,
                               dim3(256), 0, stream, xa, static_cast<const __half *>(w), out,
                               T, H, E);
    break;
  default:
    err = detail::launchKernel(pdl, gateMixedKernel<TA, float>, grid,
                               dim3(256), 0, stream, xa, static_cast<const float *>(w), out,
                               T, H, E);
    break;
  }
  MOEK_CHECK_CUDA(err);
  MOEK_CHECK_LAUNCH("gateMixedKernel");
  return cudaSuccess;
}

} // namespace

cudaError_t gate(const void *hidden, DType hiddenDtype, const void *gateWeight,
                 DType weightDtype, float *logits, int64_t T, int64_t H,
                 int64_t E, cudaStream_t stream, cublasHandle_t handle,
                 const KernelConfigs *configs) {
  if (hiddenDtype == weightDtype)
    return gate(hidden, gateWeight, logits, T, H, E, hiddenDtype, stream,
                handle, configs);
  if (T < 0 || H <= 0 || E <= 0)
    return detail::invalid("gate: T >= 0, H > 0 and E > 0 required");
  if (T == 0)
    return cudaSuccess;
  if (!hidden || !gateWeight || !logits)
    return detail::invalid("gate: null pointer");
  LaunchShape shape;
  shape.op = LaunchOp::Gate;
  shape.rows = T;
  const bool pdl = resolveLaunchConfig(shape, configs).pdl;
  switch (hiddenDtype) {
  case DType::BF16:
    return launchMixed<__nv_bfloat16>(hidden, weightDtype, gateWeight, logits,
                                      T, H, E, pdl, stream);
  case DType::F16:
    return launchMixed<__half>(hidden, weightDtype, gateWeight, logits, T, H,
                               E, pdl, stream);
  case DType::F32:
    return launchMixed<float>(hidden, weightDtype, gateWeight, logits, T, H,
                              E, pdl, stream);
  }
  return detail::invalid("gate: dtype");
}

cudaError_t gate(const void *hidden, const void *gateWeight, float *logits,
                 int64_t T, int64_t H, int64_t E, DType dtype,
                 cudaStream_t stream, cublasHandle_t handle,
                 const KernelConfigs *) {
  // cuBLAS chooses its own launch; no config applies.
  if (T < 0 || H <= 0 || E <= 0)
    return detail::invalid("gate: T >= 0, H > 0 and E > 0 required");
  if (T == 0)
    return cudaSuccess;
  if (!hidden || !gateWeight || !logits)
    return detail::invalid("gate: null pointer");
  if (T > INT32_MAX || H > INT32_MAX || E > INT32_MAX)
    return detail::unsupported("gate: dimensions above 2^31");
  if (!handle) {
    cudaError_t err = threadHandle(handle);
    if (err != cudaSuccess)
      return err;
  }
  cudaDataType_t in;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (dtype) {
  case DType::BF16: in = CUDA_R_16BF; break;
  case DType::F16: in = CUDA_R_16F; break;
  case DType::F32:
    in = CUDA_R_32F;
    compute = CUBLAS_COMPUTE_32F; // plain fp32, no TF32
    break;
  default: return detail::invalid("gate: dtype");
  }
  cublasStatus_t s = cublasSetStream(handle, stream);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFailure(s, "cublasSetStream");
  s = cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFailure(s, "cublasSetPointerMode");
  const float alpha = 1.0f, beta = 0.0f;
  s = cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(E),
                   static_cast<int>(T), static_cast<int>(H), &alpha, gateWeight,
                   in, static_cast<int>(H), hidden, in, static_cast<int>(H),
                   &beta, logits, CUDA_R_32F, static_cast<int>(E), compute,
                   CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS)
    return cublasFailure(s, "cublasGemmEx (gate)");
  return cudaSuccess;
}

} // namespace moek
