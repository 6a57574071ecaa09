//===- Description.h - The module description of a compiled layer -*- C++ -*-//
//
// Every module moe-compile produces exports `moe_module_description`, a JSON
// document (docs/moe-run.md, "The module description"): the function's
// arguments with their roles, dtypes and shapes, the intermediate buffers,
// the planned peak, and the ops in a legal order. This file parses and
// validates it (parseDescription) and, for the reference checker, checks the
// ops against the op semantics of MoEOps.td (analyzeOps).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_DESCRIPTION_H
#define MOE_TOOLS_MOE_RUN_DESCRIPTION_H

#include "Data.h"
#include "Json.h"

#include <cstdint>
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moerun {

constexpr int64_t kDescriptionVersion = 1;

enum class Role { Input, Weight, Output };
const char *roleName(Role role);

/// A function argument or an intermediate buffer. `shape` entries are sizes
/// >= 0 or -1 for the token count.
struct TensorDesc {
  std::string name; // empty for buffers
  Role role = Role::Input;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

struct Operand {
  bool isArg = true; // else a buffer
  int64_t index = 0;
  bool operator==(const Operand &o) const {
    return isArg == o.isArg && index == o.index;
  }
};

struct OpDesc {
  std::string name; // "moe.gate", "memref.copy", ...
  std::string loc;  // where in the source ("file:line:col", "layers.0"); may be empty
  std::vector<Operand> operands;
  JsonValue attrs; // an object
};

struct LinearBytes {
  int64_t perToken = 0, constant = 0;
  /// When not empty, the size is the largest of these lines at a token count
  /// (an arena sized by a max of linear sizes); perToken/constant is the
  /// line that is largest at the compiler's token hint.
  std::vector<std::pair<int64_t, int64_t>> maxOf;

  int64_t at(int64_t tokens) const {
    int64_t bytes = perToken * tokens + constant;
    for (auto [a, b] : maxOf)
      bytes = std::max(bytes, a * tokens + b);
    return bytes;
  }
};

struct ModuleDescription {
  int64_t version = 0;
  std::string function;
  std::optional<int64_t> tokenCount; // nullopt: dynamic
  std::optional<bool> optimized;
  std::optional<LinearBytes> plannedPeak;
  /// The compiler's own peak estimate of the input order (informational).
  std::optional<LinearBytes> modelledPeak;
  /// False when the function has ops the description does not list (the
  /// reference cannot model the layer).
  bool checkable = true;
  std::vector<TensorDesc> args;
  std::vector<TensorDesc> buffers;
  std::vector<OpDesc> ops;

  const TensorDesc &tensor(const Operand &o) const {
    return o.isArg ? args[size_t(o.index)] : buffers[size_t(o.index)];
  }
};

/// Parses and validates the document: well-formed JSON, version 1, every
/// required field of the right type, operand references in range. On failure
/// returns false with a one-line `error`.
bool parseDescription(std::string_view text, ModuleDescription &out,
                      std::string &error);

/// "?x7168xbf16"-style text of a shape ("?" for -1) and dtype.
std::string shapeString(const std::vector<int64_t> &shape);
std::string typeString(const TensorDesc &t);
/// The operand as "arg 3 'layers.0.gate.weight'" or "buffer 2".
std::string operandString(const ModuleDescription &d, const Operand &o);

/// The coordinates of element `flat` of a row-major `shape`, and their
/// "[i, j]" text.
std::vector<int64_t> coordsOf(const std::vector<int64_t> &shape, int64_t flat);
std::string joinCoords(const std::vector<int64_t> &coords);

/// `shape` with -1 replaced by T.
std::vector<int64_t> resolveShape(const std::vector<int64_t> &shape, int64_t T);
/// The element count of `shape` at T tokens; false if it overflows int64.
bool elementCount(const std::vector<int64_t> &shape, int64_t T, int64_t &out);
/// Bytes of `t` at T tokens; false on overflow.
bool byteSize(const TensorDesc &t, int64_t T, int64_t &out);

//===----------------------------------------------------------------------===//
// Typed ops (MoEOps.td semantics), for the reference checker
//===----------------------------------------------------------------------===//

enum class OpKind {
  Gate,
  TopK,
  RoutedExperts,
  SharedExperts,
  Add,
  Copy,
  AllReduce
};

enum class Scoring { Softmax, Sigmoid };

struct TypedOp {
  OpKind kind;
  std::string name;
  /// In the op's operand order; topk without bias has no bias operand
  /// (`hasBias` false).
  std::vector<Operand> operands;
  int64_t H = 0, E = 0, K = 0, I = 0;
  // topk
  Scoring scoring = Scoring::Softmax;
  int64_t nGroup = 1, topkGroup = 1;
  bool renormalize = false, hasBias = false;
  double routedScalingFactor = 1.0;
  // routed_experts
  bool inplace = false;
  // routed_experts, shared_experts: where the hidden, the weights, their
  // block scales (-1: absent) and the output are in `operands` (the
  // description lists the present operands only), and whether the weights
  // are f8e4m3 with fp32 block scales (the fp8 numerics contract,
  // kernels/moe_kernels.h).
  int hidden = 0, w13 = -1, w2 = -1, w13Scale = -1, w2Scale = -1, output = -1;
  bool fp8 = false;
  // add
  double scale = 1.0;
  // all_reduce: the ranks it sums over
  int64_t groupSize = 1;
};

/// Checks every op against its semantics at T tokens: operand count, dtypes,
/// shapes and attributes, as the moe dialect's verifiers do. On failure
/// returns false with an error naming the op and the operand.
bool analyzeOps(const ModuleDescription &d, int64_t T,
                std::vector<TypedOp> &out, std::string &error);

/// Which operands of `op` it may write: the outputs of known ops (and the
/// hidden operand of an in-place routed op), every operand of an unknown op.
std::vector<bool> writtenOperands(const OpDesc &op);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_DESCRIPTION_H
