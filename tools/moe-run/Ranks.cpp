//===- Ranks.cpp - moe-run --ranks N: the ranks of a program in one process ---//
//
// One process drives every rank: a thread, a context and a communicator per
// rank (CPU: a shared-memory group; CUDA: device --device + r, NCCL through
// ncclCommInitAll). One process needs no launcher and no rendezvous, a
// failed rank is seen by every other at once (its communicator is aborted),
// and the ranks' records meet here for --check. docs/multi-gpu.md.
//
// Each rank gets its own arguments: inputs replicated (the same seed and
// stream on every rank), a tensor-parallel program's expert weights as the
// rank's shard of the whole layer's (Arguments.h).
//
//===----------------------------------------------------------------------===//
#include "Ranks.h"

#include "Arguments.h"
#include "Json.h"
#include "OpCheck.h"
#include "Reference.h"
#include "Run.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

using namespace moerun;

namespace {

/// What one rank did.
struct Rank {
  int rank = 0;
  int device = 0;
  moert_context *ctx = nullptr;
  moert_comm *comm = nullptr;
  std::vector<Argument> args;
  std::vector<void *> argPointers;
  int64_t argumentBytes = 0;
  Iterations iterations;
  std::vector<std::vector<unsigned char>> outputs;
  std::vector<ObservedOp> record; // --check
  std::string error;
};

/// Rank `r`'s whole run: context, arguments, iterations, the checked run.
void runRank(const Options &opt, const Module &module,
             const ModuleDescription &desc,
             const std::vector<TypedOp> &typedOps, int64_t T, int64_t tp,
             const std::vector<bool> &writtenArg, Rank &rank) {
  fatalThrows = true;
  try {
    if (moert_context_create(opt.backend, rank.device, &rank.ctx) !=
        MOERT_SUCCESS)
      fatal("%s", moert_last_error());
    if (moert_context_set_comm(rank.ctx, rank.comm) != MOERT_SUCCESS ||
        (opt.memoryLimit > 0 &&
         moert_set_memory_limit(rank.ctx, opt.memoryLimit) != MOERT_SUCCESS))
      fatal("%s", moert_context_error(rank.ctx));
    std::vector<ArgumentData> data =
        argumentData(desc, &typedOps, rank.rank, tp);
    rank.args.resize(desc.args.size());
    rank.argPointers.assign(desc.args.size(), nullptr);
    for (size_t i = 0; i < desc.args.size(); ++i) {
      Argument &a = rank.args[i];
      a.desc = &desc.args[i];
      if (!elementCount(a.desc->shape, T, a.elements) ||
          !byteSize(*a.desc, T, a.bytes))
        fatal("argument %zu '%s' (%s) is too large at %" PRId64 " tokens", i,
              a.desc->name.c_str(), typeString(*a.desc).c_str(), T);
      if (moert_alloc_ctx(rank.ctx, a.bytes, &a.device) != MOERT_SUCCESS)
        fatal("cannot allocate argument %zu '%s': %s", i,
              a.desc->name.c_str(), moert_context_error(rank.ctx));
      rank.argumentBytes += a.bytes;
      a.restore = writtenArg[i] && a.desc->role != Role::Output;
      a.dist = data[i].dist;
      a.key = streamKey(opt.seed, data[i].stream);
      a.host.resize(static_cast<size_t>(a.bytes));
      fill(a.host.data(), a.desc->dtype, a.elements, a.dist, a.key, 0,
           data[i].shard);
      if (moert_copy_to_device(rank.ctx, a.device, a.host.data(), a.bytes) !=
          MOERT_SUCCESS)
        fatal("cannot copy argument %zu '%s': %s", i, a.desc->name.c_str(),
              moert_context_error(rank.ctx));
      if (!(a.restore || (opt.check && a.desc->role != Role::Output)))
        std::vector<unsigned char>().swap(a.host);
      rank.argPointers[i] = a.device;
    }
    moert_set_current_context(rank.ctx);
    rank.outputs.resize(desc.args.size());
    bool dirty = false;
    iterate(module, rank.ctx, rank.args, rank.argPointers, T, opt.warmup,
            opt.repeat, /*quiet=*/true, rank.iterations, rank.outputs, dirty);
    if (opt.check) {
      Iterations checked;
      OpRecorder recorder(rank.ctx);
      iterate(module, rank.ctx, rank.args, rank.argPointers, T, 0, 1,
              /*quiet=*/true, checked, rank.outputs, dirty);
      if (!recorder.error.empty())
        fatal("--check: cannot read an op's operands: %s",
              recorder.error.c_str());
      if (checked.checksums.front() != rank.iterations.checksums.front())
        fatal("the module is not deterministic: the checked run gave output "
              "checksum %s, the first %s",
              hex64(checked.checksums.front()).c_str(),
              hex64(rank.iterations.checksums.front()).c_str());
      rank.record = std::move(recorder.ops);
    }
  } catch (const std::exception &e) { // FatalError, or out of host memory
    rank.error = e.what();
    // The others must not wait for this rank's next collective.
    moert_comm_abort(rank.comm,
                     ("rank " + std::to_string(rank.rank) + " failed: " +
                      rank.error)
                         .c_str());
  }
  moert_set_current_context(nullptr);
}

} // namespace

