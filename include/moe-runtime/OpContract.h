//===- OpContract.h - What every moe op is, declared once -------*- C++ -*-===//
//
// The op contract: for each op of the moe dialect, its operands (name, role,
// element type, shape in the layer's symbols T, H, E, K, I), its attributes
// (kind, legal range, default), the aliasing its operands may have, its
// workspace formula and its runtime entry point with the order of that
// function's arguments. Everything that knows an op's rules is derived from
// this table or calls the checks below:
//
//  - the dialect's verifiers and memory effects (lib/Dialect/MoE/IR),
//  - the lowering to runtime calls (lib/Conversion/MoEToRuntime),
//  - the runtime's argument checks (lib/Runtime/Runtime.cpp),
//  - moe-run's check of a module description (tools/moe-run),
//  - moe-gen's validation of a layer's routing parameters,
//  - the differential tester, through `moe-run --print-op-contract`.
//
// Plain C++17 without MLIR: the runtime builds it with only a C++ compiler.
// docs/adding-an-op.md says how an op is added.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_OPCONTRACT_H
#define MOE_RUNTIME_OPCONTRACT_H

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moert::contract {

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

/// The element types of moe operands: the one dtype enum of the project. The
/// numbering is the C ABI's moert_dtype. F8E4M3 (the IR's f8E4M3FN) is a
/// storage format of expert weights only, with fp32 block scales beside it
/// (OperandSpec::scales); the ops never compute in it.
enum class DType : int32_t { BF16 = 0, F16 = 1, F32 = 2, I32 = 3, F8E4M3 = 4 };
inline constexpr int kNumDTypes = 5;

/// The block of the fp8 weight formats: one fp32 scale per kFp8Block x
/// kFp8Block block of a weight matrix (DeepSeek-V3's weight_block_size).
inline constexpr int64_t kFp8Block = 128;

/// "bf16", "f16", "f32", "i32", "f8e4m3".
inline const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::F32:
    return "f32";
  case DType::I32:
    return "i32";
  case DType::F8E4M3:
    return "f8e4m3";
  }
  return "?";
}
inline std::optional<DType> parseDType(std::string_view name) {
  for (int32_t i = 0; i < kNumDTypes; ++i)
    if (name == dtypeName(DType(i)))
      return DType(i);
  return std::nullopt;
}
inline int64_t dtypeBytes(DType dtype) {
  switch (dtype) {
  case DType::F8E4M3:
    return 1;
  case DType::BF16:
  case DType::F16:
    return 2;
  default:
    return 4;
  }
}
/// The float types the ops compute in: bf16, f16, f32 (not fp8 storage).
inline bool isFloat(DType dtype) {
  return dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::F32;
}
/// A raw value (e.g. from a C caller) that is a valid DType.
inline bool isDType(int32_t raw) { return raw >= 0 && raw < kNumDTypes; }

/// What element types an operand accepts.
enum class Element : uint8_t {
  Float,  // bf16, f16 or f32
  F32,
  I32,
  Weight, // bf16, f16, f32, or f8e4m3 with block scales (OperandSpec::scales)
};
bool accepts(Element element, DType dtype);
/// "bf16, f16 or f32", "f32", "i32", "bf16, f16, f32 or f8E4M3FN".
const char *describe(Element element);

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

/// The symbols shapes are written in. T (the token count) is the only one
/// that may be dynamic in the IR.
enum class Sym : uint8_t { T, H, E, K, I };
inline constexpr int kNumSyms = 5;
/// "T", "H", ...: the runtime's argument names.
const char *symName(Sym sym);
/// "token count", "hidden size", "expert count", "k", "intermediate size".
const char *symMeaning(Sym sym);

/// One dimension: `factor` x `sym` / `block`. `why` explains a factor other
/// than 1 in messages ("stack gate and up rows"). A `block` other than 1 is a
/// dimension of block scales: one per `block` elements of `factor` x `sym`,
/// which `block` must divide.
struct Dim {
  Sym sym;
  int64_t factor = 1;
  const char *why = nullptr;
  int64_t block = 1;
};

inline constexpr int kMaxRank = 3;

