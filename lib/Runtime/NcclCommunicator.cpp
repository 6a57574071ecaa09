//===- NcclCommunicator.cpp - One CUDA device per rank, collectives by NCCL ===//
//
// The CUDA group: rank r of n runs on CUDA device devices[r], every rank a
// thread of this process with its own context (moert_context) and stream.
// The n communicators come from one ncclCommInitAll.
//
// moe.all_reduce on rank r:
//   1. arrive (on the host): the rank publishes its call and waits until
//      every rank has entered the same collective; the last to arrive checks
//      that they all called the same collective with the same sizes (else
//      the group is aborted with both calls named). Waiting ends early when
//      the group is aborted or a rank left it, and at the timeout
//      (setTimeout), which aborts the group naming the ranks that did not
//      come. NCCL itself compares nothing (a mismatch would hang or corrupt
//      on the device), and it connects the ranks for an algorithm inside the
//      first ncclAllReduce that uses it, waiting on the host for the peers
//      in a wait the group's abort cannot end; after the arrival every peer
//      is known to be about to make the same call;
//   2. enqueue: ncclAllReduce(input, output, T*H, dtype, ncclSum) on the
//      rank's stream (Backend::nativeStream), with the rank's device
//      current, so the collective is ordered with the rank's other ops; then
//      ncclCommGetAsyncError. The call returns without waiting for the sum:
//      it is in the output once the stream gets there, and device failures
//      surface in moert_context_synchronize as for any op.
// NCCL chooses its summation order (algorithm, protocol, chunking), so a
// result may differ from the CPU group's rank-order f32 sum by a rounding of
// the dtype; every rank receives the same bits (each element is reduced once
// and the result copied to every rank).
//
// Timeout: NCCL's waits for the other ranks' data happen on the device, in
// kernels on each rank's stream, where no host timeout reaches them; the
// timeout applies only where the host waits, the arrival of step 1.
//
// NVLink multicast (NVLS) is never requested: this file creates no multicast
// objects and gives NCCL no configuration or environment that enables it
// (NCCL's environment is left as the process has it).
//
// Failure: abort(reason) ends the whole group (as in the CPU group): the
// first reason is kept, an atomic flag is set, the ranks waiting to arrive
// fail, and every rank's ncclComm_t is aborted exactly once with
// ncclCommAbort, which also makes NCCL kernels still running on the devices
// quit, so no stream waits forever for a failed peer. Every later collective
// of every rank fails with MOERT_ERROR_COLLECTIVE and the reason. NCCL calls
// on one communicator must not overlap, and once the ranks have arrived each
// must make its call (a peer may be waiting inside its own for it to
// connect), so a rank between its arrival and the end of its NCCL calls when
// the group is aborted aborts its communicator itself afterwards. An NCCL
// error from ncclAllReduce or ncclCommGetAsyncError ends the group the same
// way.
//
// Destruction leaves the group (ranks waiting for this one fail, as in the
// CPU group) and calls ncclCommDestroy, or nothing if the group was aborted
// (ncclCommAbort released the communicator). NCCL frees the communicators of
// one ncclCommInitAll when the last of them is released.
//
//===----------------------------------------------------------------------===//
#ifdef MOE_ENABLE_NCCL

#include "Communicator.h"
#include "Internal.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

using namespace moert;

namespace {

/// "<NCCL's string for result> (<NCCL's last error>)".
std::string ncclMessage(ncclResult_t result, ncclComm_t comm) {
  std::string message = ncclGetErrorString(result);
  const char *last = ncclGetLastError(comm);
  if (last && *last)
    message += cat(" (", last, ")");
  return message;
}

/// Restores the calling thread's current CUDA device: NCCL's destroy and
/// abort make the communicator's device current and leave it so, and they
/// may run on any thread (moert_comm_abort).
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
  /// The call of the collective the rank entered last.
  CollectiveCall call{"", MOERT_BF16, 0, 0};
  /// Collectives this rank has entered.
  int64_t entered = 0;
  /// The rank has arrived at a collective and has not finished its NCCL
  /// calls on `comm` yet (no one else may release `comm` meanwhile).
  bool inCall = false;
  /// `comm` was destroyed or aborted.
  bool released = false;
  /// The rank's communicator was destroyed.
  bool left = false;
};

