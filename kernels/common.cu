//===- common.cu - Error reporting and device queries ---------------------===//
#include "common.cuh"

namespace moek {
namespace {
thread_local std::string lastError;
} // namespace

const char *lastErrorMessage() { return lastError.c_str(); }

namespace detail {

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