/// The role of an operand: read, or written (an output). The alias rules say
/// when an output may also be an input buffer.
enum class Role : uint8_t { Input, Output };

struct OperandSpec {
  const char *name;    // as in MoEOps.td: "hidden", "gate_weight", ...
  const char *summary; // "tokens (T x H)"
  Role role;
  Element element;
  /// The operand whose element type this one must have (-1: none); an
  /// operand with `scales` may instead be f8e4m3.
  int sameDTypeAs;
  /// An optional operand (topk's bias): absent, the runtime gets NULL.
  bool optional;
  int rank;
  std::array<Dim, kMaxRank> dims;
  /// An Element::Weight operand: the optional operand holding its fp32 block
  /// scales, present exactly when this operand is f8e4m3 (-1: none).
  int scales = -1;
};

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

enum class AttrKind : uint8_t {
  Int,   // i64
  Float, // f32
  Unit,  // present or not
  Enum,  // an i32 enum, one of `cases`
};

struct AttrSpec {
  const char *name;
  AttrKind kind;
  /// Int: the smallest legal value; Float: > 0 when `positive`.
  int64_t min;
  bool positive;
  /// The value when absent (Int, Float); required when false.
  bool hasDefault;
  double defaultValue;
  /// Enum: the case names, in their numbering.
  const char *const *cases;
  int numCases;
  /// Int: the symbol whose size the attribute gives (topk's k), if any.
  std::optional<Sym> sizeOf;
};

/// An attribute's value as a consumer read it.
struct AttrValue {
  bool present = false;
  int64_t i = 0; // Int, Enum
  double f = 0;  // Float
};

//===----------------------------------------------------------------------===//
// Aliasing
//===----------------------------------------------------------------------===//

enum class Alias : uint8_t {
  /// The output may be the input buffer itself; never a partial overlap.
  MayEqual,
  /// The output is the input (the same value) exactly when the unit
  /// attribute `attr` is set; then the op writes the input too. At run time:
  /// equal or disjoint.
  InPlaceIff,
  /// In the IR the output is a buffer of its own, never the input's (the
  /// scheduler may then move the op freely against writers of the input).
  /// The kernels are in-place safe, so at run time the output may be the
  /// input itself; never a partial overlap.
  Distinct,
};

struct AliasRule {
  int output, input;
  Alias kind;
  int attr; // InPlaceIff: the unit attribute's index
};

//===----------------------------------------------------------------------===//
// Runtime entry points
//===----------------------------------------------------------------------===//

/// One argument of an op's runtime function, in order.
struct AbiArg {
  enum Kind : uint8_t {
    Pointer,   // the data pointer of operand `index` (NULL when absent)
    DTypeOf,   // the moert_dtype of operand `index` (i32)
    Workspace, // the workspace pointer (NULL: the runtime allocates it)
    Size,      // symbol `sym` (i64)
    Attribute, // attribute `index`: Int i64, Float f32, Unit/Enum i32
  } kind;
  int index = 0;
  Sym sym = Sym::T;
  /// The C parameter's name ("hidden", "hidden_dtype", "T", "n_group").
  const char *name = "";
};

//===----------------------------------------------------------------------===//
// Ops
//===----------------------------------------------------------------------===//

/// Symbol values (-1: unknown, e.g. a dynamic token count).
using Sizes = std::array<int64_t, kNumSyms>;
inline Sizes unknownSizes() { return {-1, -1, -1, -1, -1}; }

/// The element types of an op's operands in the contract's order (nullopt:
/// an absent optional operand, or a type that is none of DType).
using OperandTypes = std::vector<std::optional<DType>>;

/// A linear size a * T + b (bytes).
struct Linear {
  int64_t perToken = 0, constant = 0;
};

