//===- Description.cpp - The module description of a compiled layer ------===//

#include "Description.h"

#include "moe-runtime/OpContract.h"

#include <cmath>
#include <limits>

using namespace moerun;
namespace contract = moert::contract;

const char *moerun::roleName(Role role) {
  switch (role) {
  case Role::Input:
    return "input";
  case Role::Weight:
    return "weight";
  case Role::Output:
    return "output";
  }
  return "?";
}

std::string moerun::shapeString(const std::vector<int64_t> &shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += "x";
    s += shape[i] < 0 ? "?" : std::to_string(shape[i]);
  }
  return s;
}

std::string moerun::typeString(const TensorDesc &t) {
  std::string s = shapeString(t.shape);
  return (s.empty() ? "" : s + "x") + dtypeName(t.dtype);
}

std::string moerun::operandString(const ModuleDescription &d,
                                  const Operand &o) {
  if (o.isArg)
    return "arg " + std::to_string(o.index) + " '" +
           d.args[size_t(o.index)].name + "'";
  return "buffer " + std::to_string(o.index);
}

std::vector<int64_t> moerun::coordsOf(const std::vector<int64_t> &shape,
                                      int64_t flat) {
  std::vector<int64_t> c(shape.size());
  for (size_t k = shape.size(); k-- > 0;) {
    int64_t n = std::max<int64_t>(shape[k], 1);
    c[k] = flat % n;
    flat /= n;
  }
  return c;
}

std::string moerun::joinCoords(const std::vector<int64_t> &coords) {
  std::string s = "[";
  for (size_t i = 0; i < coords.size(); ++i)
    s += (i ? ", " : "") + std::to_string(coords[i]);
  return s + "]";
}

std::vector<int64_t> moerun::resolveShape(const std::vector<int64_t> &shape,
                                          int64_t T) {
  std::vector<int64_t> r(shape);
  for (auto &s : r)
    if (s < 0)
      s = T;
  return r;
}

bool moerun::elementCount(const std::vector<int64_t> &shape, int64_t T,
                          int64_t &out) {
  int64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, s < 0 ? T : s, &n))
      return false;
  out = n;
  return true;
}

bool moerun::byteSize(const TensorDesc &t, int64_t T, int64_t &out) {
  int64_t n;
  return elementCount(t.shape, T, n) &&
         !__builtin_mul_overflow(n, dtypeBytes(t.dtype), &out);
}

//===----------------------------------------------------------------------===//
// parseDescription
//===----------------------------------------------------------------------===//

namespace {

/// Field readers: each sets `error` ("<where>: <what>") and returns false.
struct Reader {
  std::string &error;

  bool fail(const std::string &where, const std::string &what) {
    error = where + ": " + what;
    return false;
  }

  bool typeError(const std::string &where, const char *expected,
                 const JsonValue &v) {
    return fail(where, std::string("expected ") + expected + ", got " +
                           jsonKindName(v.kind));
  }

  bool integer(const std::string &where, const JsonValue &v, int64_t &out) {
    if (!v.isNumber() || !v.isInteger)
      return v.isNumber() ? fail(where, "expected an integer, got " +
                                            jsonNumber(v.number))
                          : typeError(where, "an integer", v);
    out = v.integer;
    return true;
  }

  bool string(const std::string &where, const JsonValue &v, std::string &out) {
    if (!v.isString())
      return typeError(where, "a string", v);
    out = v.string;
    return true;
  }

