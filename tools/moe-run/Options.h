//===- Options.h - moe-run's command line ------------------------*- C++ -*-===//
#ifndef MOE_TOOLS_MOE_RUN_OPTIONS_H
#define MOE_TOOLS_MOE_RUN_OPTIONS_H

#include "moe-runtime/moe_runtime.h"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace moerun {

struct Options {
  std::string module;
  moert_backend backend = MOERT_BACKEND_CPU;
  int device = 0;
  int64_t tokens = -1; // -1: not given
  uint64_t seed = 0;
  int64_t repeat = 1;
  int64_t warmup = -1; // -1: by backend
  bool check = false;
  double tolerance = -1; // -1: by dtype
  bool checkFinite = false;
  int64_t memoryLimit = 0;
  std::string tuningFile; // --tuning-file (CUDA kernels)
  bool json = false;
  bool quiet = false;
  /// --compare B.so: interleaved A/B of the module against B on the same
  /// arguments, `rounds` rounds of warmup + repeat iterations each.
  std::string compare;
  int64_t rounds = 5;
  /// --share-weights: layer l's weights are layer 0's buffers.
  bool shareWeights = false;
  /// --ranks N (0: not given): N ranks in this process.
  int64_t ranks = 0;
  int64_t collectiveTimeoutMs = 60000;
  /// --save-output PATH: the output arguments' bytes.
  std::string saveOutput;
};

/// Parses the command line; prints the usage or a one-line error and exits
/// on bad input.
Options parseOptions(int argc, char **argv);

/// "moe-run: error: ..." on stderr, then exit(1); on a thread with
/// `fatalThrows` set (a rank of --ranks), throws FatalError instead.
[[noreturn]] void fatal(const char *format, ...);
struct FatalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
extern thread_local bool fatalThrows;
/// "moe-run: warning: ..." on stderr.
void warning(const char *format, ...);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_OPTIONS_H