struct OpSpec {
  const char *name;     // "moe.topk"
  const char *function; // "moert_topk"
  std::vector<OperandSpec> operands;
  std::vector<AttrSpec> attrs;
  std::vector<AliasRule> aliases;
  std::vector<AbiArg> abi;
  /// A collective: every rank of the communicator runs it, in the same order
  /// on every rank (docs/multi-gpu.md). Its kernel is the communicator's,
  /// not the backend's; in the IR it also writes the communicator (one
  /// resource), so no schedule reorders two collectives.
  bool collective = false;
  /// The op's own rules beyond shapes, dtypes and attribute ranges, given
  /// the sizes (T may be unknown), the attributes (defaults filled in) and
  /// the operands' element types (nullopt: absent): "" when they hold, else
  /// the message.
  std::string (*rules)(const Sizes &, const std::vector<AttrValue> &,
                       const OperandTypes &) = nullptr;
  /// Limits of the runtime's index types (int32 expert ids, pair indices)
  /// at known sizes: "" when they hold.
  std::string (*limits)(const Sizes &) = nullptr;
  /// Workspace bytes as a function of T for the other sizes and the
  /// operands' element types; null when the op needs none.
  Linear (*workspace)(const Sizes &, const OperandTypes &) = nullptr;

  int operandIndex(std::string_view name) const;
  int attrIndex(std::string_view name) const;
  bool writes(int operand, const std::vector<AttrValue> &attrs) const;
};

/// Where `op`'s operands are in a list of the `given` present ones, in the
/// contract's order: the optional operands come as one group (topk's bias;
/// the two block scales), all present or all absent. Returns each contract
/// operand's index in that list (-1: absent), or an empty vector when
/// `given` is neither count.
std::vector<int> presentOperands(const OpSpec &op, size_t given);

/// Every op, in a fixed order.
const std::vector<OpSpec> &allOps();
/// The op named `name` ("moe.gate"), or null.
const OpSpec *findOp(std::string_view name);

//===----------------------------------------------------------------------===//
// Checks
//===----------------------------------------------------------------------===//

/// One operand as a consumer sees it.
struct OperandInfo {
  bool present = true;
  /// The element type; nullopt when it is none of DType (`typeName` says).
  std::optional<DType> dtype;
  std::string typeName;
  /// The shape (-1: dynamic); must have the spec's rank.
  std::vector<int64_t> shape;
};

/// Checks operands and attributes against `op`: ranks, element types, that
/// every size but T is static, that each symbol has one size, the
/// attributes' ranges and the op's rules. Fills `sizes` (T stays -1 when
/// dynamic everywhere) and fills absent attributes with their defaults.
/// Returns "" or the first violation, worded for users of the IR (e.g.
/// "hidden size mismatch: 'hidden' has 64 (dimension 1) but 'w13' has 32
/// (dimension 2)").
std::string checkOperands(const OpSpec &op,
                          const std::vector<OperandInfo> &operands,
                          std::vector<AttrValue> &attrs, Sizes &sizes);

/// Checks the sizes (non-negative, within the runtime's index types), the
/// element types and the attributes of a runtime call, where sizes come as
/// arguments rather than from shapes. `dtypeCodes[i]` is the raw moert_dtype
/// passed for operand i (where the function takes one); `present[i]` says
/// whether an optional operand was given. Returns "" or the violation.
std::string checkCall(const OpSpec &op, const Sizes &sizes,
                      const std::vector<int32_t> &dtypeCodes,
                      const std::vector<bool> &present,
                      std::vector<AttrValue> &attrs);

/// The element type of operand `index` of a call: fixed by the contract
/// (f32, i32), passed for it, or that of the operand it must match.
std::optional<DType> operandDType(const OpSpec &op, int index,
                                  const std::vector<int32_t> &dtypeCodes);

/// The element types of a call's operands (operandDType of each; nullopt
/// for an absent one).
OperandTypes callTypes(const OpSpec &op, const std::vector<int32_t> &dtypeCodes,
                       const std::vector<bool> &present);

/// The element count of `operand` at `sizes`; false when it overflows.
bool elementCount(const OperandSpec &operand, const Sizes &sizes,
                  int64_t &count);

/// The workspace bytes of `op` at `sizes` (T known) for its operands'
/// element types; -1 when it overflows, 0 when the op has none.
int64_t workspaceBytes(const OpSpec &op, const Sizes &sizes,
                       const OperandTypes &types);

/// The contract as JSON (for tools in other languages: the differential
/// tester reads it from `moe-run --print-op-contract`).
std::string toJson();

} // namespace moert::contract

#endif // MOE_RUNTIME_OPCONTRACT_H