  bool tensor(const std::string &where, const JsonValue &v, bool isArg,
              TensorDesc &out) {
    if (!v.isObject())
      return typeError(where, "an object", v);
    if (isArg) {
      const JsonValue *name = v.get("name");
      if (!name)
        return fail(where, "missing \"name\"");
      if (!string(where + ".name", *name, out.name))
        return false;
      const JsonValue *role = v.get("role");
      if (!role)
        return fail(where, "missing \"role\"");
      std::string r;
      if (!string(where + ".role", *role, r))
        return false;
      if (r == "input")
        out.role = Role::Input;
      else if (r == "weight")
        out.role = Role::Weight;
      else if (r == "output")
        out.role = Role::Output;
      else
        return fail(where + ".role", "unknown role " + jsonQuote(r) +
                                         " (expected input, weight or "
                                         "output)");
    }
    const JsonValue *dtype = v.get("dtype");
    if (!dtype)
      return fail(where, "missing \"dtype\"");
    std::string dt;
    if (!string(where + ".dtype", *dtype, dt))
      return false;
    if (!parseDType(dt, out.dtype))
      return fail(where + ".dtype", "unknown dtype " + jsonQuote(dt) +
                                        " (expected bf16, f16, f32, i32 or "
                                        "f8e4m3)");
    const JsonValue *shape = v.get("shape");
    if (!shape)
      return fail(where, "missing \"shape\"");
    if (!shape->isArray())
      return typeError(where + ".shape", "an array", *shape);
    for (size_t i = 0; i < shape->array.size(); ++i) {
      int64_t s;
      std::string at = where + ".shape[" + std::to_string(i) + "]";
      if (!integer(at, shape->array[i], s))
        return false;
      if (s < -1)
        return fail(at, "a size must be >= 0 or -1 (the token count), got " +
                            std::to_string(s));
      out.shape.push_back(s);
    }
    return true;
  }
};

} // namespace

