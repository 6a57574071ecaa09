//===- ReferenceInterpreter.h - The reference's per-token interpreter -*- C++ -*-===//
//
// The core of moe-run's independent reference (Reference.cpp): the module's
// ops interpreted one token at a time in double precision, following every
// admissible routing where top-k scores nearly tie. Private to tools/moe-run.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_REFERENCEINTERPRETER_H
#define MOE_TOOLS_MOE_RUN_REFERENCEINTERPRETER_H

#include "Reference.h"

#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace moerun {
namespace detail {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Elements [offset, offset + n) of `data` (`dtype`) as doubles.
void loadRow(const void *data, DType dtype, int64_t offset, int64_t n,
             double *out);

/// The fp8 formats' block (one scale per 128 activations of a row, per
/// 128 x 128 weights).
inline constexpr int64_t kFp8Block = moert::contract::kFp8Block;

/// fp8 rules 1 and 3 (kernels/moe_kernels.h): `v` (n values, rounded to fp32
/// first) quantized per group of 128 consecutive values, bit for bit: amax =
/// max |a|, s = fmaxf(amax, 1e-10f) / 448.0f, q = e4m3(a / s) with fp32
/// divisions and round-to-nearest-even saturating to +-448. `out` (may be
/// `v`) gets the dequantized values q * s (exact in double), `scales` (if
/// not null, n/128 rounded up) the group scales.
void quantizeFp8Groups(const double *v, int64_t n, double *out,
                       float *scales = nullptr);

/// The per-token state of one admissible routing: every token-major slot's
/// row, and the uncertainty of each value (nonzero only for router logits).
struct Variant {
  std::vector<double> values;
  std::vector<double> delta;
};

class Interpreter {
public:
  Interpreter(const ModuleDescription &d, const std::vector<TypedOp> &ops,
              int64_t T, const std::vector<const void *> &initial,
              const CheckOptions &options)
      : d(d), ops(ops), T(T), initial(initial), options(options) {}

  bool prepare(std::string &error);
  /// The admissible final states of token t.
  bool runToken(int64_t t, std::vector<Variant> &variants, bool &truncated,
                std::string &error) const;

  size_t slotOf(const Operand &o) const {
    return o.isArg ? size_t(o.index) : d.args.size() + size_t(o.index);
  }
  const TensorDesc &tensorOf(size_t slot) const {
    return slot < d.args.size() ? d.args[slot]
                                : d.buffers[slot - d.args.size()];
  }

  const ModuleDescription &d;
  const std::vector<TypedOp> &ops;
  int64_t T;
  const std::vector<const void *> &initial;
  const CheckOptions &options;
  /// A lone moe.topk checked against a backend's ids ([T, K] int32): the
  /// backend's choice of experts stands where the near-ties admit it.
  const int32_t *routingHint = nullptr;

  size_t numSlots = 0;
  std::vector<int> tokenMajor; // -1 unknown, 0 global, 1 per token
  std::vector<int64_t> rowLength, rowOffset;
  int64_t stateSize = 0;
  /// Per op and operand: the bytes of a global operand at that point.
  std::vector<std::vector<const void *>> globalData;
  /// The final bytes of every global slot.
  std::vector<const void *> finalGlobal;
  /// Per op: whether its first operand was written by an earlier op.
  std::vector<bool> inputComputed;
  /// Per op: the moe.topk ops (layers) before it.
  std::vector<int64_t> layersBefore;
  std::vector<std::unique_ptr<std::vector<unsigned char>>> owned;

private:
  bool classify(std::string &error);
  void applyTopK(int64_t t, const TypedOp &op, const Variant &v,
                 std::vector<Variant> &out, bool &truncated) const;
};

} // namespace detail
} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_REFERENCEINTERPRETER_H
