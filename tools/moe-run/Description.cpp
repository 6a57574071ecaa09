//===- Description.cpp - The module description of a compiled layer ------===//

#include "Description.h"

#include <cmath>
#include <limits>

using namespace moerun;

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
                                        " (expected bf16, f16, f32 or i32)");
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

  bool floatOperand(size_t i, const char *role) {
    if (!isFloat(t(i).dtype))
      return fail(name(i, role) + " must be bf16, f16 or f32");
    return true;
  }
  bool dtypeIs(size_t i, const char *role, DType dtype) {
    if (t(i).dtype != dtype)
      return fail(name(i, role) + " must be " + dtypeName(dtype));
    return true;
  }
  bool sameDtype(size_t i, const char *role, size_t j) {
    if (t(i).dtype != t(j).dtype)
      return fail(name(i, role) + " must have the dtype of operand " +
                  std::to_string(j) + " (" + dtypeName(t(j).dtype) + ")");
    return true;
  }
  /// Checks the rank and the sizes (-2 = any, bound on first sight).
  bool shapeIs(size_t i, const char *role, std::vector<int64_t *> dims) {
    std::vector<int64_t> s = shape(i);
    if (s.size() != dims.size())
      return fail(name(i, role) + " must have rank " +
                  std::to_string(dims.size()));
    for (size_t k = 0; k < dims.size(); ++k) {
      int64_t &want = *dims[k];
      if (want == kUnbound) {
        want = s[k];
        continue;
      }
      if (s[k] != want)
        return fail(name(i, role) + ": dimension " + std::to_string(k) +
                    " is " + std::to_string(s[k]) + ", expected " +
                    std::to_string(want));
    }
    return true;
  }
  /// The first dimension must be the token count.
  bool tokenMajor(size_t i, const char *role) {
    const auto &s = t(i).shape;
    if (s.empty() || (s[0] != -1 && s[0] != T))
      return fail(name(i, role) +
                  ": the first dimension must be the token "
                  "count (" +
                  std::to_string(T) + ")");
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

  static constexpr int64_t kUnbound = std::numeric_limits<int64_t>::min();

  const ModuleDescription &d;
  int64_t T;
  const OpDesc &op;
  std::string &error;
  std::string where;
};