bool moerun::parseDescription(std::string_view text, ModuleDescription &out,
                              std::string &error) {
  out = ModuleDescription();
  JsonValue doc;
  std::string jsonError;
  if (text.empty()) {
    error = "the description is empty";
    return false;
  }
  if (!parseJson(text, doc, jsonError)) {
    error = "malformed JSON: " + jsonError;
    return false;
  }
  Reader r{error};
  if (!doc.isObject())
    return r.typeError("the description", "an object", doc);

  // The version first: a newer document may differ in everything else.
  const JsonValue *version = doc.get("version");
  if (!version)
    return r.fail("the description", "missing \"version\"");
  if (!r.integer("version", *version, out.version))
    return false;
  if (out.version != kDescriptionVersion)
    return r.fail("version", "unsupported module description version " +
                                 std::to_string(out.version) +
                                 " (this moe-run reads "
                                 "version " +
                                 std::to_string(kDescriptionVersion) +
                                 "; rebuild moe-run or the module)");

  const JsonValue *function = doc.get("function");
  if (!function)
    return r.fail("the description", "missing \"function\"");
  if (!r.string("function", *function, out.function))
    return false;

  if (const JsonValue *tc = doc.get("token_count"); tc && !tc->isNull()) {
    int64_t T;
    if (!r.integer("token_count", *tc, T))
      return false;
    if (T < 0)
      return r.fail("token_count",
                    "must be >= 0 or null, got " + std::to_string(T));
    out.tokenCount = T;
  }

  if (const JsonValue *opt = doc.get("optimized"); opt && !opt->isNull()) {
    if (!opt->isBool())
      return r.typeError("optimized", "a boolean", *opt);
    out.optimized = opt->boolean;
  }

  if (const JsonValue *checkable = doc.get("checkable");
      checkable && !checkable->isNull()) {
    if (!checkable->isBool())
      return r.typeError("checkable", "a boolean", *checkable);
    out.checkable = checkable->boolean;
  }

  for (const char *key : {"planned_peak_bytes", "modelled_peak_bytes"}) {
    const JsonValue *plan = doc.get(key);
    if (!plan || plan->isNull())
      continue;
    std::string k = key;
    if (!plan->isObject())
      return r.typeError(k, "an object or null", *plan);
    LinearBytes bytes;
    const JsonValue *perToken = plan->get("per_token");
    const JsonValue *constant = plan->get("constant");
    if (!perToken || !constant)
      return r.fail(k, "expected \"per_token\" and \"constant\"");
    if (!r.integer(k + ".per_token", *perToken, bytes.perToken) ||
        !r.integer(k + ".constant", *constant, bytes.constant))
      return false;
    if (bytes.perToken < 0 || bytes.constant < 0)
      return r.fail(k, "sizes must be non-negative");
    if (const JsonValue *maxOf = plan->get("max_of");
        maxOf && !maxOf->isNull()) {
      if (!maxOf->isArray())
        return r.typeError(k + ".max_of", "an array", *maxOf);
      for (const JsonValue &line : maxOf->array) {
        const JsonValue *a = line.isObject() ? line.get("per_token") : nullptr;
        const JsonValue *b = line.isObject() ? line.get("constant") : nullptr;
        int64_t pa = 0, pb = 0;
        if (!a || !b)
          return r.fail(k + ".max_of",
                        "expected objects with \"per_token\" and \"constant\"");
        if (!r.integer(k + ".max_of.per_token", *a, pa) ||
            !r.integer(k + ".max_of.constant", *b, pb))
          return false;
        if (pa < 0 || pb < 0)
          return r.fail(k + ".max_of", "sizes must be non-negative");
        bytes.maxOf.emplace_back(pa, pb);
      }
    }
    (k == "planned_peak_bytes" ? out.plannedPeak : out.modelledPeak) = bytes;
  }

  const JsonValue *args = doc.get("args");
  if (!args)
    return r.fail("the description", "missing \"args\"");
  if (!args->isArray())
    return r.typeError("args", "an array", *args);
  for (size_t i = 0; i < args->array.size(); ++i) {
    TensorDesc t;
    if (!r.tensor("args[" + std::to_string(i) + "]", args->array[i], true, t))
      return false;
    out.args.push_back(std::move(t));
  }

  if (const JsonValue *buffers = doc.get("buffers");
      buffers && !buffers->isNull()) {
    if (!buffers->isArray())
      return r.typeError("buffers", "an array", *buffers);
    for (size_t i = 0; i < buffers->array.size(); ++i) {
      TensorDesc t;
      if (!r.tensor("buffers[" + std::to_string(i) + "]", buffers->array[i],
                    false, t))
        return false;
      out.buffers.push_back(std::move(t));
    }
  }

  if (const JsonValue *ops = doc.get("ops"); ops && !ops->isNull()) {
    if (!ops->isArray())
      return r.typeError("ops", "an array", *ops);
    for (size_t i = 0; i < ops->array.size(); ++i) {
      std::string where = "ops[" + std::to_string(i) + "]";
      const JsonValue &o = ops->array[i];
      if (!o.isObject())
        return r.typeError(where, "an object", o);
      OpDesc op;
      const JsonValue *name = o.get("op");
      if (!name)
        return r.fail(where, "missing \"op\"");
      if (!r.string(where + ".op", *name, op.name))
        return false;
      if (const JsonValue *loc = o.get("loc"); loc && !loc->isNull())
        if (!r.string(where + ".loc", *loc, op.loc))
          return false;
      const JsonValue *operands = o.get("operands");
      if (!operands)
        return r.fail(where, "missing \"operands\"");
      if (!operands->isArray())
        return r.typeError(where + ".operands", "an array", *operands);
      for (size_t j = 0; j < operands->array.size(); ++j) {
        std::string at = where + ".operands[" + std::to_string(j) + "]";
        const JsonValue &ref = operands->array[j];
        if (!ref.isObject())
          return r.typeError(at, "an object", ref);
        const JsonValue *arg = ref.get("arg");
        const JsonValue *buffer = ref.get("buffer");
        if (!arg == !buffer || ref.object.size() != 1)
          return r.fail(at, "expected {\"arg\": N} or {\"buffer\": N}");
        Operand operand;
        operand.isArg = arg != nullptr;
        if (!r.integer(at, arg ? *arg : *buffer, operand.index))
          return false;
        size_t limit = operand.isArg ? out.args.size() : out.buffers.size();
        if (operand.index < 0 || uint64_t(operand.index) >= limit)
          return r.fail(at, std::string(operand.isArg ? "arg" : "buffer") +
                                " index " + std::to_string(operand.index) +
                                " is out of range (the description has " +
                                std::to_string(limit) + ")");
        op.operands.push_back(operand);
      }
      if (const JsonValue *attrs = o.get("attrs"); attrs && !attrs->isNull()) {
        if (!attrs->isObject())
          return r.typeError(where + ".attrs", "an object", *attrs);
        op.attrs = *attrs;
      } else {
        op.attrs.kind = JsonValue::Kind::Object;
      }
      out.ops.push_back(std::move(op));
    }
  }
  return true;
}

