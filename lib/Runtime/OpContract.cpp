//===- OpContract.cpp - The moe ops, declared once ------------------------===//
//
// The table of ops and the checks every consumer shares (OpContract.h).
//
//===----------------------------------------------------------------------===//
#include "moe-runtime/OpContract.h"
#include "moe-runtime/Workspace.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

using namespace moert::contract;

namespace {
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

template <typename... Args> std::string cat(const Args &...args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

/// Formats a float attribute as the IR prints small values (-1, 2.5, inf).
std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

const char *const kScoringCases[] = {"softmax", "sigmoid"};

OperandSpec operand(const char *name, const char *summary, Role role,
                    Element element, std::vector<Dim> dims, int sameAs = -1,
                    bool optional = false) {
  OperandSpec spec{name, summary, role, element, sameAs, optional,
                   int(dims.size()), {}};
  for (size_t i = 0; i < dims.size(); ++i)
    spec.dims[i] = dims[i];
  return spec;
}

/// An expert weight: bf16, f16 or f32 like operand `sameAs`, or f8e4m3 with
/// its block scales in operand `scales`.
OperandSpec weight(const char *name, const char *summary, std::vector<Dim> dims,
                   int sameAs, int scales) {
  OperandSpec spec =
      operand(name, summary, Role::Input, Element::Weight, dims, sameAs);
  spec.scales = scales;
  return spec;
}

/// The fp32 block scales of an f8e4m3 weight: present exactly when it is.
OperandSpec scalesOf(const char *name, const char *summary,
                     std::vector<Dim> dims) {
  return operand(name, summary, Role::Input, Element::F32, dims, -1,
                 /*optional=*/true);
}

AttrSpec intAttr(const char *name, int64_t min, std::optional<double> def,
                 std::optional<Sym> sizeOf = std::nullopt) {
  return {name, AttrKind::Int, min, false, def.has_value(), def.value_or(0),
          nullptr, 0, sizeOf};
}
AttrSpec floatAttr(const char *name, bool positive, double def) {
  return {name, AttrKind::Float, 0, positive, true, def, nullptr, 0,
          std::nullopt};
}
AttrSpec unitAttr(const char *name) {
  return {name, AttrKind::Unit, 0, false, true, 0, nullptr, 0, std::nullopt};
}

AbiArg ptr(int operand, const char *name) {
  return {AbiArg::Pointer, operand, Sym::T, name};
}
AbiArg dtypeOf(int operand, const char *name) {
  return {AbiArg::DTypeOf, operand, Sym::T, name};
}
AbiArg size(Sym sym) { return {AbiArg::Size, 0, sym, symName(sym)}; }
AbiArg attr(int index, const char *name) {
  return {AbiArg::Attribute, index, Sym::T, name};
}
AbiArg workspaceArg() { return {AbiArg::Workspace, 0, Sym::T, "workspace"}; }

constexpr Dim T{Sym::T}, H{Sym::H}, E{Sym::E}, K{Sym::K}, I{Sym::I};
constexpr Dim TwoI{Sym::I, 2, "stack gate and up rows"};
// One scale per kFp8Block x kFp8Block block of a weight.
constexpr Dim HBlocks{Sym::H, 1, nullptr, kFp8Block};
constexpr Dim IBlocks{Sym::I, 1, nullptr, kFp8Block};
constexpr Dim TwoIBlocks{Sym::I, 2, "stack gate and up rows", kFp8Block};

int64_t at(const Sizes &s, Sym sym) { return s[size_t(sym)]; }

//===--- Op rules ---------------------------------------------------------===//

// Attribute indices of moe.topk.
enum { kScoring, kK, kNGroup, kTopkGroup, kRenormalize, kScale };

std::string topkRules(const Sizes &s, const std::vector<AttrValue> &a,
                      const OperandTypes &types) {
  int64_t e = at(s, Sym::E), k = a[kK].i, nGroup = a[kNGroup].i,
          topkGroup = a[kTopkGroup].i;
  if (e >= 0 && k > e)
    return cat("k = ", k, " exceeds the number of experts (", e, ")");
  if (e >= 0 && e % nGroup != 0)
    return cat("n_group = ", nGroup, " must divide the number of experts (", e,
               ")");
  if (topkGroup > nGroup)
    return cat("topk_group = ", topkGroup, " exceeds n_group = ", nGroup);
  if (e >= 0) {
    int64_t selectable = topkGroup * (e / nGroup);
    if (k > selectable)
      return cat("k = ", k, " exceeds the ", selectable,
                 " experts of the best topk_group = ", topkGroup, " groups");
    if (a[kScoring].i == 1 && nGroup > 1 && e / nGroup < 2)
      return cat("sigmoid group scores sum the two best experts of a group, "
                 "so each of the n_group = ",
                 nGroup, " groups needs at least 2 experts");
  }
  if (types.size() > 1 && types[1] && a[kScoring].i != 1)
    return "a correction 'bias' requires sigmoid scoring";
  return "";
}

std::string expertIdLimit(const Sizes &s) {
  if (at(s, Sym::E) > kInt32Max)
    return cat("E = ", at(s, Sym::E), " does not fit the int32 expert ids");
  return "";
}

/// The expert ops' weight formats: w13 and w2 alike (both f8e4m3 with
/// scales, or both the hidden's type), and fp8 weights with a bf16 hidden
/// (the fp8 kernels quantize bf16 activations).
std::string weightFormatRules(const OperandTypes &types, int hidden, int w13,
                              int w2) {
  bool fp8 = types[size_t(w13)] == DType::F8E4M3;
  if (fp8 != (types[size_t(w2)] == DType::F8E4M3))
    return "'w13' and 'w2' must be stored alike: both f8E4M3FN with block "
           "scales, or both in the hidden's element type";
  if (fp8 && types[size_t(hidden)] && types[size_t(hidden)] != DType::BF16)
    return cat("f8E4M3FN weights need a bf16 'hidden' (activations are "
               "quantized from bf16), got ",
               dtypeName(*types[size_t(hidden)]));
  return "";
}

// Operand indices of moe.routed_experts and moe.shared_experts.
enum { kRHidden, kRIds, kRWeights, kRW13, kRW2, kRW13Scale, kRW2Scale, kROut };
enum { kSHidden, kSW13, kSW2, kSW13Scale, kSW2Scale, kSOut };

std::string routedRules(const Sizes &s, const std::vector<AttrValue> &,
                        const OperandTypes &types) {
  if (at(s, Sym::E) >= 0 && at(s, Sym::K) > at(s, Sym::E))
    return cat("k = ", at(s, Sym::K), " exceeds the number of experts (",
               at(s, Sym::E), ")");
  return weightFormatRules(types, kRHidden, kRW13, kRW2);
}

std::string sharedRules(const Sizes &, const std::vector<AttrValue> &,
                        const OperandTypes &types) {
  return weightFormatRules(types, kSHidden, kSW13, kSW2);
}

std::string routedLimits(const Sizes &s) {
  if (at(s, Sym::K) < 1)
    return cat("K must be at least 1, got ", at(s, Sym::K));
  if (at(s, Sym::E) >= kInt32Max)
    return cat("E = ", at(s, Sym::E), " does not fit the int32 expert offsets");
  int64_t pairs;
  if (at(s, Sym::T) >= 0 &&
      (__builtin_mul_overflow(at(s, Sym::T), at(s, Sym::K), &pairs) ||
       pairs > kInt32Max))
    return cat("T * K = ", at(s, Sym::T) * at(s, Sym::K),
               " exceeds the int32 pair indices");
  return "";
}

Linear routedWorkspace(const Sizes &s, const OperandTypes &types) {
  moert_linear_size w =
      types[kRW13] == DType::F8E4M3
          ? moert_routed_experts_fp8_workspace(at(s, Sym::H), at(s, Sym::E),
                                               at(s, Sym::K), at(s, Sym::I))
          : moert_routed_experts_workspace(
                at(s, Sym::H), at(s, Sym::E), at(s, Sym::K), at(s, Sym::I),
                dtypeBytes(types[kRHidden].value_or(DType::BF16)));
  return {w.per_token, w.constant};
}

Linear sharedWorkspace(const Sizes &s, const OperandTypes &types) {
  moert_linear_size w =
      types[kSW13] == DType::F8E4M3
          ? moert_shared_experts_fp8_workspace(at(s, Sym::H), at(s, Sym::I))
          : moert_shared_experts_workspace(
                at(s, Sym::I), dtypeBytes(types[kSHidden].value_or(DType::BF16)));
  return {w.per_token, w.constant};
}

std::vector<OpSpec> makeOps() {
  std::vector<OpSpec> ops;
  {
    OpSpec op;
    op.name = "moe.gate";
    op.function = "moert_gate";
    op.operands = {
        operand("hidden", "tokens (T x H)", Role::Input, Element::Float, {T, H}),
        operand("gate_weight", "router weight (E x H)", Role::Input,
                Element::Float, {E, H}),
        operand("logits", "logits (T x E)", Role::Output, Element::F32, {T, E}),
    };
    op.abi = {ptr(0, "hidden"),      dtypeOf(0, "hidden_dtype"),
              ptr(1, "gate_weight"), dtypeOf(1, "weight_dtype"),
              ptr(2, "logits"),      size(Sym::T),
              size(Sym::H),          size(Sym::E)};
    ops.push_back(std::move(op));
  }
  {
    OpSpec op;
    op.name = "moe.topk";
    op.function = "moert_topk";
    op.operands = {
        operand("logits", "router logits (T x E)", Role::Input, Element::F32,
                {T, E}),
        operand("bias", "selection bias (E)", Role::Input, Element::F32, {E},
                -1, /*optional=*/true),
        operand("topk_ids", "selected experts (T x k)", Role::Output,
                Element::I32, {T, K}),
        operand("topk_weights", "their weights (T x k)", Role::Output,
                Element::F32, {T, K}),
    };
    AttrSpec scoring{"scoring", AttrKind::Enum, 0,          false, false, 0,
                     kScoringCases, 2,          std::nullopt};
    op.attrs = {scoring,
                intAttr("k", 1, std::nullopt, Sym::K),
                intAttr("n_group", 1, 1.0),
                intAttr("topk_group", 1, 1.0),
                unitAttr("renormalize"),
                floatAttr("routed_scaling_factor", /*positive=*/true, 1.0)};
    op.abi = {ptr(0, "logits"),
              ptr(1, "bias"),
              ptr(2, "topk_ids"),
              ptr(3, "topk_weights"),
              size(Sym::T),
              size(Sym::E),
              size(Sym::K),
              attr(kScoring, "scoring"),
              attr(kNGroup, "n_group"),
              attr(kTopkGroup, "topk_group"),
              attr(kRenormalize, "renormalize"),
              attr(kScale, "routed_scaling_factor")};
    op.rules = topkRules;
    op.limits = expertIdLimit;
    ops.push_back(std::move(op));
  }
  {
    OpSpec op;
    op.name = "moe.routed_experts";
    op.function = "moert_routed_experts";
    op.operands = {
        operand("hidden", "tokens (T x H)", Role::Input, Element::Float, {T, H}),
        operand("topk_ids", "selected experts (T x k)", Role::Input,
                Element::I32, {T, K}),
        operand("topk_weights", "their weights (T x k)", Role::Input,
                Element::F32, {T, K}),
        weight("w13", "stacked gate/up weights (E x 2I x H)", {E, TwoI, H},
               kRHidden, kRW13Scale),
        weight("w2", "down weights (E x H x I)", {E, H, I}, kRHidden,
               kRW2Scale),
        scalesOf("w13_scale", "block scales of fp8 w13 (E x 2I/128 x H/128)",
                 {E, TwoIBlocks, HBlocks}),
        scalesOf("w2_scale", "block scales of fp8 w2 (E x H/128 x I/128)",
                 {E, HBlocks, IBlocks}),
        operand("output", "result (T x H)", Role::Output, Element::Float,
                {T, H}, kRHidden),
    };
    op.attrs = {unitAttr("inplace")};
    op.aliases = {{kROut, kRHidden, Alias::InPlaceIff, 0}};
    op.abi = {ptr(kRHidden, "hidden"),
              ptr(kRIds, "topk_ids"),
              ptr(kRWeights, "topk_weights"),
              ptr(kRW13, "w13"),
              ptr(kRW2, "w2"),
              ptr(kRW13Scale, "w13_scale"),
              ptr(kRW2Scale, "w2_scale"),
              ptr(kROut, "output"),
              workspaceArg(),
              dtypeOf(kRHidden, "dtype"),
              dtypeOf(kRW13, "weight_dtype"),
              size(Sym::T),
              size(Sym::H),
              size(Sym::E),
              size(Sym::K),
              size(Sym::I)};
    op.rules = routedRules;
    op.limits = routedLimits;
    op.workspace = routedWorkspace;
    ops.push_back(std::move(op));
  }
  {
    OpSpec op;
    op.name = "moe.shared_experts";
    op.function = "moert_shared_experts";
    op.operands = {
        operand("hidden", "tokens (T x H)", Role::Input, Element::Float, {T, H}),
        weight("w13", "stacked gate/up weights (2I x H)", {TwoI, H}, kSHidden,
               kSW13Scale),
        weight("w2", "down weights (H x I)", {H, I}, kSHidden, kSW2Scale),
        scalesOf("w13_scale", "block scales of fp8 w13 (2I/128 x H/128)",
                 {TwoIBlocks, HBlocks}),
        scalesOf("w2_scale", "block scales of fp8 w2 (H/128 x I/128)",
                 {HBlocks, IBlocks}),
        operand("output", "result (T x H)", Role::Output, Element::Float,
                {T, H}, kSHidden),
    };
    op.aliases = {{kSOut, kSHidden, Alias::Distinct, -1}};
    op.abi = {ptr(kSHidden, "hidden"),
              ptr(kSW13, "w13"),
              ptr(kSW2, "w2"),
              ptr(kSW13Scale, "w13_scale"),
              ptr(kSW2Scale, "w2_scale"),
              ptr(kSOut, "output"),
              workspaceArg(),
              dtypeOf(kSHidden, "dtype"),
              dtypeOf(kSW13, "weight_dtype"),
              size(Sym::T),
              size(Sym::H),
              size(Sym::I)};
    op.rules = sharedRules;
    op.workspace = sharedWorkspace;
    ops.push_back(std::move(op));
  }
  {
    OpSpec op;
    op.name = "moe.add";
    op.function = "moert_add";
    op.operands = {
        operand("lhs", "routed result (T x H)", Role::Input, Element::Float,
                {T, H}),
        operand("rhs", "shared-expert result (T x H)", Role::Input,
                Element::Float, {T, H}, 0),
        operand("output", "sum (T x H)", Role::Output, Element::Float, {T, H},
                0),
    };
    op.attrs = {floatAttr("scale", /*positive=*/false, 1.0)};
    op.aliases = {{2, 0, Alias::MayEqual, -1}, {2, 1, Alias::MayEqual, -1}};
    op.abi = {ptr(0, "lhs"),      ptr(1, "rhs"), ptr(2, "output"),
              dtypeOf(0, "dtype"), size(Sym::T), size(Sym::H),
              attr(0, "scale")};
    ops.push_back(std::move(op));
  }
  {
    OpSpec op;
    op.name = "moe.all_reduce";
    op.function = "moert_all_reduce";
    op.collective = true;
    op.operands = {
        operand("input", "this rank's partial sum (T x H)", Role::Input,
                Element::Float, {T, H}),
        operand("output", "the sum over the ranks (T x H)", Role::Output,
                Element::Float, {T, H}, 0),
    };
    op.attrs = {intAttr("group_size", 1, std::nullopt)};
    op.aliases = {{1, 0, Alias::MayEqual, -1}};
    op.abi = {ptr(0, "input"), ptr(1, "output"), dtypeOf(0, "dtype"),
              size(Sym::T),    size(Sym::H),     attr(0, "group_size")};
    ops.push_back(std::move(op));
  }
  return ops;
}
} // namespace

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

bool moert::contract::accepts(Element element, DType dtype) {
  switch (element) {
  case Element::Float:
    return isFloat(dtype);
  case Element::F32:
    return dtype == DType::F32;
  case Element::I32:
    return dtype == DType::I32;
  case Element::Weight:
    return isFloat(dtype) || dtype == DType::F8E4M3;
  }
  return false;
}

const char *moert::contract::describe(Element element) {
  switch (element) {
  case Element::Float:
    return "bf16, f16 or f32";
  case Element::F32:
    return "f32";
  case Element::I32:
    return "i32";
  case Element::Weight:
    return "bf16, f16, f32 or f8E4M3FN";
  }
  return "?";
}

const char *moert::contract::symName(Sym sym) {
  static const char *const names[] = {"T", "H", "E", "K", "I"};
  return names[size_t(sym)];
}

const char *moert::contract::symMeaning(Sym sym) {
  static const char *const names[] = {"token count", "hidden size",
                                      "expert count", "k",
                                      "intermediate size"};
  return names[size_t(sym)];
}

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

const std::vector<OpSpec> &moert::contract::allOps() {
  static const std::vector<OpSpec> ops = makeOps();
  return ops;
}

const OpSpec *moert::contract::findOp(std::string_view name) {
  for (const OpSpec &op : allOps())
    if (name == op.name)
      return &op;
  return nullptr;
}

std::vector<int> moert::contract::presentOperands(const OpSpec &op,
                                                 size_t given) {
  size_t optional = 0;
  for (const OperandSpec &o : op.operands)
    optional += o.optional;
  size_t n = op.operands.size();
  if (given != n && (optional == 0 || given + optional != n))
    return {};
  bool absent = given != n;
  std::vector<int> slots;
  int next = 0;
  for (const OperandSpec &o : op.operands)
    slots.push_back(o.optional && absent ? -1 : next++);
  return slots;
}

int OpSpec::operandIndex(std::string_view n) const {
  for (size_t i = 0; i < operands.size(); ++i)
    if (n == operands[i].name)
      return int(i);
  return -1;
}

int OpSpec::attrIndex(std::string_view n) const {
  for (size_t i = 0; i < attrs.size(); ++i)
    if (n == attrs[i].name)
      return int(i);
  return -1;
}

bool OpSpec::writes(int index, const std::vector<AttrValue> &values) const {
  if (operands[size_t(index)].role == Role::Output)
    return true;
  for (const AliasRule &rule : aliases)
    if (rule.kind == Alias::InPlaceIff && rule.input == index &&
        size_t(rule.attr) < values.size() && values[size_t(rule.attr)].present)
      return true;
  return false;
}

//===----------------------------------------------------------------------===//
// Checks
//===----------------------------------------------------------------------===//

/// Ranges of the attributes; absent ones get their defaults.
static std::string checkAttrs(const OpSpec &op, std::vector<AttrValue> &attrs) {
  attrs.resize(op.attrs.size());
  for (size_t i = 0; i < op.attrs.size(); ++i) {
    const AttrSpec &spec = op.attrs[i];
    AttrValue &value = attrs[i];
    if (!value.present) {
      if (spec.kind == AttrKind::Unit)
        continue;
      if (!spec.hasDefault)
        return cat("requires the attribute '", spec.name, "'");
      value.i = int64_t(spec.defaultValue);
      value.f = spec.defaultValue;
      continue;
    }
    switch (spec.kind) {
    case AttrKind::Int:
      if (value.i < spec.min)
        return cat(spec.name, " must be at least ", spec.min, ", got ",
                   value.i);
      break;
    case AttrKind::Float: {
      float f = float(value.f);
      if (spec.positive && (!(f > 0.0f) || std::isinf(f)))
        return cat(spec.name, " must be positive and finite, got ",
                   number(value.f));
      if (!std::isfinite(f))
        return cat(spec.name, " must be finite, got ", number(value.f));
      break;
    }
    case AttrKind::Enum:
      if (value.i < 0 || value.i >= spec.numCases) {
        std::string names;
        for (int c = 0; c < spec.numCases; ++c)
          names += cat(c ? (c + 1 == spec.numCases ? " or " : ", ") : "",
                       spec.cases[c], " (", c, ")");
        return cat(spec.name, " must be ", names, ", got ", value.i);
      }
      break;
    case AttrKind::Unit:
      break;
    }
  }
  return "";
}

/// The attributes that give a symbol's size must agree with it.
static std::string checkSizeAttrs(const OpSpec &op,
                                  const std::vector<AttrValue> &attrs,
                                  const Sizes &sizes,
                                  const std::vector<OperandInfo> *operands) {
  for (size_t i = 0; i < op.attrs.size(); ++i) {
    const AttrSpec &spec = op.attrs[i];
    if (!spec.sizeOf || at(sizes, *spec.sizeOf) < 0 ||
        attrs[i].i == at(sizes, *spec.sizeOf))
      continue;
    // Name the first present operand with that size.
    std::string where = symName(*spec.sizeOf);
    for (size_t o = 0; operands && o < op.operands.size(); ++o) {
      const OperandSpec &operand = op.operands[o];
      if ((*operands)[o].present &&
          std::any_of(operand.dims.begin(), operand.dims.begin() + operand.rank,
                      [&](const Dim &d) { return d.sym == *spec.sizeOf; })) {
        where = operand.name;
        break;
      }
    }
    return cat("'", where, "' must have ", spec.name, " = ", attrs[i].i,
               " columns, but has ", at(sizes, *spec.sizeOf));
  }
  return "";
}

/// Block scales come exactly with f8e4m3 weights.
static std::string checkScales(const OpSpec &op, const OperandTypes &types) {
  for (size_t i = 0; i < op.operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (spec.scales < 0 || !types[i])
      continue;
    const char *scales = op.operands[size_t(spec.scales)].name;
    bool fp8 = *types[i] == DType::F8E4M3, given = types[size_t(spec.scales)]
                                                      .has_value();
    if (fp8 && !given)
      return cat("'", spec.name, "' is f8E4M3FN and needs its block scales '",
                 scales, "'");
    if (!fp8 && given)
      return cat("'", scales, "' is given but '", spec.name, "' is ",
                 dtypeName(*types[i]),
                 "; block scales belong to f8E4M3FN weights");
  }
  return "";
}

/// A block-scale dimension needs its block to divide what it covers.
static std::string checkBlocks(const OpSpec &op, const Sizes &sizes,
                               const OperandTypes &types) {
  for (size_t i = 0; i < op.operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (!types[i])
      continue;
    for (int d = 0; d < spec.rank; ++d) {
      const Dim &dim = spec.dims[size_t(d)];
      int64_t n = at(sizes, dim.sym);
      if (dim.block == 1 || n < 0 || (dim.factor * n) % dim.block == 0)
        continue;
      const char *of = "?";
      for (const OperandSpec &w : op.operands)
        if (w.scales == int(i))
          of = w.name;
      return cat("'", spec.name, "' holds one scale per ", dim.block, " x ",
                 dim.block, " block of '", of, "', so its ", symMeaning(dim.sym),
                 " (", n, ") must be a multiple of ", dim.block);
    }
  }
  return "";
}

/// "2 x 512 / 128": how a dimension's expected extent is made.
static std::string spell(const Dim &dim, int64_t n) {
  std::string s = dim.factor != 1 ? cat(dim.factor, " x ", n) : cat(n);
  return dim.block != 1 ? cat(s, " / ", dim.block) : s;
}

std::string moert::contract::checkOperands(
    const OpSpec &op, const std::vector<OperandInfo> &operands,
    std::vector<AttrValue> &attrs, Sizes &sizes) {
  sizes = unknownSizes();
  if (operands.size() != op.operands.size())
    return cat("expected ", op.operands.size(), " operands, got ",
               operands.size());
  OperandTypes types;
  for (const OperandInfo &o : operands)
    types.push_back(o.present ? o.dtype : std::nullopt);

  // Ranks and element types.
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    const OperandInfo &info = operands[i];
    if (!info.present) {
      if (!spec.optional)
        return cat("'", spec.name, "' is required");
      continue;
    }
    if (int(info.shape.size()) != spec.rank)
      return cat("'", spec.name, "' must have rank ", spec.rank, ", got ",
                 info.shape.size());
    if (!info.dtype || !accepts(spec.element, *info.dtype))
      return cat("'", spec.name, "' must have element type ",
                 describe(spec.element), ", got '", info.typeName, "'");
  }
  if (std::string e = checkScales(op, types); !e.empty())
    return e;
  // Every size but the token count is static.
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (!operands[i].present)
      continue;
    for (int d = 0; d < spec.rank; ++d)
      if (spec.dims[size_t(d)].sym != Sym::T && operands[i].shape[size_t(d)] < 0)
        return cat(symMeaning(spec.dims[size_t(d)].sym),
                   " must be static: dimension ", d, " of '", spec.name,
                   "' is dynamic");
  }
  // One size per symbol: the first operand with a plain dimension of it
  // gives it, the others must agree.
  struct Source {
    int operand = -1, dim = -1;
  };
  std::array<Source, kNumSyms> source;
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (!operands[i].present)
      continue;
    for (int d = 0; d < spec.rank; ++d) {
      const Dim &dim = spec.dims[size_t(d)];
      int64_t s = operands[i].shape[size_t(d)];
      if (dim.factor != 1 || dim.block != 1 || s < 0)
        continue;
      Source &src = source[size_t(dim.sym)];
      if (src.operand < 0) {
        src = {int(i), d};
        sizes[size_t(dim.sym)] = s;
        continue;
      }
      if (sizes[size_t(dim.sym)] != s)
        return cat(symMeaning(dim.sym), " mismatch: '",
                   op.operands[size_t(src.operand)].name, "' has ",
                   sizes[size_t(dim.sym)], " (dimension ", src.dim, ") but '",
                   spec.name, "' has ", s, " (dimension ", d, ")");
    }
  }
  // Multiples of a symbol, and block-scale dimensions.
  if (std::string e = checkBlocks(op, sizes, types); !e.empty())
    return e;
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (!operands[i].present)
      continue;
    for (int d = 0; d < spec.rank; ++d) {
      const Dim &dim = spec.dims[size_t(d)];
      int64_t s = operands[i].shape[size_t(d)];
      if ((dim.factor == 1 && dim.block == 1) || s < 0)
        continue;
      Source src = source[size_t(dim.sym)];
      if (dim.block != 1) {
        // Every symbol of a scale dimension has a plain source (the weight).
        int64_t n = sizes[size_t(dim.sym)];
        if (n >= 0 && s != dim.factor * n / dim.block)
          return cat("'", spec.name, "' must have one scale per block: ",
                     "dimension ", d, " is ", s, ", expected ",
                     dim.factor * n / dim.block, " (", spell(dim, n), ")");
        continue;
      }
      if (src.operand < 0) {
        if (s % dim.factor != 0)
          return cat("'", spec.name, "' must ", dim.why, ": dimension ", d,
                     " is ", s, ", not a multiple of ", dim.factor);
        sizes[size_t(dim.sym)] = s / dim.factor;
        continue;
      }
      int64_t expected = sizes[size_t(dim.sym)];
      if (s != dim.factor * expected)
        return cat("'", spec.name, "' must ", dim.why, ": dimension ", d,
                   " is ", s, ", expected ", dim.factor, " x ", expected,
                   " (the ", symMeaning(dim.sym), " of '",
                   op.operands[size_t(src.operand)].name, "')");
    }
  }
  // Element types that must agree (an fp8 weight has its scales instead).
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (spec.sameDTypeAs < 0 || !operands[i].present ||
        (spec.scales >= 0 && types[i] == DType::F8E4M3))
      continue;
    const OperandInfo &other = operands[size_t(spec.sameDTypeAs)];
    if (operands[i].dtype != other.dtype)
      return cat("element types of '", op.operands[size_t(spec.sameDTypeAs)].name,
                 "' ('", other.typeName, "') and '", spec.name, "' ('",
                 operands[i].typeName, "') must match");
  }
  if (std::string e = checkAttrs(op, attrs); !e.empty())
    return e;
  if (std::string e = checkSizeAttrs(op, attrs, sizes, &operands); !e.empty())
    return e;
  // A symbol only an attribute gives (none of its operand dims is static).
  for (size_t i = 0; i < op.attrs.size(); ++i)
    if (op.attrs[i].sizeOf && at(sizes, *op.attrs[i].sizeOf) < 0)
      sizes[size_t(*op.attrs[i].sizeOf)] = attrs[i].i;
  if (op.rules)
    if (std::string e = op.rules(sizes, attrs, types); !e.empty())
      return e;
  return "";
}

