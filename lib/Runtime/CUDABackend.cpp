//===- CUDABackend.cpp - The CUDA backend of libmoe_runtime ---------------===//
//
// Implements moert::Backend with the launchers of kernels/moe_kernels.h on
// one device and one non-blocking stream owned by the backend:
//   - allocate/deallocate are stream-ordered (cudaMallocAsync/cudaFreeAsync
//     on that stream), so freeing memory that enqueued work still uses is
//     safe without synchronising the device. The device's memory pool keeps
//     what was freed (release threshold: no limit) instead of unmapping it at
//     every synchronization: otherwise each run maps its memory again on the
//     host before its first kernel, and a run that allocates one large arena
//     up front (a planned module) waits for all of it at once, where buffer
//     by buffer the mapping overlaps earlier kernels. trim() gives the pool's
//     unused memory back (moert_empty_cache, and before retrying an
//     allocation that ran out of memory); copies run on the same stream
//     (host copies then wait for it);
//   - every op is enqueued on the stream and returns at once; asynchronous
//     failures surface in synchronize();
//   - the data check the backend owes (topk ids in [0, E)) runs without a
//     host round trip: the routing kernels leave the number of valid pairs in
//     offsets[E] of the workspace; a 4-byte copy to pinned memory is enqueued
//     after each routed call and synchronize() compares it with T*K. Pairs
//     with ids outside [0, E) contribute nothing to the output meanwhile.
//
//===----------------------------------------------------------------------===//

#include "Backend.h"

#include "moe_kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

using namespace moert;

namespace {

/// Routed calls whose id-range check is pending between synchronizations.
constexpr int kMaxPendingChecks = 1024;

moek::DType toDType(moert_dtype d) {
  switch (d) {
  case MOERT_F16: return moek::DType::F16;
  case MOERT_F32: return moek::DType::F32;
  default: return moek::DType::BF16;
  }
}

class CUDABackend final : public Backend {
public:
  CUDABackend(int device) : device_(device) {}

