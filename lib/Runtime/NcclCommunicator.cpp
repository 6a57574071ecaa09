//===- NcclCommunicator.cpp - One CUDA device per rank, collectives by NCCL ===//
//
// The CUDA group: rank r of n runs on CUDA device devices[r], every rank a
// thread of this process with its own CUDA context (moert_context). The n
// communicators come from one ncclCommInitAll. A collective is enqueued with
// ncclAllReduce on the calling rank's stream (Backend::nativeStream), so it is
// ordered with the rank's other ops, and returns without waiting for it: the
// sum is in the output once the stream gets there (moert_context_synchronize
// reports device failures as for any op). NCCL chooses its summation order
// (algorithm, protocol, chunking), so a result may differ from the CPU
// group's rank-order f32 sum by a rounding of the dtype; every rank receives
// the same bits (each chunk is reduced once, then copied to every rank).
//
// NVLink multicast (NVLS) is never requested: this file creates no multicast
// objects and passes NCCL no configuration or environment that enables it;
// it leaves NCCL's environment as the process has it.
//
// What the host checks, which NCCL cannot (a mismatch hangs or corrupts on
// the device): every rank's k-th collective is the same call (op, dtype, T,
// H). The first rank to enqueue collective #k records it, the others compare
// with it, the last to do so forgets it. A mismatch ends the group with both
// calls named, as in the CPU group.
//
// Failure: abort(reason) ends the whole group, not only this rank (as in the
// CPU group, and so that no rank's stream waits forever for a failed peer):
// the first reason is kept, an atomic flag is set, and every rank's
// ncclComm_t is aborted exactly once with ncclCommAbort, which also makes the
// NCCL kernels still running on the devices quit. Every later collective of
// every rank fails with MOERT_ERROR_COLLECTIVE and the reason. NCCL calls on
// one communicator must not overlap, so a rank that is inside an NCCL call
// when the group is aborted aborts its communicator itself when that call
// returns. An NCCL error from ncclAllReduce or from ncclCommGetAsyncError
// after it ends the group the same way.
//
// Known limit: NCCL connects the ranks for an algorithm the first time a
// collective uses it, inside ncclAllReduce, and that waits on the host for
// the peers to reach the same collective. A rank waiting there for a peer
// that failed before reaching it is not woken by the group's abort (its
// communicator cannot be aborted while the call is running). Non-blocking
// communicators (ncclCommInitRankConfig with config.blocking = 0, polled with
// ncclCommGetAsyncError) would lift this, and give the timeout a host wait to
// apply to.
//
// Timeout: NCCL's waits for the other ranks happen on the device, in kernels
// on each rank's stream; the host does not wait for the collective here, and
// where it waits later (Backend::synchronize) it does not know the
// communicator. So setTimeout only stores the value; it is not applied (see
// the limit above).
//
// Destruction: ncclCommDestroy, unless the group was aborted (the
// communicator was then released by ncclCommAbort). NCCL frees the
// communicators of one ncclCommInitAll when the last of them is released.
//
//===----------------------------------------------------------------------===//
#ifdef MOE_ENABLE_NCCL

#include "Communicator.h"
#include "Internal.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <deque>
#include <mutex>

using namespace moert;

namespace {

/// "unhandled cuda error (run with NCCL_DEBUG=INFO for details) (<NCCL's
/// last error>)".
std::string ncclMessage(ncclResult_t result, ncclComm_t comm) {
  std::string message = ncclGetErrorString(result);
  const char *last = ncclGetLastError(comm);
  if (last && *last)
    message += cat(" (", last, ")");
  return message;
}

/// Restores the calling thread's current CUDA device: NCCL's destroy and
/// abort set it to the communicator's device and leave it there, and abort()
/// may run on any thread.
class CurrentDeviceGuard {
public:
  CurrentDeviceGuard() { saved = cudaGetDevice(&device) == cudaSuccess; }
  ~CurrentDeviceGuard() {
    if (saved)
      cudaSetDevice(device);
  }

private:
  int device = 0;
  bool saved = false;
};

void abortComms(const std::vector<ncclComm_t> &comms) {
  if (comms.empty())
    return;
  CurrentDeviceGuard guard;
  for (ncclComm_t comm : comms)
    ncclCommAbort(comm);
}

struct RankState {
  ncclComm_t comm = nullptr;
  int device = 0;
  /// The rank's thread is inside an NCCL call on `comm`.
  bool inCall = false;
  /// `comm` was destroyed or aborted.
  bool released = false;
  /// Collectives this rank has entered.
  int64_t entered = 0;
};

/// Collective #index as the first rank to enter it called it.
struct PendingCall {
  CollectiveCall call;
  int rank;
  int seen;
};

/// The state the ranks of one group share. `mutex` guards everything but
/// `aborted`, which is also read without it.
struct Group {
  explicit Group(int n) : ranks(size_t(n)) {}

