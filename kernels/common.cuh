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
// serialization (LaunchPolicy::pdl) and starts with pdlWait() (plus
// pdlTrigger(), early or late): it lets the next kernel
// in the stream be scheduled as soon as this one is running (hiding launch
// latency and prologues), while griddepcontrol.wait blocks until the previous
// grid has completed and its memory is visible. No kernel touches global
// memory before that wait, so every read-after-write and write-after-read
// between kernels keeps its order. MOEK_PDL=0 turns the attribute off.

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

bool pdlEnabled();

/// Kernel flags of the Hopper GEMMs (GemmProblem::flags).
enum KernelFlag : int {
  kIdleHalfSkip = 1, // a consumer warpgroup with no valid rows skips wgmma
  kEarlyTrigger = 2, // persistent GEMMs trigger dependents at their start
  kHalfA = 4,        // Down: a tile of <= 64 rows loads only 64 rows of A
  kScalarEpilogue = 8, // Down: stage full tiles with 32-bit stores, not stmatrix
  kDirectPartialStores = 16, // Down: partial tiles stored from registers
};

/// moek::setTuningFlags bits: overrides of the per-op launch policy.
enum TuningFlag : int {
  kForceIdleSkip = 1,
  kForceEarlyTrigger = 2,
  kForceNoIdleSkip = 4,
  kForcePdl = 8,
  kForceNoPdl = 16,
  kForceWideN = 32,   // Hopper GEMMs: 128 x 256 tiles
  kForceNarrowN = 64, // Hopper GEMMs: 128 x 128 tiles
  kForceNoHalfA = 128, // Hopper GEMMs: full 128-row A boxes even for short tiles
  kForceScalarEpilogue = 256, // Hopper down GEMM: 32-bit smem stores in the epilogue
  kForceDirectPartialStores = 512, // Hopper down GEMM: partial tiles from registers
};
int tuningFlags();

/// How the kernels of one op are launched. Measured on an H200 (see
/// bench/NOTES.md): PDL and the idle-half skip pay for decode-sized problems
/// (few rows per expert, every tile mostly padding) and cost 5-15% on large
/// ones, so an op picks them by its size; tuning flags override.
struct LaunchPolicy {
  bool pdl = false;
  bool idleSkip = false;
  bool earlyTrigger = false;
  bool halfA = false;   // with idleSkip: 64-row A loads for short Down tiles
  bool narrowN = false; // prefer 128-column tiles
  int forceN = 0;       // 128 or 256: tuning override
};
LaunchPolicy &threadPolicy();

/// Sets the calling thread's policy for the duration of one op.
class ScopedPolicy {
public:
  /// rowsPerGroup: average GEMM rows per expert (T*K/E, or T).
  explicit ScopedPolicy(double rowsPerGroup) : saved_(threadPolicy()) {
    LaunchPolicy p;
    const bool small = rowsPerGroup < 64.0;
    const int t = tuningFlags();
    p.pdl = (small || (t & kForcePdl)) && !(t & kForceNoPdl);
    p.idleSkip = (small || (t & kForceIdleSkip)) && !(t & kForceNoIdleSkip);
    p.earlyTrigger = (t & kForceEarlyTrigger) != 0;
    p.halfA = p.idleSkip && !(t & kForceNoHalfA);
    p.narrowN = small;
    p.forceN = (t & kForceNarrowN) ? 128 : (t & kForceWideN) ? 256 : 0;
    threadPolicy() = p;
  }
  ~ScopedPolicy() { threadPolicy() = saved_; }

private:
  LaunchPolicy saved_;
};

/// cudaLaunchKernelEx with the PDL attribute (when enabled).
template <typename... KArgs, typename... Args>
cudaError_t launchKernel(void (*kernel)(KArgs...), dim3 grid, dim3 block,
                         size_t smem, cudaStream_t stream, Args &&...args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = (pdlEnabled() && threadPolicy().pdl) ? 1 : 0;
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