std::optional<DType>
moert::contract::operandDType(const OpSpec &op, int index,
                            const std::vector<int32_t> &dtypeCodes) {
  const OperandSpec &spec = op.operands[size_t(index)];
  if (spec.element == Element::F32)
    return DType::F32;
  if (spec.element == Element::I32)
    return DType::I32;
  // An op's weights share one format: the weight_dtype argument, passed for
  // its first weight.
  auto passesType = [&](const AbiArg &arg) {
    return arg.kind == AbiArg::DTypeOf &&
           (arg.index == index ||
            (spec.element == Element::Weight &&
             op.operands[size_t(arg.index)].element == Element::Weight));
  };
  for (const AbiArg &arg : op.abi)
    if (passesType(arg)) {
      int32_t code = dtypeCodes[size_t(arg.index)];
      if (!isDType(code))
        return std::nullopt;
      return DType(code);
    }
  if (spec.sameDTypeAs >= 0)
    return operandDType(op, spec.sameDTypeAs, dtypeCodes);
  return std::nullopt;
}

OperandTypes moert::contract::callTypes(const OpSpec &op,
                                       const std::vector<int32_t> &dtypeCodes,
                                       const std::vector<bool> &present) {
  OperandTypes types;
  for (size_t i = 0; i < op.operands.size(); ++i)
    types.push_back(present[i] ? operandDType(op, int(i), dtypeCodes)
                               : std::nullopt);
  return types;
}