//===----------------------------------------------------------------------===//
// analyzeOps
//===----------------------------------------------------------------------===//

namespace {

class OpChecker {
public:
  OpChecker(const ModuleDescription &d, int64_t T, size_t index,
            const OpDesc &op, std::string &error)
      : d(d), T(T), op(op), error(error),
        where("op " + std::to_string(index) + " (" + op.name + ")") {}

  bool fail(const std::string &what) {
    error = where + ": " + what;
    return false;
  }

  bool operandCount(size_t n) {
    if (op.operands.size() != n)
      return fail("expected " + std::to_string(n) + " operands, got " +
                  std::to_string(op.operands.size()));
    return true;
  }

  const TensorDesc &t(size_t i) const { return d.tensor(op.operands[i]); }
  std::vector<int64_t> shape(size_t i) const {
    return resolveShape(t(i).shape, T);
  }

  std::string name(size_t i, const char *role) const {
    return "operand " + std::to_string(i) + " (" + role + ", " +
           operandString(d, op.operands[i]) + ", " + typeString(t(i)) + ")";
  }

  bool sameDtype(size_t i, const char *role, size_t j) {
    if (t(i).dtype != t(j).dtype)
      return fail(name(i, role) + " must have the dtype of operand " +
                  std::to_string(j) + " (" + dtypeName(t(j).dtype) + ")");
    return true;
  }
  bool attrInt(const char *key, int64_t &out, bool required,
               int64_t defaultValue) {
    const JsonValue *v = op.attrs.get(key);
    if (!v || v->isNull()) {
      if (required)
        return fail(std::string("missing attribute \"") + key + "\"");
      out = defaultValue;
      return true;
    }
    if (!v->isNumber() || !v->isInteger)
      return fail(std::string("attribute \"") + key + "\" must be an integer");
    out = v->integer;
    return true;
  }
  bool attrNumber(const char *key, double &out, double defaultValue) {
    const JsonValue *v = op.attrs.get(key);
    if (!v || v->isNull()) {
      out = defaultValue;
      return true;
    }
    if (!v->isNumber())
      return fail(std::string("attribute \"") + key + "\" must be a number");
    out = v->number;
    if (!std::isfinite(double(float(out))))
      return fail(std::string("attribute \"") + key +
                  "\" must be finite as an f32");
    return true;
  }
  bool attrBool(const char *key, bool &out, bool defaultValue) {
    const JsonValue *v = op.attrs.get(key);
    if (!v || v->isNull()) {
      out = defaultValue;
      return true;
    }
    if (!v->isBool())
      return fail(std::string("attribute \"") + key + "\" must be a boolean");
    out = v->boolean;
    return true;
  }

