//===- OpCheck.cpp - --check op by op -------------------------------------===//
#include "OpCheck.h"

#include "moe-runtime/OpContract.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

using namespace moerun;
namespace contract = moert::contract;

OpRecorder::OpRecorder(moert_context *ctx) : ctx(ctx) {
  moert_set_op_observer(ctx, &OpRecorder::observe, this);
}

OpRecorder::~OpRecorder() { moert_set_op_observer(ctx, nullptr, nullptr); }

void OpRecorder::observe(void *user, const char *op, int32_t phase,
                         const void *const *operands, const int64_t *bytes,
                         int32_t count) {
  auto *self = static_cast<OpRecorder *>(user);
  if (phase == 0)
    self->ops.push_back({op, {}, {}});
  ObservedOp &o = self->ops.back();
  auto &into = phase == 0 ? o.before : o.after;
  into.assign(size_t(count), {});
  for (int32_t i = 0; i < count; ++i) {
    if (!operands[i] || bytes[i] <= 0)
      continue;
    into[size_t(i)].resize(size_t(bytes[i]));
    if (moert_copy_to_host(self->ctx, into[size_t(i)].data(), operands[i],
                           bytes[i]) != MOERT_SUCCESS &&
        self->error.empty())
      self->error = moert_context_error(self->ctx);
  }
}

namespace {

/// The bytes a tensor holds at some point of the run: a view into the
/// caller's arguments or into a recorded operand.
struct Bytes {
  const unsigned char *data = nullptr;
  size_t size = 0;
};

int64_t key(const Operand &o) { return o.isArg ? o.index : -1 - o.index; }

/// "" when `seen` is `expected`, else where they first differ.
std::string firstDifference(const TensorDesc &t, int64_t T, Bytes expected,
                            const std::vector<unsigned char> &seen) {
  if (seen.size() != expected.size)
    return std::to_string(seen.size()) + " bytes where " +
           std::to_string(expected.size) + " were written";
  auto at = std::mismatch(seen.begin(), seen.end(), expected.data);
  if (at.first == seen.end())
    return "";
  int64_t element = int64_t(at.first - seen.begin()) /
                    std::max<int64_t>(dtypeBytes(t.dtype), 1);
  return "differs first at " +
         joinCoords(coordsOf(resolveShape(t.shape, T), element));
}

} // namespace

