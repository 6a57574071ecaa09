//===- Backend.h - The interface a runtime backend implements ---*- C++ -*-===//
//
// A context owns one Backend. The C ABI layer (Runtime.cpp) validates every
// argument (pointers, sizes, dtypes, shape relations), resolves the workspace
// (allocating it through the context allocator when the caller passed NULL)
// and only then calls the backend, so a backend may assume:
//   - sizes are non-negative and their products fit in int64_t, T*K and E+1
//     fit in int32_t;
//   - float dtypes are BF16, F16 or F32; weights may be F8E4M3 with scales
//     (ExpertWeights), then the activations are BF16;
//   - a buffer with a nonzero element count is non-null;
//   - `workspace` is non-null, 16-byte aligned, and holds
//     at least `workspaceBytes` = the Workspace.h formula bytes.
// What a backend checks itself is the *data* (topk ids in [0, E)), because
// only it can read the buffers cheaply.
//
// Errors: return a moert_status other than MOERT_SUCCESS and put a message in
// `error` (the caller prefixes nothing: say which op and what). Backends never
// throw (the C ABI layer catches anyway) and never abort.
//
// Ordering: ops may run asynchronously (CUDA: on the backend's stream), but
// must be ordered with each other and with allocate/deallocate, and
// deallocate must be safe while work using the memory is still enqueued.
// synchronize waits for all of it and reports asynchronous failures.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_LIB_RUNTIME_BACKEND_H
#define MOE_LIB_RUNTIME_BACKEND_H

#include "moe-runtime/WorkspaceLayout.h"
#include "moe-runtime/moe_runtime.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <chrono>
#include <string>

namespace moert {

struct GateArgs {
  const void *hidden; // T x H, hiddenDtype
  moert_dtype hiddenDtype;
  const void *gateWeight; // E x H, weightDtype
  moert_dtype weightDtype;
  float *logits; // T x E
  int64_t T, H, E;
};

struct TopKArgs {
  const float *logits; // T x E
  const float *bias;   // E, or null
  int32_t *topkIds;    // T x K
  float *topkWeights;  // T x K
  int64_t T, E, K;
  moert_scoring scoring;
  int64_t nGroup, topkGroup;
  bool renormalize;
  float routedScalingFactor;
};

/// Expert weights: `dtype` (the activations'), or MOERT_F8E4M3 with fp32
/// block scales (then dtype is BF16 and H, I are multiples of
/// MOERT_FP8_BLOCK; docs/runtime.md gives the semantics).
struct ExpertWeights {
  const void *w13;       // [E x] 2I x H
  const void *w2;        // [E x] H x I
  const float *w13Scale; // [E x] 2I/128 x H/128, or null
  const float *w2Scale;  // [E x] H/128 x I/128, or null
  moert_dtype dtype;
  bool fp8() const { return dtype == MOERT_F8E4M3; }
};

struct RoutedExpertsArgs {
  const void *hidden;       // T x H
  const int32_t *topkIds;   // T x K
  const float *topkWeights; // T x K
  ExpertWeights weights;    // E experts
  void *output;             // T x H; may equal hidden
  void *workspace;
  int64_t workspaceBytes;
  moert_dtype dtype;
  int64_t T, H, E, K, I;
};

struct SharedExpertsArgs {
  const void *hidden;    // T x H
  ExpertWeights weights; // one expert
  void *output;          // T x H; may equal hidden
  void *workspace;
  int64_t workspaceBytes;
  moert_dtype dtype;
  int64_t T, H, I;
};

struct AddArgs {
  const void *lhs, *rhs; // T x H
  void *output;          // T x H; may equal lhs or rhs
  moert_dtype dtype;
  int64_t T, H;
  float scale;
};

/// The direction of Backend::copy. "Device" memory is memory from
/// Backend::allocate (host memory on the CPU backend).
enum class CopyDirection { HostToDevice, DeviceToHost, DeviceToDevice };

class Backend {
public:
  virtual ~Backend() = default;

private:
  std::chrono::steady_clock::time_point timerBegin_;

public:

