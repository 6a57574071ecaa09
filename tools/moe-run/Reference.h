//===- Reference.h - The independent reference of --check -------*- C++ -*-===//
//
// A straightforward interpreter of a module description's ops, written from
// the op semantics of MoEOps.td and sharing no code with the runtime: every
// value in double precision, naive loops, one token at a time (every op is
// row-wise in the token dimension). A value stored into a buffer is rounded
// to the buffer's dtype (a bf16 buffer holds bf16 values); nothing inside an
// op is rounded.
//
// Routing near-ties. The module computes router logits with fp32
// accumulation (and, after the first layer, from hidden states that may
// differ from the reference's by an ulp), so when two experts' selection
// scores are closer than that uncertainty the module may legitimately pick
// the other one. The reference tracks an uncertainty per logit and, at each
// top-k, enumerates every selection consistent with it (group selection
// too). A token's output must then match the reference under *one* of its
// admissible routings: the error of a token is the minimum over them. See
// docs/moe-run.md, "--check".
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_REFERENCE_H
#define MOE_TOOLS_MOE_RUN_REFERENCE_H

#include "Description.h"

#include <cstdint>
#include <string>
#include <vector>

namespace moerun {

struct CheckOptions {
  /// err = |out - ref| / max(|ref|, rmsFloor * rms(ref of that row), the
  /// dtype's smallest normal), a row being one token's part of a token-major
  /// output (else the whole output): relative for elements above the row's
  /// rms, relative to the rms below it (roundings of the addends dominate
  /// where a sum cancels), and never finer than the subnormals' spacing.
  double rmsFloor = 1.0;
  /// For a lone moe.topk checked against a backend's outputs: the backend's
  /// experts stand where the uncertainty of the scores admits them (when
  /// many scores are near-tied their combinations are too many to
  /// enumerate), and each token's (expert id, weight) pairs are compared
  /// whatever their slot order (near-tied scores may come in either order;
  /// the order only moves the combine's roundings).
  bool unorderedSlots = false;
  /// Admissible routings kept per token (beyond: the first ones).
  int maxRoutingsPerToken = 64;
  /// Threads over tokens (0: hardware).
  unsigned threads = 0;
};

/// The default tolerance on max_rel_err for an output dtype after `layers`
/// chained MoE layers (the number of moe.topk ops, at least 1): about six
/// ulps of the dtype for one layer (bf16 5e-2, f16 6e-3, f32 1e-4), times
/// kLayerGrowth for every further layer (an SwiGLU MLP is quadratic in its
/// input, so a relative error roughly doubles per layer, plus the layer's
/// own roundings).
constexpr double kLayerGrowth = 3.0;
double defaultTolerance(DType dtype, int64_t layers = 1);
/// The number of moe.topk ops (layers), at least 1.
int64_t countLayers(const std::vector<TypedOp> &ops);

struct CheckResult {
  double maxRelErr = 0;
  /// The worst element: argument index, its coordinates, values.
  int64_t worstArg = -1;
  std::vector<int64_t> worstCoords;
  double worstGot = 0, worstExpected = 0;
  /// Tokens with more than one admissible routing.
  int64_t nearTieTokens = 0;
  /// Tokens whose output matched an alternative routing better than the
  /// reference's own.
  int64_t alternativeTokens = 0;
  /// Tokens with more near-tie combinations than were explored.
  int64_t truncatedTokens = 0;
  /// Elements compared.
  int64_t elements = 0;
};

/// Runs the reference at T tokens on `initial` (host data of every argument
/// at the start of the run; outputs' contents ignored) and compares it with
/// `results` (the module's output arguments after the run; null entries for
/// other arguments are skipped). `ops` from analyzeOps. When `primary` is
/// non-null it receives, per argument, the reference's output values under
/// its own routing (empty for non-outputs).
bool runReference(const ModuleDescription &d, const std::vector<TypedOp> &ops,
                  int64_t T, const std::vector<const void *> &initial,
                  const std::vector<const void *> &results,
                  const CheckOptions &options, CheckResult &result,
                  std::string &error,
                  std::vector<std::vector<double>> *primary = nullptr);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_REFERENCE_H