  const ModuleDescription &d;
  int64_t T;
  const OpDesc &op;
  std::string &error;
  std::string where;
};

/// A moe op, checked by its op contract: operands (the description lists the
/// present ones, in the contract's order), attributes, aliasing.
bool analyzeContractOp(int64_t T, const contract::OpSpec &spec,
                       const OpDesc &op,
                       OpChecker &c, TypedOp &out) {
  size_t n = spec.operands.size();
  size_t given = op.operands.size();
  // Contract operand -> description operand (-1: absent).
  std::vector<int> slot = contract::presentOperands(spec, given);
  if (slot.empty())
    return c.fail("expected " + std::to_string(n) + " operands, got " +
                  std::to_string(given));
  std::vector<contract::OperandInfo> infos(n);
  for (size_t i = 0; i < n; ++i) {
    if (slot[i] < 0) {
      infos[i].present = false;
      continue;
    }
    const TensorDesc &t = c.t(size_t(slot[i]));
    infos[i].dtype = t.dtype;
    infos[i].typeName = dtypeName(t.dtype);
    infos[i].shape = resolveShape(t.shape, T);
  }
  for (size_t i = 0; i < n; ++i)
    if (spec.operands[i].optional) {
      std::string key = std::string("has_") + spec.operands[i].name;
      bool hasIt = false;
      if (!c.attrBool(key.c_str(), hasIt, infos[i].present))
        return false;
      if (hasIt != infos[i].present)
        return c.fail("attribute \"" + key + "\" is " +
                      (hasIt ? "true" : "false") + " but the op has " +
                      std::to_string(given) + " operands");
    }
  std::vector<contract::AttrValue> attrs(spec.attrs.size());
  for (size_t a = 0; a < spec.attrs.size(); ++a) {
    const contract::AttrSpec &attr = spec.attrs[a];
    const JsonValue *v = op.attrs.get(attr.name);
    if (!v || v->isNull())
      continue;
    attrs[a].present = true;
    switch (attr.kind) {
    case contract::AttrKind::Int:
      if (!c.attrInt(attr.name, attrs[a].i, true, 0))
        return false;
      break;
    case contract::AttrKind::Float:
      if (!c.attrNumber(attr.name, attrs[a].f, attr.defaultValue))
        return false;
      break;
    case contract::AttrKind::Unit: {
      bool set = false;
      if (!c.attrBool(attr.name, set, false))
        return false;
      attrs[a].present = set;
      break;
    }
    case contract::AttrKind::Enum: {
      std::string names;
      attrs[a].i = -1;
      for (int k = 0; k < attr.numCases; ++k) {
        names += std::string(k ? (k + 1 == attr.numCases ? " or " : ", ") : "") +
                 "\"" + attr.cases[k] + "\"";
        if (v->isString() && v->string == attr.cases[k])
          attrs[a].i = k;
      }
      if (attrs[a].i < 0)
        return c.fail(std::string("attribute \"") + attr.name + "\" must be " +
                      names +
                      (v->isString() ? ", got " + jsonQuote(v->string) : ""));
      break;
    }
    }
  }
  contract::Sizes sizes;
  std::string rule = contract::checkOperands(spec, infos, attrs, sizes);
  if (!rule.empty())
    return c.fail(rule);
  if (sizes[size_t(contract::Sym::T)] != T)
    return c.fail("the token count of its operands is " +
                  std::to_string(sizes[size_t(contract::Sym::T)]) +
                  ", not the run's " + std::to_string(T));
  for (const contract::AliasRule &rule : spec.aliases) {
    if (slot[size_t(rule.output)] < 0 || slot[size_t(rule.input)] < 0)
      continue;
    std::string outName = spec.operands[size_t(rule.output)].name;
    std::string inName = spec.operands[size_t(rule.input)].name;
    bool same = op.operands[size_t(slot[size_t(rule.output)])] ==
                op.operands[size_t(slot[size_t(rule.input)])];
    if (rule.kind == contract::Alias::InPlaceIff) {
      std::string flag = spec.attrs[size_t(rule.attr)].name;
      bool set = attrs[size_t(rule.attr)].present;
      if (set && !same)
        return c.fail(flag + ", but the " + outName + " is not the " + inName +
                      " operand");
      if (!set && same)
        return c.fail("not " + flag + ", but the " + outName + " is the " +
                      inName + " operand");
    }
    if (rule.kind == contract::Alias::Distinct && same)
      return c.fail("the " + outName + " must not be the " + inName +
                    " operand");
  }
  out.H = sizes[size_t(contract::Sym::H)];
  out.E = sizes[size_t(contract::Sym::E)];
  out.K = sizes[size_t(contract::Sym::K)];
  out.I = sizes[size_t(contract::Sym::I)];
  auto attr = [&](const char *name) -> const contract::AttrValue * {
    int a = spec.attrIndex(name);
    return a < 0 ? nullptr : &attrs[size_t(a)];
  };
  if (op.name == "moe.gate") {
    out.kind = OpKind::Gate;
  } else if (op.name == "moe.topk") {
    out.kind = OpKind::TopK;
    out.hasBias = infos[1].present;
    out.scoring = attr("scoring")->i == 1 ? Scoring::Sigmoid : Scoring::Softmax;
    out.nGroup = attr("n_group")->i;
    out.topkGroup = attr("topk_group")->i;
    out.renormalize = attr("renormalize")->present;
    out.routedScalingFactor = attr("routed_scaling_factor")->f;
  } else if (op.name == "moe.routed_experts" ||
             op.name == "moe.shared_experts") {
    bool routed = op.name == "moe.routed_experts";
    out.kind = routed ? OpKind::RoutedExperts : OpKind::SharedExperts;
    if (routed)
      out.inplace = attr("inplace")->present;
    auto at = [&](const char *name) {
      return slot[size_t(spec.operandIndex(name))];
    };
    out.hidden = at("hidden");
    out.w13 = at("w13");
    out.w2 = at("w2");
    out.w13Scale = at("w13_scale");
    out.w2Scale = at("w2_scale");
    out.output = at("output");
    // checkOperands has checked that the scales come exactly with f8e4m3
    // weights.
    out.fp8 = c.t(size_t(out.w13)).dtype == DType::F8E4M3;
  } else if (op.name == "moe.add") {
    out.kind = OpKind::Add;
    out.scale = attr("scale")->f;
  } else if (op.name == "moe.all_reduce") {
    out.kind = OpKind::AllReduce;
    out.groupSize = attr("group_size")->i;
  } else {
    return c.fail("the reference has no semantics for this op");
  }
  return true;
}

bool analyzeOne(const ModuleDescription &d, int64_t T, size_t index,
                const OpDesc &op, TypedOp &out, std::string &error) {
  OpChecker c(d, T, index, op, error);
  out.name = op.name;
  out.operands = op.operands;
  if (const contract::OpSpec *spec = contract::findOp(op.name))
    return analyzeContractOp(T, *spec, op, c, out);
  if (op.name == "memref.copy") {
    out.kind = OpKind::Copy;
    if (!c.operandCount(2) || !c.sameDtype(1, "target", 0))
      return false;
    if (c.shape(0) != c.shape(1))
      return c.fail(c.name(1, "target") +
                    " must have the shape of the "
                    "source (" +
                    typeString(c.t(0)) + ")");
    return true;
  }
  std::string known;
  for (const contract::OpSpec &spec : contract::allOps())
    known += std::string(spec.name) + ", ";
  known.resize(known.size() - 2);
  return c.fail("unknown op (the reference checker knows " + known +
                " and memref.copy)");
}

} // namespace