  virtual moert_backend kind() const = 0;
  /// The device ordinal (CPU: 0).
  virtual int device() const { return 0; }
  /// The native queue the backend enqueues its work on (CUDA: the
  /// cudaStream_t), for a communicator to order collectives with the ops;
  /// null on the CPU.
  virtual void *nativeStream() const { return nullptr; }
  /// A short description for messages, e.g. "cpu" or "cuda:0 (NVIDIA H100)".
  virtual std::string describe() const = 0;

  /// Raw memory for the allocator: `bytes` > 0, MOERT_WORKSPACE_ALIGNMENT
  /// aligned. The allocator does the accounting, limits and caching.
  virtual moert_status allocate(int64_t bytes, void **out,
                                std::string &error) = 0;
  /// Releases memory from allocate (`bytes` is the size asked for then).
  virtual void deallocate(void *ptr, int64_t bytes) = 0;
  /// Gives memory the backend keeps for reuse after deallocate (CUDA: the
  /// device pool's unused memory) back to the system.
  virtual void trim() {}
  /// Waits for every op enqueued so far; reports asynchronous failures.
  virtual moert_status synchronize(std::string &error) = 0;

  /// Marks the start of a timed region, in the order of the enqueued ops.
  /// The default reads the host clock after waiting for earlier work; the
  /// CUDA backend records an event on its stream.
  virtual moert_status timerStart(std::string &error) {
    moert_status status = synchronize(error);
    timerBegin_ = std::chrono::steady_clock::now();
    return status;
  }
  /// Waits for the timed region to finish and gives its length in
  /// milliseconds (CUDA: the time between the two events on the device).
  virtual moert_status timerStop(double &milliseconds, std::string &error) {
    moert_status status = synchronize(error);
    milliseconds = std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - timerBegin_)
                       .count();
    return status;
  }

  /// Copies `bytes` (> 0) bytes; the C layer has checked that the device
  /// side lies inside live allocations and that DeviceToDevice ranges do not
  /// overlap. HostToDevice and DeviceToHost are synchronous: ordered after
  /// every op enqueued so far and complete on return (the host side may be
  /// pageable memory). DeviceToDevice is ordered like an op (may be
  /// asynchronous).
  ///
  /// The default is std::memcpy, which is right only for a backend whose
  /// memory is host memory (the CPU backend); any other backend must
  /// override it (CUDA: cudaMemcpyAsync on the backend's stream, then
  /// cudaStreamSynchronize for the host copies). Until it does, copies on it
  /// fail cleanly with MOERT_ERROR_BACKEND_UNAVAILABLE.
  virtual moert_status copy(void *dst, const void *src, int64_t bytes,
                            CopyDirection direction, std::string &error) {
    (void)direction;
    if (kind() != MOERT_BACKEND_CPU) {
      error = describe() +
              ": copies between host and device memory are not implemented "
              "by this backend (Backend::copy)";
      return MOERT_ERROR_BACKEND_UNAVAILABLE;
    }
    std::memcpy(dst, src, size_t(bytes));
    return MOERT_SUCCESS;
  }

  virtual moert_status gate(const GateArgs &args, std::string &error) = 0;
  virtual moert_status topk(const TopKArgs &args, std::string &error) = 0;
  virtual moert_status routedExperts(const RoutedExpertsArgs &args,
                                     std::string &error) = 0;
  virtual moert_status sharedExperts(const SharedExpertsArgs &args,
                                     std::string &error) = 0;
  virtual moert_status add(const AddArgs &args, std::string &error) = 0;
};

/// The CPU reference backend (CPUBackend.cpp).
std::unique_ptr<Backend> createCPUBackend();

/// The CUDA backend (CUDABackend.cpp). Defined only in builds configured with
/// -DMOE_ENABLE_CUDA=ON, which compile that file and define MOE_ENABLE_CUDA;
/// without it, creating a CUDA context reports
/// MOERT_ERROR_BACKEND_UNAVAILABLE. Returns null and sets `error` when the
/// device cannot be used.
std::unique_ptr<Backend> createCUDABackend(int device, std::string &error);

/// Bytes of one element (F8E4M3: 1, BF16/F16: 2, F32/I32: 4).
inline int64_t dtypeBytes(moert_dtype dtype) {
  return dtype == MOERT_F8E4M3                    ? 1
         : dtype == MOERT_F32 || dtype == MOERT_I32 ? 4
                                                    : 2;
}

} // namespace moert

#endif // MOE_LIB_RUNTIME_BACKEND_H