std::string moert::contract::checkCall(const OpSpec &op, const Sizes &sizes,
                                     const std::vector<int32_t> &dtypeCodes,
                                     const std::vector<bool> &present,
                                     std::vector<AttrValue> &attrs) {
  for (const AbiArg &arg : op.abi)
    if (arg.kind == AbiArg::Size && at(sizes, arg.sym) < 0)
      return cat(arg.name, " must be non-negative, got ", at(sizes, arg.sym));
  for (const AbiArg &arg : op.abi) {
    if (arg.kind != AbiArg::DTypeOf)
      continue;
    int32_t code = dtypeCodes[size_t(arg.index)];
    Element element = op.operands[size_t(arg.index)].element;
    if (!isDType(code) || !accepts(element, DType(code)))
      return cat(arg.name, " must be ",
                 element == Element::Float ? "MOERT_BF16, MOERT_F16 or MOERT_F32"
                 : element == Element::Weight
                     ? "MOERT_BF16, MOERT_F16, MOERT_F32 or MOERT_F8E4M3"
                     : describe(element),
                 ", got ", code);
  }
  OperandTypes types = callTypes(op, dtypeCodes, present);
  if (std::string e = checkScales(op, types); !e.empty())
    return e;
  if (std::string e = checkBlocks(op, sizes, types); !e.empty())
    return e;
  // At run time a symbol's size comes as an argument: an attribute that
  // gives one (k) is that argument, and must be at least its minimum.
  for (size_t i = 0; i < op.attrs.size(); ++i)
    if (op.attrs[i].sizeOf && at(sizes, *op.attrs[i].sizeOf) < op.attrs[i].min)
      return cat(symName(*op.attrs[i].sizeOf), " must be at least ",
                 op.attrs[i].min, ", got ", at(sizes, *op.attrs[i].sizeOf));
  if (op.limits)
    if (std::string e = op.limits(sizes); !e.empty())
      return e;
  if (std::string e = checkAttrs(op, attrs); !e.empty())
    return e;
  if (op.rules)
    if (std::string e = op.rules(sizes, attrs, types); !e.empty())
      return e;
  return "";
}

bool moert::contract::elementCount(const OperandSpec &operand,
                                 const Sizes &sizes, int64_t &count) {
  count = 1;
  for (int d = 0; d < operand.rank; ++d) {
    const Dim &dim = operand.dims[size_t(d)];
    int64_t extent;
    if (__builtin_mul_overflow(dim.factor, at(sizes, dim.sym), &extent) ||
        __builtin_mul_overflow(count, extent / dim.block, &count))
      return false;
  }
  return true;
}

int64_t moert::contract::workspaceBytes(const OpSpec &op, const Sizes &sizes,
                                        const OperandTypes &types) {
  if (!op.workspace)
    return 0;
  Linear w = op.workspace(sizes, types);
  int64_t bytes = moert_linear_eval_checked({w.perToken, w.constant},
                                            at(sizes, Sym::T));
  return bytes == MOERT_SIZE_OVERFLOW ? -1 : bytes;
}
