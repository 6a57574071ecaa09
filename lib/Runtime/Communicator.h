//===- Communicator.h - The ranks of a group and their collectives -*- C++ -*-//
//
// A Communicator is one rank's member of a group created at once in one
// process (moert_comm_create_group). It runs the collective ops: the op
// contract marks them (OpSpec::collective), Ops.cpp validates a call as for
// any op, then hands it here instead of to the backend. Two implementations:
//
//  - the CPU group (CPUCommunicator.cpp): ranks are threads, contexts on the
//    CPU backend; a collective meets in shared memory, checks that every
//    rank called the same collective with the same sizes, and sums in rank
//    order in f32 (deterministic, identical bits on every rank);
//  - NCCL (NcclCommunicator.cpp, builds with CUDA and NCCL): one device per
//    rank, ncclCommInitAll, the collective enqueued on the context's stream.
//
// Failure: abort() ends the group with a reason; every waiting or later
// collective of every rank fails with it. A context with a communicator
// aborts it when it records an error (Internal.h), so one rank's failure
// reaches the others instead of leaving them waiting.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_LIB_RUNTIME_COMMUNICATOR_H
#define MOE_LIB_RUNTIME_COMMUNICATOR_H

#include "Backend.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moert {

/// What a rank passes to a collective: every rank must pass the same.
struct CollectiveCall {
  const char *op; // "moe.all_reduce"
  moert_dtype dtype;
  int64_t T, H;

  bool operator==(const CollectiveCall &o) const;
  /// "moe.all_reduce (bf16, T = 8, H = 64)".
  std::string describe() const;
};

class Communicator {
public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual moert_backend backend() const = 0;
  virtual int device() const = 0;

  /// output = the sum of every rank's input (T x H of call.dtype), on every
  /// rank. `backend` is the calling rank's (CUDA: its stream orders the
  /// collective with the rank's other ops). `output` may equal `input`.
  virtual moert_status allReduce(Backend &backend, const CollectiveCall &call,
                                 const void *input, void *output,
                                 std::string &error) = 0;

  /// Ends the group (the first reason is kept).
  virtual void abort(const std::string &reason) = 0;
  /// How long a collective waits for the others (0: no limit).
  virtual void setTimeout(int64_t milliseconds) = 0;
};

/// The CPU group of `n` ranks (CPUCommunicator.cpp).
std::vector<std::unique_ptr<Communicator>> createCPUGroup(int n);

/// The NCCL group of devices[0..n) (NcclCommunicator.cpp). Defined only in
/// builds with CUDA and NCCL; otherwise reports
/// MOERT_ERROR_BACKEND_UNAVAILABLE.
moert_status createNcclGroup(int n, const int32_t *devices,
                             std::vector<std::unique_ptr<Communicator>> &out,
                             std::string &error);

} // namespace moert

/// The C ABI's handle: one rank's communicator and the context it serves.
struct moert_comm {
  std::unique_ptr<moert::Communicator> impl;
  moert_context *context = nullptr;
};

#endif // MOE_LIB_RUNTIME_COMMUNICATOR_H