  int size() const { return int(ranks.size()); }

  std::mutex mutex;
  std::vector<RankState> ranks;
  std::atomic<bool> aborted{false};
  std::string reason;
  /// Collectives #firstPending, #firstPending + 1, ... that not every rank
  /// has entered yet.
  std::deque<PendingCall> pending;
  int64_t firstPending = 0;

  /// Ends the group with `why` (the first reason is kept). Returns the
  /// communicators to abort now, outside the lock: those whose rank is not
  /// inside an NCCL call (the others are aborted by their rank when the call
  /// returns). Each is returned once.
  std::vector<ncclComm_t> abortLocked(const std::string &why) {
    if (!aborted.load()) {
      reason = why;
      aborted.store(true);
    }
    std::vector<ncclComm_t> release;
    for (RankState &rank : ranks)
      if (!rank.inCall && !rank.released) {
        rank.released = true;
        release.push_back(rank.comm);
      }
    return release;
  }

  /// Rank `r` enters collective #index with `call`: "" if it matches what
  /// the others called as #index, else the message.
  std::string matchLocked(int r, int64_t index, const CollectiveCall &call) {
    size_t offset = size_t(index - firstPending);
    if (offset == pending.size())
      pending.push_back(PendingCall{call, r, 0});
    PendingCall &first = pending[offset];
    if (!(first.call == call))
      return cat("collective #", index, " differs between ranks: rank ",
                 first.rank, " runs ", first.call.describe(), ", rank ", r,
                 " runs ", call.describe());
    ++first.seen;
    while (!pending.empty() && pending.front().seen == size()) {
      pending.pop_front();
      ++firstPending;
    }
    return std::string();
  }
};

class NcclCommunicator final : public Communicator {
public:
  NcclCommunicator(std::shared_ptr<Group> group, int rank)
      : group(std::move(group)), rank_(rank) {}

  ~NcclCommunicator() override {
    ncclComm_t comm = nullptr;
    bool abort = false;
    {
      std::lock_guard<std::mutex> lock(group->mutex);
      RankState &me = group->ranks[size_t(rank_)];
      if (!me.released) {
        me.released = true;
        comm = me.comm;
        abort = group->aborted.load();
      }
    }
    if (!comm)
      return;
    CurrentDeviceGuard guard;
    if (abort)
      ncclCommAbort(comm);
    else
      ncclCommDestroy(comm);
  }

  int rank() const override { return rank_; }
  int size() const override { return group->size(); }
  moert_backend backend() const override { return MOERT_BACKEND_CUDA; }
  int device() const override {
    return group->ranks[size_t(rank_)].device;
  }

  void abort(const std::string &reason) override {
    std::vector<ncclComm_t> release;
    {
      std::lock_guard<std::mutex> lock(group->mutex);
      release = group->abortLocked(reason);
    }
    abortComms(release);
  }

  /// Stored only: NCCL's waits happen on the device (see the file comment).
  void setTimeout(int64_t milliseconds) override { timeoutMs = milliseconds; }

  moert_status allReduce(Backend &backend, const CollectiveCall &call,
                         const void *input, void *output,
                         std::string &error) override;

private:
  std::shared_ptr<Group> group;
  const int rank_;
  int64_t timeoutMs = 60000; // unused, see setTimeout
};

bool toNcclType(moert_dtype dtype, ncclDataType_t &type) {
  switch (dtype) {
  case MOERT_BF16:
    type = ncclBfloat16;
    return true;
  case MOERT_F16:
    type = ncclFloat16;
    return true;
  case MOERT_F32:
    type = ncclFloat32;
    return true;
  default:
    return false;
  }
}

moert_status NcclCommunicator::allReduce(Backend &backend,
                                         const CollectiveCall &call,
                                         const void *input, void *output,
                                         std::string &error) {
  Group &g = *group;
  RankState &me = g.ranks[size_t(rank_)];
  const int64_t count = call.T * call.H;
  ncclDataType_t type;
  if (!toNcclType(call.dtype, type)) {
    error = cat(call.describe(), " on rank ", rank_,
                ": NCCL has no reduction for this dtype");
    return MOERT_ERROR_INVALID_ARGUMENT;
  }
  if (backend.kind() != MOERT_BACKEND_CUDA ||
      backend.device() != me.device) {
    error = cat(call.describe(), ": rank ", rank_, " is on CUDA device ",
                me.device, " but the calling context is ",
                backend.describe());
    return MOERT_ERROR_INVALID_ARGUMENT;
  }

  int64_t index = 0;
  std::vector<ncclComm_t> release;
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    if (g.aborted.load()) {
      error = g.reason;
      return MOERT_ERROR_COLLECTIVE;
    }
    index = me.entered++;
    std::string mismatch = g.matchLocked(rank_, index, call);
    if (!mismatch.empty()) {
      release = g.abortLocked(mismatch);
      error = g.reason;
    } else if (count > 0) {
      me.inCall = true;
    }
  }
  if (!error.empty()) {
    abortComms(release);
    return MOERT_ERROR_COLLECTIVE;
  }
  if (count == 0)
    return MOERT_SUCCESS;

