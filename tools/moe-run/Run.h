//===- Run.h - Running a module: arguments and timed iterations -*- C++ -*-===//
//
// What moe-run's single-rank and multi-rank drivers share: an argument on a
// context, the timed iterations of a module and what they measured.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_RUN_H
#define MOE_TOOLS_MOE_RUN_RUN_H

#include "Data.h"
#include "Description.h"
#include "Module.h"

#include "moe-runtime/moe_runtime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moerun {

struct Argument {
  const TensorDesc *desc = nullptr;
  int64_t elements = 0, bytes = 0;
  void *device = nullptr;          // context memory
  std::vector<unsigned char> host; // initial contents (kept when needed)
  bool restore = false;            // written by the module: reset per run
  Distribution dist;
  uint64_t key = 0;
};

/// "123 B", "1.5 MiB (...)": bytes for people.
std::string formatBytes(int64_t bytes);
double median(std::vector<double> v);

/// What the iterations of one module measured.
struct Iterations {
  std::vector<double> latencies;
  int64_t peakBytes = 0, totalPeakBytes = 0, leakedBytes = 0;
  std::vector<uint64_t> checksums;
};

/// Runs `module` warmup + repeat times on `args` (resetting the arguments it
/// writes), appending to `result`; the outputs of the last iteration are left
/// in `outputs`. Fails (fatal) when a run fails or an output differs from
/// the first iteration's.
/// `dirty` says whether an earlier run wrote the arguments; it is set after.
void iterate(const Module &module, moert_context *ctx,
             std::vector<Argument> &args, std::vector<void *> &argPointers,
             int64_t T, int64_t warmup, int64_t repeat, bool quiet,
             Iterations &result,
             std::vector<std::vector<unsigned char>> &outputs, bool &dirty);

/// The arguments each op of `desc` writes (in place).
std::vector<bool> writtenArguments(const ModuleDescription &desc);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_RUN_H