bool moerun::checkOps(const ModuleDescription &d, int64_t T,
                      const std::vector<ObservedOp> &observed,
                      const std::vector<const void *> &args, double tolerance,
                      const CheckOptions &options, OpCheckResult &result,
                      std::string &error,
                      const std::vector<const std::vector<ObservedOp> *> *group) {
  // What each tensor holds now, and who wrote it (-1: the caller).
  std::map<int64_t, std::pair<Bytes, int64_t>> holds;
  for (size_t a = 0; a < d.args.size(); ++a) {
    int64_t bytes = 0;
    if (d.args[a].role != Role::Output && args[a] &&
        byteSize(d.args[a], T, bytes))
      holds[int64_t(a)] = {
          {static_cast<const unsigned char *>(args[a]), size_t(bytes)}, -1};
  }
  auto writerName = [&](int64_t w) {
    return w < 0 ? std::string("the caller")
                 : "op #" + std::to_string(w) + " " + d.ops[size_t(w)].name;
  };
  auto failDataflow = [&](int64_t at, const std::string &operand,
                          const std::string &message) {
    if (result.failedOp >= 0)
      return;
    result.failedOp = at;
    result.kind = "dataflow";
    result.failedOperand = operand;
    result.message = message;
  };

  size_t next = 0;
  for (size_t i = 0; i < d.ops.size(); ++i) {
    const OpDesc &op = d.ops[i];
    const contract::OpSpec *spec = contract::findOp(op.name);
    std::vector<bool> written = writtenOperands(op);
    if (!spec) {
      // memref.copy moves bytes; anything else leaves what it wrote unknown.
      if (op.name == "memref.copy" && op.operands.size() == 2 &&
          holds.count(key(op.operands[0])))
        holds[key(op.operands[1])] = holds[key(op.operands[0])];
      else
        for (size_t k = 0; k < op.operands.size(); ++k)
          if (written[k])
            holds.erase(key(op.operands[k]));
      continue;
    }
    if (next >= observed.size() || observed[next].name != op.name) {
      error = "the run's ops do not follow the description: op #" +
              std::to_string(i) + " is " + op.name + ", the runtime ran " +
              (next < observed.size() ? observed[next].name : "nothing");
      return false;
    }
    const size_t seenIndex = next++;
    const ObservedOp &seen = observed[seenIndex];
    if (seen.before.size() != spec->operands.size() ||
        seen.after.size() != spec->operands.size()) {
      error = "op #" + std::to_string(i) + " was not recorded whole";
      return false;
    }

    // The op alone: its operands as arguments (inputs with what the op read,
    // outputs with what it wrote).
    ModuleDescription one;
    one.version = d.version;
    one.function = d.function;
    one.tokenCount = d.tokenCount;
    OpDesc single;
    single.name = op.name;
    single.loc = op.loc;
    single.attrs = op.attrs;
    // An in-place op is checked as its out-of-place twin (the same values):
    // the hidden it read and the output it wrote are separate here.
    for (auto &[name, value] : single.attrs.object)
      if (name == "inplace" && value.isBool())
        value.boolean = false;
    std::vector<const void *> initial, results;
    std::vector<std::pair<size_t, size_t>> writes; // (spec index, operand)
    bool allPresent = op.operands.size() == spec->operands.size();
    size_t described = 0;
    DType outType = DType::F32;
    bool anyOutput = false;
    for (size_t j = 0; j < spec->operands.size(); ++j) {
      if (spec->operands[j].optional && !allPresent)
        continue;
      size_t k = described++;
      const Operand &o = op.operands[k];
      TensorDesc t = d.tensor(o);
      bool output = spec->operands[j].role == contract::Role::Output;
      if (t.name.empty())
        t.name = spec->operands[j].name;
      // Data flow: what the op read is what its writer left.
      auto held = holds.find(key(o));
      if (!output && held != holds.end()) {
        std::string diff = firstDifference(t, T, held->second.first,
                                           seen.before[j]);
        if (!diff.empty())
          failDataflow(int64_t(i), t.name,
                       std::string("operand '") + spec->operands[j].name + "' (" +
                           operandString(d, o) + ") is not what " +
                           writerName(held->second.second) + " left in it: " +
                           diff + " (a buffer overwritten or left stale)");
      }
      if (written[k])
        writes.push_back({j, k});
      t.role = output ? Role::Output : Role::Input;
      single.operands.push_back({true, int64_t(one.args.size())});
      one.args.push_back(t);
      initial.push_back(output ? nullptr : seen.before[j].data());
      results.push_back(output ? seen.after[j].data() : nullptr);
      if (output && (!anyOutput ||
                     defaultTolerance(t.dtype) > defaultTolerance(outType)))
        outType = t.dtype;
      anyOutput |= output;
    }
    for (auto [j, k] : writes)
      holds[key(op.operands[k])] = {
          {seen.after[j].data(), seen.after[j].size()}, int64_t(i)};

    if (spec->collective) {
      // The sum over the ranks of what each read, op for op.
      std::vector<const std::vector<ObservedOp> *> self = {&observed};
      const auto &ranks = group ? *group : self;
      std::vector<const unsigned char *> inputs;
      for (size_t r = 0; r < ranks.size(); ++r) {
        const std::vector<ObservedOp> &other = *ranks[r];
        if (seenIndex >= other.size() || other[seenIndex].name != op.name ||
            other[seenIndex].before.empty() ||
            other[seenIndex].before[0].size() != seen.before[0].size()) {
          error = "op #" + std::to_string(i) + " " + op.name + ": rank " +
                  std::to_string(r) + " did not run it with the same sizes";
          return false;
        }
        inputs.push_back(other[seenIndex].before[0].data());
      }
      const TensorDesc &out = one.args.back();
      const DType dtype = out.dtype;
      const int64_t n = int64_t(seen.after[1].size()) /
                        std::max<int64_t>(dtypeBytes(dtype), 1);
      CheckResult check;
      for (int64_t e = 0; e < n; ++e) {
        double sum = 0, magnitude = 0;
        for (const unsigned char *in : inputs) {
          double v = loadElement(in, dtype, e);
          sum += v;
          magnitude += std::fabs(v);
        }
        double expected = roundToDType(sum, dtype);
        double got = loadElement(seen.after[1].data(), dtype, e);
        double err = got == expected ? 0
                     : std::isfinite(got) && magnitude > 0
                         ? std::fabs(got - expected) / magnitude
                         : std::numeric_limits<double>::infinity();
        ++check.elements;
        if (err > check.maxRelErr || (check.worstArg < 0 && e == 0)) {
          check.maxRelErr = std::max(check.maxRelErr, err);
          check.worstArg = int64_t(one.args.size()) - 1;
          check.worstCoords = coordsOf(resolveShape(out.shape, T), e);
          check.worstGot = got;
          check.worstExpected = expected;
        }
      }
      double tol = tolerance >= 0 ? tolerance : defaultTolerance(dtype);
      ++result.checked;
      result.worstRatio = std::max(result.worstRatio, check.maxRelErr / tol);
      if (check.maxRelErr > tol && result.failedOp < 0) {
        result.failedOp = int64_t(i);
        result.kind = "numerics";
        result.failure = check;
        result.tolerance = tol;
        result.failedOperand = out.name;
        char text[256];
        std::snprintf(text, sizeof text,
                      "error %.3g (relative to the summed magnitudes) exceeds "
                      "%.3g at '%s'%s (got %.6g, the sum over %zu rank(s) "
                      "%.6g)",
                      check.maxRelErr, tol, out.name.c_str(),
                      joinCoords(check.worstCoords).c_str(), check.worstGot,
                      inputs.size(), check.worstExpected);
        result.message = text;
      }
      continue;
    }

    one.ops.push_back(single);
    std::vector<TypedOp> typed;
    if (!analyzeOps(one, T, typed, error))
      return false;
    CheckResult check;
    CheckOptions oneOp = options;
    oneOp.unorderedSlots = true;
    if (!runReference(one, typed, T, initial, results, oneOp, check, error))
      return false;
    // The one-op tolerance of its output dtype, with the fp8 term for an
    // expert op with fp8 weights (Reference.h).
    double tol = tolerance >= 0 ? tolerance
                                : defaultTolerance(outType, 1, typed[0].fp8);
    ++result.checked;
    result.worstRatio = std::max(result.worstRatio, check.maxRelErr / tol);
    if (check.maxRelErr > tol && result.failedOp < 0) {
      result.failedOp = int64_t(i);
      result.kind = "numerics";
      result.failure = check;
      result.tolerance = tol;
      result.failedOperand = one.args[size_t(check.worstArg)].name;
      char text[256];
      std::snprintf(text, sizeof text,
                    "max_rel_err %.3g exceeds the one-op tolerance %.3g at "
                    "'%s'%s (got %.6g, reference %.6g on the op's own inputs)",
                    check.maxRelErr, tol, result.failedOperand.c_str(),
                    joinCoords(check.worstCoords).c_str(), check.worstGot,
                    check.worstExpected);
      result.message = text;
    }
  }
  if (next != observed.size()) {
    error = "the runtime ran " + std::to_string(observed.size()) +
            " ops, the description lists " + std::to_string(next);
    return false;
  }
  // Every output argument ends as its last writer left it.
  for (size_t a = 0; a < d.args.size(); ++a) {
    auto held = holds.find(int64_t(a));
    if (d.args[a].role != Role::Output || held == holds.end() || !args[a])
      continue;
    const Bytes &last = held->second.first;
    std::vector<unsigned char> now(
        static_cast<const unsigned char *>(args[a]),
        static_cast<const unsigned char *>(args[a]) + last.size);
    std::string diff = firstDifference(d.args[a], T, last, now);
    if (!diff.empty())
      failDataflow(int64_t(d.ops.size()), d.args[a].name,
                   "the output '" + d.args[a].name + "' is not what " +
                       writerName(held->second.second) +
                       " left in it: " + diff +
                       " (written after its last op)");
  }
  return true;
}
