//===- Run.cpp - Running a module: arguments and timed iterations --------===//
#include "Run.h"
#include "Options.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <unistd.h>

using namespace moerun;

std::string moerun::formatBytes(int64_t bytes) {
  char buf[64];
  double b = double(bytes);
  if (bytes < 10240)
    std::snprintf(buf, sizeof buf, "%" PRId64 " B", bytes);
  else if (b < 10.0 * (1 << 20))
    std::snprintf(buf, sizeof buf, "%" PRId64 " B (%.1f KiB)", bytes, b / 1024);
  else if (b < 10.0 * (1 << 30))
    std::snprintf(buf, sizeof buf, "%" PRId64 " B (%.1f MiB)", bytes,
                  b / (1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%" PRId64 " B (%.2f GiB)", bytes,
                  b / (1 << 30));
  return buf;
}

double moerun::median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


void moerun::iterate(const Module &module, moert_context *ctx,
             std::vector<Argument> &args, std::vector<void *> &argPointers,
             int64_t T, int64_t warmup, int64_t repeat, bool quiet,
             Iterations &result,
             std::vector<std::vector<unsigned char>> &outputs, bool &dirty) {
  const int64_t total = warmup + repeat;
  bool progress = !quiet && isatty(2);
  auto runStart = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < total; ++it) {
    bool measured = it >= warmup;
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i].restore && dirty &&
          moert_copy_to_device(ctx, args[i].device, args[i].host.data(),
                               args[i].bytes) != MOERT_SUCCESS)
        fatal("cannot reset argument %zu '%s': %s", i,
              args[i].desc->name.c_str(), moert_context_error(ctx));
    if (moert_context_synchronize(ctx) != MOERT_SUCCESS)
      fatal("%s", moert_context_error(ctx));
    moert_reset_peak(ctx);
    int64_t before = moert_current_bytes(ctx);

    iterationForCrash = sig_atomic_t(it + 1);
    inModule = 1;
    // Device time (CUDA events on the context's stream; the host clock on
    // the CPU backend).
    double ms = 0;
    moert_status status = moert_timer_start(ctx);
    if (status == MOERT_SUCCESS) {
      module.entry(argPointers.data(), T);
      status = moert_timer_stop(ctx, &ms);
    }
    inModule = 0;
    dirty = true;

    if (status != MOERT_SUCCESS || moert_context_status(ctx) != MOERT_SUCCESS)
      fatal("the module failed in iteration %" PRId64 " (%s): %s", it + 1,
            moert_status_string(moert_context_status(ctx)),
            moert_context_error(ctx));
    int64_t leaked = moert_current_bytes(ctx) - before;
    if (leaked != 0 && result.leakedBytes == 0)
      warning("the module left %" PRId64 " bytes allocated after moe_entry",
              leaked);
    result.leakedBytes = std::max(result.leakedBytes, leaked);
    if (measured) {
      result.latencies.push_back(ms);
      result.totalPeakBytes =
          std::max(result.totalPeakBytes, moert_peak_bytes(ctx));
      result.peakBytes =
          std::max(result.peakBytes, moert_peak_bytes(ctx) - before);
    }

    // The output (copied back every iteration: runs must be identical).
    uint64_t hash = kFnvOffset;
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].desc->role != Role::Output)
        continue;
      outputs[i].resize(static_cast<size_t>(args[i].bytes));
      if (moert_copy_to_host(ctx, outputs[i].data(), args[i].device,
                             args[i].bytes) != MOERT_SUCCESS)
        fatal("cannot copy output '%s' back: %s", args[i].desc->name.c_str(),
              moert_context_error(ctx));
      hash = fnv1a64(outputs[i].data(), outputs[i].size(), hash);
    }
    if (!result.checksums.empty() && hash != result.checksums.front())
      fatal("the module is not deterministic: iteration %" PRId64
            " gave output checksum %s, iteration 1 gave %s",
            it + 1, hex64(hash).c_str(),
            hex64(result.checksums.front()).c_str());
    result.checksums.push_back(hash);

    double elapsed = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - runStart)
                         .count();
    if (!quiet && (progress || elapsed > 1.0) && total > 1) {
      progress = true;
      std::fprintf(stderr,
                   "moe-run: iteration %" PRId64 "/%" PRId64 "%s: %.3f ms\n",
                   it + 1, total, measured ? "" : " (warmup)", ms);
    }
  }
}

std::vector<bool> moerun::writtenArguments(const ModuleDescription &desc) {
  std::vector<bool> written(desc.args.size(), false);
  for (const OpDesc &op : desc.ops) {
    std::vector<bool> w = writtenOperands(op);
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] && op.operands[i].isArg)
        written[size_t(op.operands[i].index)] = true;
  }
  return written;
}
