//===- CPUCommunicator.cpp - N ranks as threads, collectives in shared memory //
//
// The ranks of a CPU group are threads of one process with contexts on the
// CPU backend, whose memory is host memory: a collective is a meeting in
// shared memory.
//
// moe.all_reduce, for ranks 0..n-1 with inputs in_r and outputs out_r:
//   1. arrive: each rank publishes (call, in_r, out_r) and waits for all; the
//      last to arrive checks that every rank called the same collective with
//      the same sizes (else the group is aborted with both calls named);
//   2. each rank sums its own slice of the elements (slice r of n equal
//      parts) over in_0, ..., in_{n-1} in that order in f32, rounds once to
//      the dtype and writes the result into that slice of *every* out_s. An
//      output may be its input (in place): slice r of in_s is read only by
//      rank r, before rank r writes slice r of out_s, so no rank overwrites
//      what another still reads;
//   3. depart: each rank waits until all slices are written.
// The result is the same bits on every rank and from run to run.
//
// Every wait ends when the others arrive, when the group is aborted (a rank
// failed or left), or at the timeout, which aborts the group naming the
// ranks that did not arrive.
//
//===----------------------------------------------------------------------===//
#include "Communicator.h"
#include "Internal.h"
#include "Numerics.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

using namespace moert;

namespace {

struct Slot {
  CollectiveCall call{"", MOERT_BF16, 0, 0};
  const void *input = nullptr;
  void *output = nullptr;
  /// Collectives this rank has entered.
  int64_t entered = 0;
  bool left = false;
};

/// The state the ranks of one group share.
struct Group {
  explicit Group(int n) : n(n), slots(size_t(n)) {}

  const int n;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Slot> slots;
  /// Two barriers per collective, each a count and a generation.
  int arrived = 0, departed = 0;
  uint64_t arriveGeneration = 0, departGeneration = 0;
  bool aborted = false;
  std::string reason;

  void abortLocked(const std::string &why) {
    if (!aborted) {
      aborted = true;
      reason = why;
    }
    changed.notify_all();
  }

  /// The first rank that left the group, or -1.
  int leftRank() const {
    for (int r = 0; r < n; ++r)
      if (slots[size_t(r)].left)
        return r;
    return -1;
  }
};

class CPUCommunicator final : public Communicator {
public:
  CPUCommunicator(std::shared_ptr<Group> group, int rank)
      : group(std::move(group)), rank_(rank) {}
  ~CPUCommunicator() override {
    std::lock_guard<std::mutex> lock(group->mutex);
    group->slots[size_t(rank_)].left = true;
    group->changed.notify_all();
  }

  int rank() const override { return rank_; }
  int size() const override { return group->n; }
  moert_backend backend() const override { return MOERT_BACKEND_CPU; }
  int device() const override { return 0; }

  void abort(const std::string &reason) override {
    std::lock_guard<std::mutex> lock(group->mutex);
    group->abortLocked(reason);
  }
  void setTimeout(int64_t milliseconds) override { timeoutMs = milliseconds; }

  moert_status allReduce(Backend &, const CollectiveCall &call,
                         const void *input, void *output,
                         std::string &error) override;

private:
  /// Waits at the barrier (`count`, `generation`) of collective `index`;
  /// false (and `error`) when the group is aborted or the wait times out.
  bool barrier(std::unique_lock<std::mutex> &lock, int &count,
               uint64_t &generation, int64_t index, const char *what,
               std::string &error);

  std::shared_ptr<Group> group;
  const int rank_;
  int64_t timeoutMs = 60000;
};

bool CPUCommunicator::barrier(std::unique_lock<std::mutex> &lock, int &count,
                              uint64_t &generation, int64_t index,
                              const char *what, std::string &error) {
  Group &g = *group;
  auto failed = [&]() {
    error = g.reason;
    return false;
  };
  if (g.aborted)
    return failed();
  const uint64_t mine = generation;
  if (++count == g.n) {
    count = 0;
    ++generation;
    g.changed.notify_all();
    return true;
  }
  auto done = [&]() {
    return generation != mine || g.aborted || g.leftRank() >= 0;
  };
  if (timeoutMs > 0) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(timeoutMs);
    if (!g.changed.wait_until(lock, deadline, done)) {
      std::string missing;
      for (int r = 0; r < g.n; ++r)
        if (g.slots[size_t(r)].entered < index + 1)
          missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      g.abortLocked(cat("collective #", index, " (",
                        g.slots[size_t(rank_)].call.describe(), "): rank ",
                        rank_, " waited ", timeoutMs, " ms ", what,
                        missing.empty() ? std::string()
                                        : " for rank(s) " + missing));
      return failed();
    }
  } else {
    g.changed.wait(lock, done);
  }
  if (generation != mine)
    return true;
  if (!g.aborted)
    g.abortLocked(cat("collective #", index, ": rank ", g.leftRank(),
                      " has left the group (its program ran fewer "
                      "collectives)"));
  return failed();
}

moert_status CPUCommunicator::allReduce(Backend &, const CollectiveCall &call,
                                        const void *input, void *output,
                                        std::string &error) {
  Group &g = *group;
  std::unique_lock<std::mutex> lock(g.mutex);
  Slot &mine = g.slots[size_t(rank_)];
  const int64_t index = mine.entered++;
  mine.call = call;
  mine.input = input;
  mine.output = output;
  if (int left = g.leftRank(); left >= 0 && !g.aborted)
    g.abortLocked(cat("collective #", index, ": rank ", left,
                      " has left the group (its program ran fewer "
                      "collectives)"));
  // The last to arrive compares the calls before releasing the others.
  if (g.arrived == g.n - 1 && !g.aborted)
    for (int r = 0; r < g.n; ++r)
      if (!(g.slots[size_t(r)].call == call)) {
        g.abortLocked(cat("collective #", index,
                          " differs between ranks: rank ", r, " runs ",
                          g.slots[size_t(r)].call.describe(), ", rank ",
                          rank_, " runs ", call.describe()));
        break;
      }
  if (!barrier(lock, g.arrived, g.arriveGeneration, index,
               "for the others to arrive", error))
    return MOERT_ERROR_COLLECTIVE;
  // The slots are stable until the depart barrier: compute without the lock.
  std::vector<const void *> inputs(size_t(g.n));
  std::vector<void *> outputs(size_t(g.n));
  for (int r = 0; r < g.n; ++r) {
    inputs[size_t(r)] = g.slots[size_t(r)].input;
    outputs[size_t(r)] = g.slots[size_t(r)].output;
  }
  lock.unlock();
  const int64_t count = call.T * call.H;
  const int64_t begin = count * rank_ / g.n, end = count * (rank_ + 1) / g.n;
  for (int64_t i = begin; i < end; ++i) {
    float sum = loadElement(inputs[0], call.dtype, i);
    for (int r = 1; r < g.n; ++r)
      sum += loadElement(inputs[size_t(r)], call.dtype, i);
    for (int r = 0; r < g.n; ++r)
      storeElement(outputs[size_t(r)], call.dtype, i, sum);
  }
  lock.lock();
  if (!barrier(lock, g.departed, g.departGeneration, index,
               "for the others to finish", error))
    return MOERT_ERROR_COLLECTIVE;
  return MOERT_SUCCESS;
}

} // namespace

std::vector<std::unique_ptr<Communicator>> moert::createCPUGroup(int n) {
  auto group = std::make_shared<Group>(n);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r)
    out.push_back(std::make_unique<CPUCommunicator>(group, r));
  return out;
}
