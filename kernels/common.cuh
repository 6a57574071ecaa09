//===- common.cuh - Shared helpers of the moe CUDA kernels -------*- CUDA -*-===//
#ifndef MOE_KERNELS_COMMON_CUH
#define MOE_KERNELS_COMMON_CUH

#include "moe_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

namespace moek {
namespace detail {

/// Records a failure message for lastErrorMessage() and returns `err`.
cudaError_t setError(cudaError_t err, const std::string &what);
cudaError_t invalid(const std::string &what);
cudaError_t unsupported(const std::string &what);

/// Checks the last launch (cudaGetLastError) and records which kernel failed.
cudaError_t checkLaunch(const char *kernel);

/// Cached device properties of the current device.
struct DeviceInfo {
  int device = 0;
  int smCount = 0;
  int major = 0, minor = 0;
  size_t maxSmemOptin = 0;
};
cudaError_t currentDeviceInfo(DeviceInfo &info);

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

//===--- Programmatic dependent launch (PDL) ----------------------------===//
//
// Every kernel of this library may be launched with programmatic stream
// serialization (the pdl field of its GemmConfig or LaunchConfig) and starts
// with pdlWait() (plus pdlTrigger(), early or late): it lets the next kernel
// in the stream be scheduled as soon as this one is running (hiding launch
// latency and prologues), while griddepcontrol.wait blocks until the previous
// grid has completed and its memory is visible. No kernel touches global
// memory before that wait, so every read-after-write and write-after-read
// between kernels keeps its order.

__device__ __forceinline__ void pdlWait() {
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
}
__device__ __forceinline__ void pdlTrigger() {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}
__device__ __forceinline__ void pdlWaitAndTrigger() {
  pdlWait();
  pdlTrigger();
}

/// The heuristic's view of the current device.
inline DeviceProps deviceProps(const DeviceInfo &info) {
  DeviceProps d;
  d.smCount = info.smCount;
  d.major = info.major;
  d.minor = info.minor;
  return d;
}

/// cudaLaunchKernelEx, with the PDL attribute when `pdl`.
template <typename... KArgs, typename... Args>
cudaError_t launchKernel(bool pdl, void (*kernel)(KArgs...), dim3 grid,
                         dim3 block, size_t smem, cudaStream_t stream,
                         Args &&...args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

} // namespace detail
} // namespace moek

#define MOEK_CHECK_CUDA(expr)                                                 \
  do {                                                                        \
    cudaError_t moek_err_ = (expr);                                           \
    if (moek_err_ != cudaSuccess)                                             \
      return ::moek::detail::setError(moek_err_, #expr);                      \
  } while (0)

#define MOEK_CHECK_LAUNCH(name)                                               \
  do {                                                                        \
    cudaError_t moek_err_ = ::moek::detail::checkLaunch(name);                \
    if (moek_err_ != cudaSuccess)                                             \
      return moek_err_;                                                       \
  } while (0)

//===--- Element types --------------------------------------------------------===//

namespace moek {
namespace detail {

template <typename T> struct ElemTraits;
template <> struct ElemTraits<__nv_bfloat16> {
  static constexpr DType kType = DType::BF16;
  __device__ __forceinline__ static float toFloat(__nv_bfloat16 v) {
    return __bfloat162float(v);
  }
  __device__ __forceinline__ static __nv_bfloat16 fromFloat(float v) {
    return __float2bfloat16_rn(v);
  }
  // Two floats to one 32-bit register holding two elements (lo = a).
  __device__ __forceinline__ static uint32_t pack2(float a, float b) {
    __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<uint32_t *>(&h);
  }
  __device__ __forceinline__ static float2 unpack2(uint32_t v) {
    __nv_bfloat162 h = *reinterpret_cast<__nv_bfloat162 *>(&v);
    return __bfloat1622float2(h);
  }
};
template <> struct ElemTraits<__half> {
  static constexpr DType kType = DType::F16;
  __device__ __forceinline__ static float toFloat(__half v) {
    return __half2float(v);
  }
  __device__ __forceinline__ static __half fromFloat(float v) {
    return __float2half_rn(v);
  }
  __device__ __forceinline__ static uint32_t pack2(float a, float b) {
    __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t *>(&h);
  }
  __device__ __forceinline__ static float2 unpack2(uint32_t v) {
    __half2 h = *reinterpret_cast<__half2 *>(&v);
    return __half22float2(h);
  }
};
template <> struct ElemTraits<float> {
  static constexpr DType kType = DType::F32;
  __device__ __forceinline__ static float toFloat(float v) { return v; }
  __device__ __forceinline__ static float fromFloat(float v) { return v; }
};

/// silu(g) * u in fp32, as the numerics contract states.
__device__ __forceinline__ float siluMul(float g, float u) {
  return g / (1.0f + expf(-g)) * u;
}

} // namespace detail
} // namespace moek

#endif // MOE_KERNELS_COMMON_CUH