bool analyzeOne(const ModuleDescription &d, int64_t T, size_t index,
                const OpDesc &op, TypedOp &out, std::string &error) {
  OpChecker c(d, T, index, op, error);
  constexpr int64_t U = OpChecker::kUnbound;
  out.name = op.name;
  out.operands = op.operands;
  int64_t tokens = T;
  if (op.name == "moe.gate") {
    out.kind = OpKind::Gate;
    int64_t H = U, E = U;
    return c.operandCount(3) && c.floatOperand(0, "hidden") &&
           c.floatOperand(1, "gate_weight") &&
           c.dtypeIs(2, "logits", DType::F32) && c.tokenMajor(0, "hidden") &&
           c.shapeIs(0, "hidden", {&tokens, &H}) &&
           c.shapeIs(1, "gate_weight", {&E, &H}) && c.tokenMajor(2, "logits") &&
           c.shapeIs(2, "logits", {&tokens, &E}) &&
           ((out.H = H), (out.E = E), true);
  }
  if (op.name == "moe.topk") {
    out.kind = OpKind::TopK;
    bool hasBiasAttr;
    if (!c.attrBool("has_bias", hasBiasAttr, op.operands.size() == 4))
      return false;
    if (op.operands.size() != 3 && op.operands.size() != 4)
      return c.fail("expected 3 operands (logits, topk_ids, topk_weights) or "
                    "4 (with a bias), got " +
                    std::to_string(op.operands.size()));
    out.hasBias = op.operands.size() == 4;
    if (hasBiasAttr != out.hasBias)
      return c.fail(std::string("attribute \"has_bias\" is ") +
                    (hasBiasAttr ? "true" : "false") + " but the op has " +
                    std::to_string(op.operands.size()) + " operands");
    size_t ids = out.hasBias ? 2 : 1, weights = ids + 1;
    int64_t E = U, K = U;
    if (!c.dtypeIs(0, "logits", DType::F32) || !c.tokenMajor(0, "logits") ||
        !c.shapeIs(0, "logits", {&tokens, &E}))
      return false;
    if (out.hasBias &&
        (!c.dtypeIs(1, "bias", DType::F32) || !c.shapeIs(1, "bias", {&E})))
      return false;
    if (!c.dtypeIs(ids, "topk_ids", DType::I32) ||
        !c.tokenMajor(ids, "topk_ids") ||
        !c.shapeIs(ids, "topk_ids", {&tokens, &K}) ||
        !c.dtypeIs(weights, "topk_weights", DType::F32) ||
        !c.tokenMajor(weights, "topk_weights") ||
        !c.shapeIs(weights, "topk_weights", {&tokens, &K}))
      return false;
    out.E = E;
    out.K = K;
    const JsonValue *scoring = op.attrs.get("scoring");
    if (!scoring || !scoring->isString())
      return c.fail("attribute \"scoring\" must be \"softmax\" or "
                    "\"sigmoid\"");
    if (scoring->string == "softmax")
      out.scoring = Scoring::Softmax;
    else if (scoring->string == "sigmoid")
      out.scoring = Scoring::Sigmoid;
    else
      return c.fail("attribute \"scoring\" must be \"softmax\" or "
                    "\"sigmoid\", got " +
                    jsonQuote(scoring->string));
    int64_t k;
    if (!c.attrInt("k", k, true, 0) ||
        !c.attrInt("n_group", out.nGroup, false, 1) ||
        !c.attrInt("topk_group", out.topkGroup, false, 1) ||
        !c.attrBool("renormalize", out.renormalize, false) ||
        !c.attrNumber("routed_scaling_factor", out.routedScalingFactor, 1.0))
      return false;
    if (k != K)
      return c.fail("attribute \"k\" = " + std::to_string(k) +
                    " differs from the topk_ids width " + std::to_string(K));
    if (K < 1 || K > E)
      return c.fail("k = " + std::to_string(K) +
                    " must be in [1, E = " + std::to_string(E) + "]");
    if (out.nGroup < 1 || E % out.nGroup != 0)
      return c.fail("n_group = " + std::to_string(out.nGroup) +
                    " must be positive and divide E = " + std::to_string(E));
    if (out.topkGroup < 1 || out.topkGroup > out.nGroup)
      return c.fail("topk_group = " + std::to_string(out.topkGroup) +
                    " must be in [1, n_group = " + std::to_string(out.nGroup) +
                    "]");
    if (K > out.topkGroup * (E / out.nGroup))
      return c.fail("k = " + std::to_string(K) +
                    " exceeds the experts of topk_group groups (" +
                    std::to_string(out.topkGroup * (E / out.nGroup)) + ")");
    return true;
  }
  if (op.name == "moe.routed_experts") {
    out.kind = OpKind::RoutedExperts;
    int64_t H = U, E = U, K = U, I2 = U, I = U;
    if (!c.operandCount(6) || !c.floatOperand(0, "hidden") ||
        !c.dtypeIs(1, "topk_ids", DType::I32) ||
        !c.dtypeIs(2, "topk_weights", DType::F32) ||
        !c.sameDtype(3, "w13", 0) || !c.sameDtype(4, "w2", 0) ||
        !c.sameDtype(5, "output", 0) || !c.tokenMajor(0, "hidden") ||
        !c.shapeIs(0, "hidden", {&tokens, &H}) ||
        !c.tokenMajor(1, "topk_ids") ||
        !c.shapeIs(1, "topk_ids", {&tokens, &K}) ||
        !c.tokenMajor(2, "topk_weights") ||
        !c.shapeIs(2, "topk_weights", {&tokens, &K}) ||
        !c.shapeIs(3, "w13", {&E, &I2, &H}) ||
        !c.shapeIs(4, "w2", {&E, &H, &I}) || !c.tokenMajor(5, "output") ||
        !c.shapeIs(5, "output", {&tokens, &H}))
      return false;
    if (I2 != 2 * I)
      return c.fail("w13 has " + std::to_string(I2) +
                    " rows per expert, expected 2 * I = " +
                    std::to_string(2 * I) + " (I from w2)");
    if (!c.attrBool("inplace", out.inplace, false))
      return false;
    bool same = op.operands[0] == op.operands[5];
    if (out.inplace && !same)
      return c.fail("inplace, but the output is not the hidden operand");
    if (!out.inplace && same)
      return c.fail("not inplace, but the output is the hidden operand");
    out.H = H, out.E = E, out.K = K, out.I = I;
    return true;
  }
  if (op.name == "moe.shared_experts") {
    out.kind = OpKind::SharedExperts;
    int64_t H = U, I2 = U, I = U;
    if (!c.operandCount(4) || !c.floatOperand(0, "hidden") ||
        !c.sameDtype(1, "w13", 0) || !c.sameDtype(2, "w2", 0) ||
        !c.sameDtype(3, "output", 0) || !c.tokenMajor(0, "hidden") ||
        !c.shapeIs(0, "hidden", {&tokens, &H}) ||
        !c.shapeIs(1, "w13", {&I2, &H}) || !c.shapeIs(2, "w2", {&H, &I}) ||
        !c.tokenMajor(3, "output") || !c.shapeIs(3, "output", {&tokens, &H}))
      return false;
    if (I2 != 2 * I)
      return c.fail("w13 has " + std::to_string(I2) +
                    " rows, expected 2 * I = " + std::to_string(2 * I) +
                    " (I from w2)");
    out.H = H, out.I = I;
    return true;
  }
  if (op.name == "moe.add") {
    out.kind = OpKind::Add;
    int64_t H = U;
    if (!c.operandCount(3) || !c.floatOperand(0, "lhs") ||
        !c.sameDtype(1, "rhs", 0) || !c.sameDtype(2, "output", 0) ||
        !c.tokenMajor(0, "lhs") || !c.shapeIs(0, "lhs", {&tokens, &H}) ||
        !c.tokenMajor(1, "rhs") || !c.shapeIs(1, "rhs", {&tokens, &H}) ||
        !c.tokenMajor(2, "output") || !c.shapeIs(2, "output", {&tokens, &H}) ||
        !c.attrNumber("scale", out.scale, 1.0))
      return false;
    out.H = H;
    return true;
  }
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
  return c.fail("unknown op (the reference checker knows moe.gate, "
                "moe.topk, moe.routed_experts, moe.shared_experts, moe.add "
                "and memref.copy)");
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
  auto mark = [&](size_t i) {
    if (i < n)
      written[i] = true;
  };
  if (op.name == "moe.gate") {
    mark(2);
  } else if (op.name == "moe.topk") {
    mark(n - 2);
    mark(n - 1);
  } else if (op.name == "moe.routed_experts") {
    mark(5);
    const JsonValue *inplace = op.attrs.get("inplace");
    if (inplace && inplace->isBool() && inplace->boolean)
      mark(0);
  } else if (op.name == "moe.shared_experts") {
    mark(3);
  } else if (op.name == "moe.add") {
    mark(2);
  } else if (op.name == "memref.copy") {
    mark(1);
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