/// The state the ranks of one group share; `mutex` guards all of it
/// (`aborted` is atomic only so that it may be read without the lock).
struct Group {
  explicit Group(int n) : ranks(size_t(n)) {}

  int size() const { return int(ranks.size()); }

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<RankState> ranks;
  /// The arrival barrier: ranks arrived at the current collective, and the
  /// number of collectives all ranks have arrived at.
  int arrived = 0;
  uint64_t generation = 0;
  std::atomic<bool> aborted{false};
  std::string reason;

  /// Ends the group with `why` (the first reason is kept) and wakes the
  /// waiting ranks. Returns the communicators to abort now, outside the
  /// lock: each once, and none whose rank is inCall (that rank aborts its
  /// own when its NCCL calls return).
  std::vector<ncclComm_t> abortLocked(const std::string &why) {
    if (!aborted.load()) {
      reason = why;
      aborted.store(true);
    }
    changed.notify_all();
    std::vector<ncclComm_t> release;
    for (RankState &rank : ranks)
      if (!rank.inCall && !rank.released) {
        rank.released = true;
        release.push_back(rank.comm);
      }
    return release;
  }

  /// The first rank that left the group, or -1.
  int leftRank() const {
    for (int r = 0; r < size(); ++r)
      if (ranks[size_t(r)].left)
        return r;
    return -1;
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
      me.left = true;
      group->changed.notify_all();
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
  int device() const override { return group->ranks[size_t(rank_)].device; }

  void abort(const std::string &reason) override {
    std::vector<ncclComm_t> release;
    {
      std::lock_guard<std::mutex> lock(group->mutex);
      release = group->abortLocked(reason);
    }
    abortComms(release);
  }

  /// Applies to the arrival only (see the file comment).
  void setTimeout(int64_t milliseconds) override {
    std::lock_guard<std::mutex> lock(group->mutex);
    timeoutMs = milliseconds;
  }

  moert_status allReduce(Backend &backend, const CollectiveCall &call,
                         const void *input, void *output,
                         std::string &error) override;

private:
  /// Step 1 of the file comment for collective #index, with the lock held.
  /// False (and `error`, and what to abort in `release`) when the group
  /// ends instead.
  bool arrive(std::unique_lock<std::mutex> &lock, int64_t index,
              std::vector<ncclComm_t> &release, std::string &error);

  std::shared_ptr<Group> group;
  const int rank_;
  int64_t timeoutMs = 60000;
};

bool NcclCommunicator::arrive(std::unique_lock<std::mutex> &lock,
                              int64_t index, std::vector<ncclComm_t> &release,
                              std::string &error) {
  Group &g = *group;
  const CollectiveCall &call = g.ranks[size_t(rank_)].call;
  auto failed = [&](const std::string &why) {
    release = g.abortLocked(why);
    error = g.reason;
    return false;
  };
  auto leftMessage = [&]() {
    return cat("collective #", index, ": rank ", g.leftRank(),
               " has left the group (its program ran fewer collectives)");
  };
  if (g.aborted.load())
    return failed(g.reason);
  if (g.leftRank() >= 0)
    return failed(leftMessage());
  if (g.arrived == g.size() - 1) {
    // The last to arrive compares the calls, then releases the others.
    for (int r = 0; r < g.size(); ++r)
      if (!(g.ranks[size_t(r)].call == call))
        return failed(cat("collective #", index,
                          " differs between ranks: rank ", r, " runs ",
                          g.ranks[size_t(r)].call.describe(), ", rank ",
                          rank_, " runs ", call.describe()));
    // Every rank is now committed to its NCCL call, even if the group is
    // aborted before it makes it: a peer may already wait inside its own
    // call for this rank to connect. So no abort releases their
    // communicators until the calls return.
    if (call.T * call.H > 0)
      for (RankState &rank : g.ranks)
        rank.inCall = true;
    g.arrived = 0;
    ++g.generation;
    g.changed.notify_all();
    return true;
  }
  ++g.arrived;
  const uint64_t mine = g.generation;
  auto done = [&]() {
    return g.generation != mine || g.aborted.load() || g.leftRank() >= 0;
  };
  if (timeoutMs > 0) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(timeoutMs);
    if (!g.changed.wait_until(lock, deadline, done)) {
      std::string missing;
      for (int r = 0; r < g.size(); ++r)
        if (g.ranks[size_t(r)].entered < index + 1)
          missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      return failed(cat("collective #", index, " (", call.describe(),
                        "): rank ", rank_, " waited ", timeoutMs,
                        " ms for the others to arrive",
                        missing.empty() ? std::string()
                                        : " for rank(s) " + missing));
    }
  } else {
    g.changed.wait(lock, done);
  }
  if (g.generation != mine)
    return true; // committed (see above), even if aborted since
  return failed(g.aborted.load() ? g.reason : leftMessage());
}

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
  ncclDataType_t type;
  if (!toNcclType(call.dtype, type)) {
    error = cat(call.describe(), " on rank ", rank_,
                ": NCCL has no reduction for this dtype");
    return MOERT_ERROR_INVALID_ARGUMENT;
  }
  if (backend.kind() != MOERT_BACKEND_CUDA || backend.device() != me.device) {
    error = cat(call.describe(), ": rank ", rank_, " is on CUDA device ",
                me.device, " but the calling context is ", backend.describe());
    return MOERT_ERROR_INVALID_ARGUMENT;
  }
  const int64_t count = call.T * call.H;

  int64_t index = 0;
  std::vector<ncclComm_t> release;
  {
    std::unique_lock<std::mutex> lock(g.mutex);
    index = me.entered++;
    me.call = call;
    if (!arrive(lock, index, release, error)) {
      lock.unlock();
      abortComms(release);
      return MOERT_ERROR_COLLECTIVE;
    }
  }
  if (count == 0)
    return MOERT_SUCCESS;

  // The arrival set inCall: until this thread clears it, a group abort
  // leaves this rank's communicator to it.
  std::string failure;
  const std::string what = cat("collective #", index, " ", call.describe(),
                               " on rank ", rank_, " (", backend.describe(),
                               ")");
  if (cudaError_t err = cudaSetDevice(me.device); err != cudaSuccess) {
    failure = cat("cudaSetDevice(", me.device, ") for ", what, ": ",
                  cudaGetErrorString(err));
  } else {
    auto stream = static_cast<cudaStream_t>(backend.nativeStream());
    ncclResult_t result = ncclAllReduce(input, output, size_t(count), type,
                                        ncclSum, me.comm, stream);
    if (result != ncclSuccess) {
      failure =
          cat("ncclAllReduce for ", what, ": ", ncclMessage(result, me.comm));
    } else {
      ncclResult_t async = ncclSuccess;
      result = ncclCommGetAsyncError(me.comm, &async);
      if (result != ncclSuccess)
        failure = cat("ncclCommGetAsyncError after ", what, ": ",
                      ncclMessage(result, me.comm));
      else if (async != ncclSuccess)
        failure = cat("NCCL reported an asynchronous error after ", what,
                      ": ", ncclMessage(async, me.comm));
    }
  }

  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    me.inCall = false;
    if (!failure.empty() || g.aborted.load()) {
      // Ends the group with this failure (unless it has ended already) and
      // releases this rank's communicator, which an abort left to us.
      release = g.abortLocked(failure);
      ended = true;
      error = failure.empty() ? g.reason : failure;
    }
  }
  abortComms(release);
  return ended ? MOERT_ERROR_COLLECTIVE : MOERT_SUCCESS;
}

} // namespace

moert_status
moert::createNcclGroup(int n, const int32_t *devices,
                       std::vector<std::unique_ptr<Communicator>> &out,
                       std::string &error) {
  std::string list;
  for (int r = 0; r < n; ++r)
    list += cat(r ? ", " : "", devices[r]);

  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    cudaGetLastError(); // not sticky: clear it
    error = cat("no CUDA device for devices ", list,
                ": cudaGetDeviceCount: ", cudaGetErrorString(err));
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
    // ncclCommInitAll restores the current device, though not on every
    // failure path.
    CurrentDeviceGuard guard;
    result = ncclCommInitAll(comms.data(), n, ordinals.data());
  }
  if (result != ncclSuccess) {
    error = cat("ncclCommInitAll over devices ", list, ": ",
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