  ~CUDABackend() override {
    cudaSetDevice(device_);
    if (stream_)
      cudaStreamSynchronize(stream_);
    if (cublas_)
      cublasDestroy(cublas_);
    if (validPairs_)
      cudaFreeHost(validPairs_);
    if (timerStart_)
      cudaEventDestroy(timerStart_);
    if (timerStop_)
      cudaEventDestroy(timerStop_);
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  /// Creates the stream, cuBLAS handle and pinned check buffer.
  bool init(std::string &error) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || device_ >= count) {
      error = err != cudaSuccess ? cudaGetErrorString(err)
                                 : "only " + std::to_string(count) +
                                       " CUDA device(s)";
      return false;
    }
    cudaDeviceProp prop;
    if (!ok(cudaSetDevice(device_), "cudaSetDevice", error) ||
        !ok(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties",
            error))
      return false;
    name_ = "cuda:" + std::to_string(device_) + " (" + prop.name + ")";
    if (!ok(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
            "cudaStreamCreate", error) ||
        !ok(cudaHostAlloc(reinterpret_cast<void **>(&validPairs_),
                          sizeof(int32_t) * kMaxPendingChecks,
                          cudaHostAllocDefault),
            "cudaHostAlloc", error))
      return false;
    cudaMemPool_t pool = nullptr;
    uint64_t keep = UINT64_MAX;
    if (!ok(cudaDeviceGetDefaultMemPool(&pool, device_),
            "cudaDeviceGetDefaultMemPool", error) ||
        !ok(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold,
                                    &keep),
            "cudaMemPoolSetAttribute", error))
      return false;
    pool_ = pool;
    if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) {
      cublas_ = nullptr;
      error = "cublasCreate failed";
      return false;
    }
    return true;
  }

  moert_backend kind() const override { return MOERT_BACKEND_CUDA; }
  int device() const override { return device_; }
  void *nativeStream() const override { return stream_; }
  std::string describe() const override { return name_; }

  moert_status allocate(int64_t bytes, void **out,
                        std::string &error) override {
    cudaSetDevice(device_);
    void *ptr = nullptr;
    cudaError_t err = cudaMallocAsync(&ptr, size_t(bytes), stream_);
    if (err == cudaErrorMemoryAllocation) {
      // Memory the pool keeps may be what fills the device.
      cudaGetLastError();
      trim();
      err = cudaMallocAsync(&ptr, size_t(bytes), stream_);
    }
    if (err != cudaSuccess) {
      cudaGetLastError(); // not sticky: clear it
      error = name_ + ": cudaMallocAsync of " + std::to_string(bytes) +
              " bytes failed: " + cudaGetErrorString(err);
      return err == cudaErrorMemoryAllocation ? MOERT_ERROR_OUT_OF_MEMORY
                                              : MOERT_ERROR_DEVICE;
    }
    if (reinterpret_cast<uintptr_t>(ptr) % MOERT_WORKSPACE_ALIGNMENT != 0) {
      cudaFreeAsync(ptr, stream_);
      error = name_ + ": cudaMallocAsync returned a pointer that is not " +
              std::to_string(MOERT_WORKSPACE_ALIGNMENT) + "-byte aligned";
      return MOERT_ERROR_INTERNAL;
    }
    *out = ptr;
    return MOERT_SUCCESS;
  }

  void trim() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_); // frees enqueued before are then unused
    if (pool_)
      cudaMemPoolTrimTo(pool_, 0);
  }

  void deallocate(void *ptr, int64_t) override {
    cudaSetDevice(device_);
    cudaFreeAsync(ptr, stream_); // ordered after the work already enqueued
  }

  moert_status synchronize(std::string &error) override {
    cudaSetDevice(device_);
    cudaError_t err = cudaStreamSynchronize(stream_);
    if (err != cudaSuccess) {
      error = name_ + ": " + cudaGetErrorString(err);
      pending_.clear();
      return MOERT_ERROR_DEVICE;
    }
    return checkPending(error);
  }

  moert_status timerStart(std::string &error) override {
    cudaSetDevice(device_);
    if ((!timerStart_ &&
         !ok(cudaEventCreate(&timerStart_), "cudaEventCreate", error)) ||
        (!timerStop_ &&
         !ok(cudaEventCreate(&timerStop_), "cudaEventCreate", error)))
      return MOERT_ERROR_DEVICE;
    return ok(cudaEventRecord(timerStart_, stream_), "cudaEventRecord", error)
               ? MOERT_SUCCESS
               : MOERT_ERROR_DEVICE;
  }

  moert_status timerStop(double &milliseconds, std::string &error) override {
    cudaSetDevice(device_);
    float ms = 0;
    if (!timerStart_) {
      error = "the timer was not started (moert_timer_start)";
      return MOERT_ERROR_INVALID_ARGUMENT;
    }
    if (!ok(cudaEventRecord(timerStop_, stream_), "cudaEventRecord", error))
      return MOERT_ERROR_DEVICE;
    moert_status status = synchronize(error);
    if (status != MOERT_SUCCESS)
      return status;
    if (!ok(cudaEventElapsedTime(&ms, timerStart_, timerStop_),
            "cudaEventElapsedTime", error))
      return MOERT_ERROR_DEVICE;
    milliseconds = ms;
    return MOERT_SUCCESS;
  }

  moert_status copy(void *dst, const void *src, int64_t bytes,
                    CopyDirection direction, std::string &error) override {
    cudaSetDevice(device_);
    cudaMemcpyKind kind = direction == CopyDirection::HostToDevice
                              ? cudaMemcpyHostToDevice
                          : direction == CopyDirection::DeviceToHost
                              ? cudaMemcpyDeviceToHost
                              : cudaMemcpyDeviceToDevice;
    // On the backend's stream: ordered after every op enqueued so far.
    cudaError_t err = cudaMemcpyAsync(dst, src, size_t(bytes), kind, stream_);
    if (err == cudaSuccess && direction != CopyDirection::DeviceToDevice)
      err = cudaStreamSynchronize(stream_); // host copies complete on return
    if (err != cudaSuccess) {
      error = "copy (" + name_ + "): " + cudaGetErrorString(err);
      return MOERT_ERROR_DEVICE;
    }
    return MOERT_SUCCESS;
  }

  moert_status gate(const GateArgs &a, std::string &error) override {
    cudaSetDevice(device_);
    return status("moert_gate",
                  moek::gate(a.hidden, toDType(a.hiddenDtype), a.gateWeight,
                             toDType(a.weightDtype), a.logits, a.T, a.H, a.E,
                             stream_, cublas_),
                  error);
  }

  moert_status topk(const TopKArgs &a, std::string &error) override {
    cudaSetDevice(device_);
    moek::TopKParams p;
    p.k = static_cast<int>(a.K);
    p.scoring = a.scoring == MOERT_SCORING_SIGMOID ? moek::Scoring::Sigmoid
                                                   : moek::Scoring::Softmax;
    p.nGroup = static_cast<int>(a.nGroup);
    p.topkGroup = static_cast<int>(a.topkGroup);
    p.renormalize = a.renormalize;
    p.routedScalingFactor = a.routedScalingFactor;
    return status("moert_topk",
                  moek::topk(a.logits, a.bias, a.topkIds, a.topkWeights, a.T,
                             a.E, p, stream_),
                  error);
  }

  moert_status routedExperts(const RoutedExpertsArgs &a,
                             std::string &error) override {
    cudaSetDevice(device_);
    const ExpertWeights &w = a.weights;
    // The fp8 kernels need sm_90 and say so (cudaErrorNotSupported with the
    // reason); nothing falls back to bf16.
    moert_status s = status(
        "moert_routed_experts",
        w.fp8() ? moek::routedExpertsFp8(
                      a.hidden, a.topkIds, a.topkWeights, w.w13, w.w13Scale,
                      w.w2, w.w2Scale, a.output, a.T, a.H, a.E, a.K, a.I,
                      a.workspace, size_t(a.workspaceBytes), stream_)
                : moek::routedExperts(a.hidden, a.topkIds, a.topkWeights,
                                      w.w13, w.w2, a.output, a.T, a.H, a.E,
                                      a.K, a.I, toDType(a.dtype), a.workspace,
                                      size_t(a.workspaceBytes), stream_),
        error);
    if (s != MOERT_SUCCESS || a.T == 0)
      return s;
    // offsets[E] = number of pairs with a valid id (workspace layout of
    // Backend.h: the expert offsets come first).
    if (pending_.size() == kMaxPendingChecks) {
      moert_status sync = synchronize(error);
      if (sync != MOERT_SUCCESS)
        return sync;
    }
    int slot = static_cast<int>(pending_.size());
    // Both layouts start with the expert offsets.
    const int32_t *offsets =
        w.fp8() ? carveRoutedFp8Workspace(a.workspace, a.T, a.H, a.E, a.K, a.I)
                      .expertOffsets
                : carveRoutedWorkspace(a.workspace, a.T, a.H, a.E, a.K, a.I,
                                       dtypeBytes(a.dtype))
                      .expertOffsets;
    cudaError_t err =
        cudaMemcpyAsync(&validPairs_[slot], offsets + a.E,
                        sizeof(int32_t), cudaMemcpyDeviceToHost, stream_);
    if (err != cudaSuccess)
      return status("moert_routed_experts", err, error);
    pending_.push_back({a.T * a.K, a.E});
    return MOERT_SUCCESS;
  }

  moert_status sharedExperts(const SharedExpertsArgs &a,
                             std::string &error) override {
    cudaSetDevice(device_);
    const ExpertWeights &w = a.weights;
    return status(
        "moert_shared_experts",
        w.fp8() ? moek::sharedExpertsFp8(a.hidden, w.w13, w.w13Scale, w.w2,
                                         w.w2Scale, a.output, a.T, a.H, a.I,
                                         a.workspace, size_t(a.workspaceBytes),
                                         stream_)
                : moek::sharedExperts(a.hidden, w.w13, w.w2, a.output, a.T, a.H,
                                      a.I, toDType(a.dtype), a.workspace,
                                      size_t(a.workspaceBytes), stream_),
        error);
  }

  moert_status add(const AddArgs &a, std::string &error) override {
    cudaSetDevice(device_);
    return status("moert_add",
                  moek::add(a.lhs, a.rhs, a.output, a.T * a.H, a.scale,
                            toDType(a.dtype), stream_),
                  error);
  }