bool moerun::analyzeOps(const ModuleDescription &d, int64_t T,
                        std::vector<TypedOp> &out, std::string &error) {
  out.clear();
  for (size_t i = 0; i < d.ops.size(); ++i) {
    TypedOp op;
    if (!analyzeOne(d, T, i, d.ops[i], op, error))
      return false;
    out.push_back(std::move(op));
  }
  return true;
}

std::vector<bool> moerun::writtenOperands(const OpDesc &op) {
  size_t n = op.operands.size();
  std::vector<bool> written(n, false);
  if (const contract::OpSpec *spec = contract::findOp(op.name)) {
    std::vector<contract::AttrValue> attrs(spec->attrs.size());
    for (size_t a = 0; a < spec->attrs.size(); ++a) {
      const JsonValue *v = op.attrs.get(spec->attrs[a].name);
      attrs[a].present = v && v->isBool() && v->boolean;
    }
    std::vector<int> slots = contract::presentOperands(*spec, n);
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i] >= 0)
        written[size_t(slots[i])] = spec->writes(int(i), attrs);
  } else if (op.name == "memref.copy") {
    if (n > 1)
      written[1] = true;
  } else {
    written.assign(n, true);
  }
  // Any operand that is also an output of the op (in-place) is written too.
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      if (written[j] && op.operands[i] == op.operands[j])
        written[i] = true;
  return written;
}
