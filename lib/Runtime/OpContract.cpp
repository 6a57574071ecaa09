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

int64_t at(const Sizes &s, Sym sym) { return s[size_t(sym)]; }

//===--- Op rules ---------------------------------------------------------===//

// Attribute indices of moe.topk.
enum { kScoring, kK, kNGroup, kTopkGroup, kRenormalize, kScale };

std::string topkRules(const Sizes &s, const std::vector<AttrValue> &a,
                      const std::vector<bool> &present) {
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
  if (present.size() > 1 && present[1] && a[kScoring].i != 1)
    return "a correction 'bias' requires sigmoid scoring";
  return "";
}

std::string expertIdLimit(const Sizes &s) {
  if (at(s, Sym::E) > kInt32Max)
    return cat("E = ", at(s, Sym::E), " does not fit the int32 expert ids");
  return "";
}

std::string routedRules(const Sizes &s, const std::vector<AttrValue> &,
                        const std::vector<bool> &) {
  if (at(s, Sym::E) >= 0 && at(s, Sym::K) > at(s, Sym::E))
    return cat("k = ", at(s, Sym::K), " exceeds the number of experts (",
               at(s, Sym::E), ")");
  return "";
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

Linear routedWorkspace(const Sizes &s, DType dtype) {
  moert_linear_size w = moert_routed_experts_workspace(
      at(s, Sym::H), at(s, Sym::E), at(s, Sym::K), at(s, Sym::I),
      dtypeBytes(dtype));
  return {w.per_token, w.constant};
}

Linear sharedWorkspace(const Sizes &s, DType dtype) {
  moert_linear_size w =
      moert_shared_experts_workspace(at(s, Sym::I), dtypeBytes(dtype));
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
        operand("w13", "stacked gate/up weights (E x 2I x H)", Role::Input,
                Element::Float, {E, TwoI, H}, 0),
        operand("w2", "down weights (E x H x I)", Role::Input, Element::Float,
                {E, H, I}, 0),
        operand("output", "result (T x H)", Role::Output, Element::Float,
                {T, H}, 0),
    };
    op.attrs = {unitAttr("inplace")};
    op.aliases = {{5, 0, Alias::InPlaceIff, 0}};
    op.abi = {ptr(0, "hidden"),       ptr(1, "topk_ids"), ptr(2, "topk_weights"),
              ptr(3, "w13"),          ptr(4, "w2"),       ptr(5, "output"),
              workspaceArg(),         dtypeOf(0, "dtype"), size(Sym::T),
              size(Sym::H),           size(Sym::E),       size(Sym::K),
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
        operand("w13", "stacked gate/up weights (2I x H)", Role::Input,
                Element::Float, {TwoI, H}, 0),
        operand("w2", "down weights (H x I)", Role::Input, Element::Float,
                {H, I}, 0),
        operand("output", "result (T x H)", Role::Output, Element::Float,
                {T, H}, 0),
    };
    op.aliases = {{3, 0, Alias::Distinct, -1}};
    op.abi = {ptr(0, "hidden"), ptr(1, "w13"),       ptr(2, "w2"),
              ptr(3, "output"), workspaceArg(),      dtypeOf(0, "dtype"),
              size(Sym::T),     size(Sym::H),        size(Sym::I)};
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

std::string moert::contract::checkOperands(
    const OpSpec &op, const std::vector<OperandInfo> &operands,
    std::vector<AttrValue> &attrs, Sizes &sizes) {
  sizes = unknownSizes();
  if (operands.size() != op.operands.size())
    return cat("expected ", op.operands.size(), " operands, got ",
               operands.size());
  std::vector<bool> present;
  for (const OperandInfo &o : operands)
    present.push_back(o.present);

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
      if (dim.factor != 1 || s < 0)
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
  // Multiples of a symbol.
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (!operands[i].present)
      continue;
    for (int d = 0; d < spec.rank; ++d) {
      const Dim &dim = spec.dims[size_t(d)];
      int64_t s = operands[i].shape[size_t(d)];
      if (dim.factor == 1 || s < 0)
        continue;
      Source src = source[size_t(dim.sym)];
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
  // Element types that must agree.
  for (size_t i = 0; i < operands.size(); ++i) {
    const OperandSpec &spec = op.operands[i];
    if (spec.sameDTypeAs < 0 || !operands[i].present)
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
    if (std::string e = op.rules(sizes, attrs, present); !e.empty())
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
  for (const AbiArg &arg : op.abi)
    if (arg.kind == AbiArg::DTypeOf && arg.index == index) {
      int32_t code = dtypeCodes[size_t(index)];
      if (!isDType(code))
        return std::nullopt;
      return DType(code);
    }
  if (spec.sameDTypeAs >= 0)
    return operandDType(op, spec.sameDTypeAs, dtypeCodes);
  return std::nullopt;
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
                                           : describe(element),
                 ", got ", code);
  }
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
    if (std::string e = op.rules(sizes, attrs, present); !e.empty())
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
        __builtin_mul_overflow(count, extent, &count))
      return false;
  }
  return true;
}