private:
  struct PendingCheck {
    int64_t pairs;
    int64_t experts;
  };

  static bool ok(cudaError_t err, const char *what, std::string &error) {
    if (err == cudaSuccess)
      return true;
    error = std::string(what) + ": " + cudaGetErrorString(err);
    return false;
  }

  moert_status status(const char *op, cudaError_t err, std::string &error) {
    if (err == cudaSuccess)
      return MOERT_SUCCESS;
    const char *detail = moek::lastErrorMessage();
    error = std::string(op) + " (" + name_ + "): " +
            (detail && *detail ? detail : cudaGetErrorString(err));
    switch (err) {
    case cudaErrorInvalidValue: return MOERT_ERROR_INVALID_ARGUMENT;
    case cudaErrorMemoryAllocation: return MOERT_ERROR_OUT_OF_MEMORY;
    default: return MOERT_ERROR_DEVICE;
    }
  }

  moert_status checkPending(std::string &error) {
    moert_status s = MOERT_SUCCESS;
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (validPairs_[i] != pending_[i].pairs && s == MOERT_SUCCESS) {
        error = "moert_routed_experts: " +
                std::to_string(pending_[i].pairs - validPairs_[i]) + " of the " +
                std::to_string(pending_[i].pairs) +
                " topk_ids are out of range [0, " +
                std::to_string(pending_[i].experts) +
                ") (found at synchronize; those pairs were ignored)";
        s = MOERT_ERROR_INVALID_ARGUMENT;
      }
    }
    pending_.clear();
    return s;
  }

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  cudaEvent_t timerStart_ = nullptr, timerStop_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int32_t *validPairs_ = nullptr;
  std::vector<PendingCheck> pending_;
};

} // namespace

/// Makes a tuning file (docs/kernels.md) the kernels' process-wide table, for
/// every CUDA context. moe-run --tuning-file looks it up with dlsym, since a
/// runtime without the CUDA backend does not define it. `error` receives the
/// reason on failure (truncated to errorBytes).
extern "C" MOERT_API moert_status
moert_cuda_load_tuning_file(const char *path, char *error, size_t errorBytes) {
  std::string why;
  if (path && moek::loadTuningFile(path, why))
    return MOERT_SUCCESS;
  if (!path)
    why = "no path";
  if (error && errorBytes) {
    std::strncpy(error, why.c_str(), errorBytes - 1);
    error[errorBytes - 1] = '\0';
  }
  return MOERT_ERROR_INVALID_ARGUMENT;
}

std::unique_ptr<Backend> moert::createCUDABackend(int device,
                                                  std::string &error) {
  std::unique_ptr<CUDABackend> backend(new (std::nothrow) CUDABackend(device));
  if (!backend) {
    error = "out of host memory";
    return nullptr;
  }
  if (!backend->init(error))
    return nullptr;
  return backend;
}