  // From here to the end of the NCCL calls the communicator is in use: the
  // group's abort leaves it to this thread.
  std::string failure;
  const std::string what =
      cat("collective #", index, " ", call.describe(), " on rank ", rank_,
          " (", backend.describe(), ")");
  if (cudaError_t err = cudaSetDevice(me.device); err != cudaSuccess) {
    failure = cat("cudaSetDevice(", me.device, ") for ", what, ": ",
                  cudaGetErrorString(err));
  } else {
    auto stream = static_cast<cudaStream_t>(backend.nativeStream());
    ncclResult_t result = ncclAllReduce(input, output, size_t(count), type,
                                        ncclSum, me.comm, stream);
    if (result != ncclSuccess && result != ncclInProgress) {
      failure = cat("ncclAllReduce for ", what, ": ",
                    ncclMessage(result, me.comm));
    } else {
      ncclResult_t async = ncclSuccess;
      result = ncclCommGetAsyncError(me.comm, &async);
      if (result != ncclSuccess)
        failure = cat("ncclCommGetAsyncError after ", what, ": ",
                      ncclMessage(result, me.comm));
      else if (async != ncclSuccess && async != ncclInProgress)
        failure = cat("NCCL reported an asynchronous error after ", what,
                      ": ", ncclMessage(async, me.comm));
    }
  }

  bool aborted = false;
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    me.inCall = false;
    if (!failure.empty() || g.aborted.load()) {
      // Ends the group with this failure (unless it already ended), and
      // releases this rank's communicator, which the abort had left to us.
      release = g.abortLocked(failure);
      aborted = true;
      error = failure.empty() ? g.reason : failure;
    }
  }
  abortComms(release);
  return aborted ? MOERT_ERROR_COLLECTIVE : MOERT_SUCCESS;
}

std::string deviceList(int n, const int32_t *devices) {
  std::string list;
  for (int r = 0; r < n; ++r)
    list += cat(r ? ", " : "", devices[r]);
  return list;
}

} // namespace

moert_status
moert::createNcclGroup(int n, const int32_t *devices,
                       std::vector<std::unique_ptr<Communicator>> &out,
                       std::string &error) {
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    cudaGetLastError();
    error = cat("no CUDA device for the NCCL group: cudaGetDeviceCount: ",
                cudaGetErrorString(err));
    return MOERT_ERROR_BACKEND_UNAVAILABLE;
  }
  for (int r = 0; r < n; ++r)
    if (devices[r] >= count) {
      error = cat("rank ", r, "'s CUDA device ", devices[r],
                  " is unavailable: only ", count, " CUDA device(s)");
      return MOERT_ERROR_BACKEND_UNAVAILABLE;
    }

  std::vector<ncclComm_t> comms(size_t(n), nullptr);
  std::vector<int> ordinals(devices, devices + n);
  ncclResult_t result;
  {
    // ncclCommInitAll restores the current device itself, but not on every
    // failure path.
    CurrentDeviceGuard guard;
    result = ncclCommInitAll(comms.data(), n, ordinals.data());
  }
  if (result != ncclSuccess) {
    error = cat("ncclCommInitAll over devices ", deviceList(n, devices), ": ",
                ncclMessage(result, nullptr));
    return result == ncclUnhandledCudaError ? MOERT_ERROR_DEVICE
                                            : MOERT_ERROR_COLLECTIVE;
  }

  auto group = std::make_shared<Group>(n);
  for (int r = 0; r < n; ++r) {
    group->ranks[size_t(r)].comm = comms[size_t(r)];
    group->ranks[size_t(r)].device = devices[r];
  }
  out.clear();
  for (int r = 0; r < n; ++r)
    out.push_back(std::make_unique<NcclCommunicator>(group, r));
  return MOERT_SUCCESS;
}

#endif // MOE_ENABLE_NCCL