int moerun::runRanks(const Options &opt, const Module &module,
                     const ModuleDescription &desc,
                     const std::vector<TypedOp> &typedOps, int64_t T) {
  const int n = int(opt.ranks);
  std::string error;
  int64_t tp = groupSizeOf(typedOps, error);
  if (tp < 0)
    fatal("%s", error.c_str());
  if (tp > 1 && tp != n)
    fatal("the module sums over %" PRId64 " ranks (moe.all_reduce, "
          "group_size = %" PRId64 "): run it with --ranks %" PRId64
          ", not %d",
          tp, tp, tp, n);
  std::vector<int32_t> devices(size_t(n), 0);
  for (int r = 0; r < n; ++r)
    devices[size_t(r)] =
        opt.backend == MOERT_BACKEND_CUDA ? int32_t(opt.device + r) : 0;
  std::vector<moert_comm *> comms(size_t(n), nullptr);
  if (moert_comm_create_group(opt.backend, n, devices.data(), comms.data()) !=
      MOERT_SUCCESS)
    fatal("%s", moert_last_error());
  for (moert_comm *comm : comms)
    moert_comm_set_timeout(comm, opt.collectiveTimeoutMs);

  std::vector<bool> writtenArg = writtenArguments(desc);
  std::vector<Rank> ranks(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    ranks[size_t(r)].rank = r;
    ranks[size_t(r)].device = devices[size_t(r)];
    ranks[size_t(r)].comm = comms[size_t(r)];
    threads.emplace_back(runRank, std::cref(opt), std::cref(module),
                         std::cref(desc), std::cref(typedOps), T, tp,
                         std::cref(writtenArg), std::ref(ranks[size_t(r)]));
  }
  for (std::thread &t : threads)
    t.join();
  auto release = [&] {
    for (Rank &rank : ranks) {
      moert_context_destroy(rank.ctx);
      moert_comm_destroy(rank.comm);
    }
  };
  bool failed = false;
  for (const Rank &rank : ranks)
    if (!rank.error.empty()) {
      std::fprintf(stderr, "moe-run: error: rank %d: %s\n", rank.rank,
                   rank.error.c_str());
      failed = true;
    }
  if (failed) {
    release();
    return 1;
  }

  // A sum over the ranks leaves the same bits on every rank.
  int rc = 0;
  const uint64_t first = ranks[0].iterations.checksums.front();
  for (const Rank &rank : ranks)
    if (tp > 1 && rank.iterations.checksums.front() != first) {
      std::fprintf(stderr,
                   "moe-run: error: rank %d's output (checksum %s) differs "
                   "from rank 0's (%s)\n",
                   rank.rank, hex64(rank.iterations.checksums.front()).c_str(),
                   hex64(first).c_str());
      rc = 1;
    }

  // --check: every rank's ops on their own inputs; collectives against the
  // ranks' inputs together.
  std::vector<OpCheckResult> checks(static_cast<size_t>(n));
  if (opt.check) {
    std::vector<const std::vector<ObservedOp> *> group;
    for (const Rank &rank : ranks)
      group.push_back(&rank.record);
    for (Rank &rank : ranks) {
      std::vector<const void *> argBytes(rank.args.size());
      for (size_t i = 0; i < rank.args.size(); ++i)
        argBytes[i] = rank.args[i].desc->role == Role::Output
                          ? rank.outputs[i].data()
                          : rank.args[i].host.data();
      CheckOptions checkOptions;
      if (!checkOps(desc, T, rank.record, argBytes, opt.tolerance,
                    checkOptions, checks[size_t(rank.rank)], error, &group))
        fatal("--check: rank %d: %s", rank.rank, error.c_str());
      const OpCheckResult &c = checks[size_t(rank.rank)];
      if (c.failedOp >= 0) {
        bool atOp = size_t(c.failedOp) < desc.ops.size();
        std::fprintf(stderr,
                     "moe-run: error: --check failed on rank %d at op #%" PRId64
                     " %s: %s\n",
                     rank.rank, c.failedOp,
                     atOp ? desc.ops[size_t(c.failedOp)].name.c_str() : "",
                     c.message.c_str());
        rc = 1;
      }
    }
  }

  if (!opt.saveOutput.empty()) {
    std::ofstream out(opt.saveOutput, std::ios::binary);
    for (size_t i = 0; i < ranks[0].args.size(); ++i)
      if (ranks[0].args[i].desc->role == Role::Output)
        out.write(reinterpret_cast<const char *>(ranks[0].outputs[i].data()),
                  std::streamsize(ranks[0].outputs[i].size()));
    if (!out)
      fatal("--save-output: cannot write '%s'", opt.saveOutput.c_str());
  }

  // Report: per rank, and the slowest rank's latency (the layer's).
  const int64_t planned = desc.plannedPeak ? desc.plannedPeak->at(T) : -1;
  const char *backendName = opt.backend == MOERT_BACKEND_CUDA ? "cuda" : "cpu";
  double latency = 0;
  int64_t peak = 0, checked = 0;
  double worst = 0;
  for (const Rank &rank : ranks) {
    latency = std::max(latency, median(rank.iterations.latencies));
    peak = std::max(peak, rank.iterations.peakBytes);
    checked += checks[size_t(rank.rank)].checked;
    worst = std::max(worst, checks[size_t(rank.rank)].worstRatio);
  }
  const bool checkPassed = rc == 0;
  if (opt.json) {
    std::string j = "{\"function\": " + jsonQuote(desc.function) +
                    ", \"module\": " + jsonQuote(opt.module) +
                    ", \"backend\": " + jsonQuote(backendName) +
                    ", \"ranks\": " + std::to_string(n) +
                    ", \"tp\": " + std::to_string(tp) +
                    ", \"tokens\": " + std::to_string(T) +
                    ", \"seed\": " + std::to_string(opt.seed) +
                    ", \"latency_ms\": " + jsonNumber(latency) +
                    ", \"peak_bytes\": " + std::to_string(peak) +
                    ", \"planned_peak_bytes\": " +
                    (planned >= 0 ? std::to_string(planned) : "null") +
                    ", \"checksum\": " +
                    jsonQuote(hex64(ranks[0].iterations.checksums.back())) +
                    ", \"op_checks\": " +
                    (opt.check ? std::to_string(checked) : "null") +
                    ", \"op_max_err_over_tolerance\": " +
                    (opt.check ? jsonNumber(worst) : "null") +
                    ", \"check\": " +
                    (!opt.check ? "null"
                     : checkPassed ? "\"passed\""
                                   : "\"failed\"") +
                    ", \"per_rank\": [";
    for (const Rank &rank : ranks)
      j += std::string(rank.rank ? ", " : "") +
           "{\"rank\": " + std::to_string(rank.rank) +
           ", \"device\": " + std::to_string(rank.device) +
           ", \"latency_ms\": " + jsonNumber(median(rank.iterations.latencies)) +
           ", \"peak_bytes\": " + std::to_string(rank.iterations.peakBytes) +
           ", \"argument_bytes\": " + std::to_string(rank.argumentBytes) +
           ", \"leaked_bytes\": " + std::to_string(rank.iterations.leakedBytes) +
           ", \"checksum\": " +
           jsonQuote(hex64(rank.iterations.checksums.back())) + "}";
    std::printf("%s]}\n", j.c_str());
  } else if (!opt.quiet) {
    std::printf("moe-run: %s on %s, %d ranks%s, %" PRId64
                " tokens, seed %" PRIu64 "\n",
                desc.function.c_str(), backendName, n,
                tp > 1 ? (" (tensor parallel " + std::to_string(tp) + ")").c_str()
                       : "",
                T, opt.seed);
    for (const Rank &rank : ranks)
      std::printf("  rank %d  latency %.3f ms  peak %s%s  checksum %s\n",
                  rank.rank, median(rank.iterations.latencies),
                  formatBytes(rank.iterations.peakBytes).c_str(),
                  planned >= 0
                      ? (" (planned " + formatBytes(planned) + ")").c_str()
                      : "",
                  hex64(rank.iterations.checksums.back()).c_str());
    if (opt.check)
      std::printf("  check   %" PRId64 " ops on %d ranks, each against the "
                  "reference on its own inputs: %s (worst %.2f of its "
                  "tolerance)\n",
                  checked, n, checkPassed ? "passed" : "FAILED", worst);
  }
  std::fflush(stdout);
  release();
  return rc;
}
