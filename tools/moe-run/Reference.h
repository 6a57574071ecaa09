//===- Reference.h - The independent reference of --check -------*- C++ -*-===//
//
// A straightforward interpreter of a module description's ops, written from
// the op semantics of MoEOps.td and sharing no code with the runtime: every
// value in double precision, naive loops, one token at a time (every op is
// row-wise in the token dimension). A value stored into a buffer is rounded
// to the buffer's dtype (a bf16 buffer holds bf16 values); nothing inside an
// op is rounded, except where the fp8 numerics contract quantizes or rounds
// (expert ops with fp8 weights, kernels/moe_kernels.h).
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
/// ulps of the dtype for one layer (bf16 5e-2, f16 6e-3, f32 1e-4), plus
/// kFp8ActCodeTolerance for an expert op with fp8 weights (`fp8`; for a
/// chain: any), times kLayerGrowth for every further layer (an SwiGLU MLP is
/// quadratic in its input, so a relative error roughly doubles per layer,
/// plus the layer's own roundings).
constexpr double kLayerGrowth = 3.0;

/// fp8 experts (docs/moe-run.md, "Tolerances"). The reference reproduces
/// the fp8 contract's hidden quantization bit for bit and its other rounding
/// points (act quantization, bf16 partials, the fp32 combine), but computes
/// gate/up exactly, whereas a backend rounds its sums its own way (the CPU:
/// each 128-block's sum exact, rounded to fp32, the blocks summed in fp32;
/// Hopper's tensor cores keep ~14 bits per block). Where act / s
/// lies that close to a rounding midpoint, the backend's act code lands one
/// e4m3 step away. The error model of such moves, for one (token, slot)
/// pair's down projection P_n = sum_k a_k W[n, k], whose rms over n is about
/// sqrt(I) rms(a) sigma_W:
///  - one e4m3 step is at most 2^-3 of the value (3 mantissa bits);
///  - a fraction f of the I act codes moves (at least one in a row that has
///    any; f I >= 1 anyway for every fp8 layer, I being a multiple of 128),
///    in random directions, so the dot product averages them: the partial
///    moves by 2^-3 sqrt(f) of its rms;
///  - the worst element of the op is z times that, z = 12 ~ 2 sqrt(3) (the
///    largest |W| / sigma_W: Irwin-Hall) x 3.5 (a moved act up to 3.5x the
///    rms act of its row): at f I ~ 1 a single moved code decides the worst
///    element, nothing averages it;
///  - the combine's weighted sum of independent pairs keeps the ratio, and
///    the error is measured against the token row's rms.
/// With f = 1% (the fp8 contract's figure for an H100: ~1% of the act codes
/// one step away) the term is 12 * 2^-3 * 0.1 = 0.15, added to the output
/// dtype's tolerance: bf16 0.05 + 0.15 = 0.2. Measured on the CPU backend,
/// whose codes move far more rarely but just as far: a single moved code of
/// an act 3.49x its row's rms moved a shared-experts output (I = 128) by
/// 0.125 (0.63 of the tolerance; test/Integration/check-ops-fp8.test);
/// random fp8 programs otherwise stay below 0.04. An emulation of the
/// H100's act errors (block sums perturbed until ~1% of the codes move, act
/// within ~5e-4 of its group's amax): at most 0.12 at I = 128, less at
/// larger I. A routed op's output scaled by 1.25 (MOERT_TEST_FAULT=
/// routed-scale: 0.25) still fails; an error of one act code cannot be told
/// from a bug of that size by the largest error alone.
constexpr double kFp8SqrtActCodeFraction = 0.1; // sqrt(f), f = 1%
constexpr double kFp8TailFactor = 12;            // z
constexpr double kFp8ActCodeTolerance =
    kFp8TailFactor * 0x1p-3 * kFp8SqrtActCodeFraction; // 0.15
double defaultTolerance(DType dtype, int64_t layers = 1, bool fp8 = false);
/// Whether any op is an expert op with fp8 weights.
bool hasFp8Experts(const std::vector<TypedOp> &ops);
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