int64_t moert::contract::workspaceBytes(const OpSpec &op, const Sizes &sizes,
                                      DType dtype) {
  if (!op.workspace)
    return 0;
  Linear w = op.workspace(sizes, dtype);
  int64_t bytes = moert_linear_eval_checked({w.perToken, w.constant},
                                            at(sizes, Sym::T));
  return bytes == MOERT_SIZE_OVERFLOW ? -1 : bytes;
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

std::string moert::contract::toJson() {
  std::ostringstream os;
  auto str = [&](const char *s) { os << '"' << s << '"'; };
  os << "{\"dtypes\": [";
  for (int i = 0; i < kNumDTypes; ++i)
    os << (i ? ", " : "") << "{\"name\": \"" << dtypeName(DType(i))
       << "\", \"code\": " << i << ", \"bytes\": " << dtypeBytes(DType(i))
       << "}";
  os << "],\n \"symbols\": [";
  for (int i = 0; i < kNumSyms; ++i)
    os << (i ? ", " : "") << "{\"name\": \"" << symName(Sym(i))
       << "\", \"meaning\": \"" << symMeaning(Sym(i)) << "\"}";
  os << "],\n \"ops\": [";
  bool firstOp = true;
  for (const OpSpec &op : allOps()) {
    os << (firstOp ? "" : ",") << "\n  {\"name\": ";
    firstOp = false;
    str(op.name);
    os << ", \"function\": ";
    str(op.function);
    os << ",\n   \"operands\": [";
    for (size_t i = 0; i < op.operands.size(); ++i) {
      const OperandSpec &o = op.operands[i];
      os << (i ? ", " : "") << "{\"name\": \"" << o.name
         << "\", \"summary\": \"" << o.summary << "\", \"role\": \""
         << (o.role == Role::Input ? "input" : "output")
         << "\", \"element\": \""
         << (o.element == Element::Float ? "float"
                                         : o.element == Element::F32 ? "f32"
                                                                     : "i32")
         << "\", \"same_dtype_as\": " << o.sameDTypeAs
         << ", \"optional\": " << (o.optional ? "true" : "false")
         << ", \"shape\": [";
      for (int d = 0; d < o.rank; ++d)
        os << (d ? ", " : "") << "[\"" << symName(o.dims[size_t(d)].sym)
           << "\", " << o.dims[size_t(d)].factor << "]";
      os << "]}";
    }
    os << "],\n   \"attributes\": [";
    for (size_t i = 0; i < op.attrs.size(); ++i) {
      const AttrSpec &a = op.attrs[i];
      static const char *const kinds[] = {"int", "float", "unit", "enum"};
      os << (i ? ", " : "") << "{\"name\": \"" << a.name << "\", \"kind\": \""
         << kinds[size_t(a.kind)] << "\", \"min\": " << a.min
         << ", \"positive\": " << (a.positive ? "true" : "false");
      if (a.hasDefault && a.kind != AttrKind::Unit)
        os << ", \"default\": " << number(a.defaultValue);
      if (a.kind == AttrKind::Enum) {
        os << ", \"cases\": [";
        for (int c = 0; c < a.numCases; ++c)
          os << (c ? ", " : "") << '"' << a.cases[c] << '"';
        os << "]";
      }
      if (a.sizeOf)
        os << ", \"size_of\": \"" << symName(*a.sizeOf) << "\"";
      os << "}";
    }
    os << "],\n   \"aliases\": [";
    for (size_t i = 0; i < op.aliases.size(); ++i) {
      const AliasRule &r = op.aliases[i];
      static const char *const kinds[] = {"may_equal", "in_place_iff",
                                          "distinct"};
      os << (i ? ", " : "") << "{\"output\": " << r.output
         << ", \"input\": " << r.input << ", \"kind\": \""
         << kinds[size_t(r.kind)] << "\"";
      if (r.attr >= 0)
        os << ", \"attribute\": \"" << op.attrs[size_t(r.attr)].name << "\"";
      os << "}";
    }
    os << "],\n   \"workspace\": " << (op.workspace ? "true" : "false") << "}";
  }
  os << "\n ]\n}\n";
  return os.str();
}
