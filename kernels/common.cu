//===- common.cu - Error reporting and device queries ---------------------===//
#include "common.cuh"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace moek {
namespace {
thread_local std::string lastError;

/// MOEK_GEMM_IMPL=auto|wgmma|mma|simt sets the initial choice (tests,
/// benchmarks and debugging without recompiling).
int initialGemmImpl() {
  const char *env = std::getenv("MOEK_GEMM_IMPL");
  if (!env)
    return static_cast<int>(GemmImpl::Auto);
  if (!std::strcmp(env, "wgmma"))
    return static_cast<int>(GemmImpl::Wgmma);
  if (!std::strcmp(env, "mma"))
    return static_cast<int>(GemmImpl::MmaSync);
  if (!std::strcmp(env, "simt"))
    return static_cast<int>(GemmImpl::Simt);
  return static_cast<int>(GemmImpl::Auto);
}

std::atomic<int> gemmImpl{initialGemmImpl()};

bool initialPdl() {
  const char *env = std::getenv("MOEK_PDL");
  return !(env && !std::strcmp(env, "0"));
}
std::atomic<bool> pdl{initialPdl()};
} // namespace

void setProgrammaticLaunch(bool enabled) { pdl.store(enabled); }

namespace {
std::atomic<int> tuning{[] {
  const char *env = std::getenv("MOEK_TUNING");
  return env ? std::atoi(env) : 0;
}()};
} // namespace

void setTuningFlags(int flags) { tuning.store(flags); }

const char *lastErrorMessage() { return lastError.c_str(); }

void setGemmImpl(GemmImpl impl) { gemmImpl.store(static_cast<int>(impl)); }
GemmImpl getGemmImpl() { return static_cast<GemmImpl>(gemmImpl.load()); }

namespace detail {

bool pdlEnabled() { return pdl.load(std::memory_order_relaxed); }
int tuningFlags() { return tuning.load(std::memory_order_relaxed); }
LaunchPolicy &threadPolicy() {
  static thread_local LaunchPolicy policy;
  return policy;
}

cudaError_t setError(cudaError_t err, const std::string &what) {
  lastError = what + ": " + cudaGetErrorString(err);
  return err;
}

cudaError_t invalid(const std::string &what) {
  lastError = "invalid argument: " + what;
  return cudaErrorInvalidValue;
}

cudaError_t unsupported(const std::string &what) {
  lastError = "not supported: " + what;
  return cudaErrorNotSupported;
}

cudaError_t checkLaunch(const char *kernel) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    return setError(err, std::string("launch of ") + kernel);
  return cudaSuccess;
}

cudaError_t currentDeviceInfo(DeviceInfo &info) {
  // Up to 64 devices cached; attribute queries are cheap but not free.
  static thread_local DeviceInfo cache[64];
  static thread_local bool valid[64] = {};
  int dev = 0;
  MOEK_CHECK_CUDA(cudaGetDevice(&dev));
  if (dev >= 0 && dev < 64 && valid[dev]) {
    info = cache[dev];
    return cudaSuccess;
  }
  DeviceInfo d;
  d.device = dev;
  MOEK_CHECK_CUDA(
      cudaDeviceGetAttribute(&d.smCount, cudaDevAttrMultiProcessorCount, dev));
  MOEK_CHECK_CUDA(
      cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev));
  MOEK_CHECK_CUDA(
      cudaDeviceGetAttribute(&d.minor, cudaDevAttrComputeCapabilityMinor, dev));
  int smem = 0;
  MOEK_CHECK_CUDA(cudaDeviceGetAttribute(
      &smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  d.maxSmemOptin = static_cast<size_t>(smem);
  if (dev >= 0 && dev < 64) {
    cache[dev] = d;
    valid[dev] = true;
  }
  info = d;
  return cudaSuccess;
}

} // namespace detail
} // namespace moek
