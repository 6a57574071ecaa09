//===- OpCheck.h - --check op by op ------------------------------*- C++ -*-===//
//
// --check compares every op of a run with the reference fed with the very
// inputs the backend gave that op, at the one-op tolerance, whatever the
// depth of the op in the chain; the first op that fails is reported by
// position, name and source location. Between the ops it checks the data
// flow bit for bit: every operand an op reads holds exactly what its writer
// (an earlier op, or the caller for an argument) left there, and every output
// argument ends as its last writer left it, so a buffer that is overwritten
// or left stale between two ops (a wrong memory plan) fails too. The end-to-end error (the whole chain
// against the reference run from the arguments) is kept as information:
// after a few layers it mostly measures how a rounding early on grows, not
// whether any op is wrong. docs/moe-run.md, "--check".
//
// The runtime calls an observer before and after every op
// (moert_set_op_observer); OpRecorder keeps what each op read and wrote.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_OPCHECK_H
#define MOE_TOOLS_MOE_RUN_OPCHECK_H

#include "Description.h"
#include "Reference.h"

#include "moe-runtime/moe_runtime.h"

#include <string>
#include <vector>

namespace moerun {

/// What one op saw in a run: each operand (the contract's order; empty for an
/// absent one) before it ran, and after it ran.
struct ObservedOp {
  std::string name;
  std::vector<std::vector<unsigned char>> before, after;
};

/// Records every op run on `ctx` while it lives.
class OpRecorder {
public:
  explicit OpRecorder(moert_context *ctx);
  ~OpRecorder();
  std::vector<ObservedOp> ops;
  std::string error; // a copy that failed

private:
  static void observe(void *user, const char *op, int32_t phase,
                      const void *const *operands, const int64_t *bytes,
                      int32_t count);
  moert_context *ctx;
};

struct OpCheckResult {
  /// Ops compared, and the first that failed (-1: none; the number of ops:
  /// after the last one, an output argument), as an index into the
  /// description's ops.
  int64_t checked = 0;
  int64_t failedOp = -1;
  /// "numerics": an output of the op is off the reference on its inputs;
  /// "dataflow": an operand it read (or an output argument at the end) is
  /// not what its writer left.
  std::string kind;
  std::string message; // what failed, one line, without the op
  std::string failedOperand;
  CheckResult failure; // numerics: the op's comparison
  double tolerance = 0;
  /// The largest max_rel_err of any op (relative to its tolerance).
  double worstRatio = 0;
};

/// Checks every recorded op of `d` (its moe ops in order) against the
/// reference on what the op read, and the data flow between them; `args`
/// holds each argument's bytes (inputs and weights as passed in, outputs as
/// the run left them); `tolerance` < 0: the one-op default of each op's
/// output dtype. False (with `error`) when the record does not match the
/// description or the reference fails.
///
/// A collective (moe.all_reduce) is checked against the ranks' records in
/// `group` (every rank's ops in rank order, this rank's included): its output
/// against the sum of every rank's input, the error relative to the sum of
/// their magnitudes. Without `group` the run is a group of one.
bool checkOps(const ModuleDescription &d, int64_t T,
              const std::vector<ObservedOp> &observed,
              const std::vector<const void *> &args, double tolerance,
              const CheckOptions &options, OpCheckResult &result,
              std::string &error,
              const std::vector<const std::vector<ObservedOp> *> *group =
                  nullptr);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_OPCHECK_H
