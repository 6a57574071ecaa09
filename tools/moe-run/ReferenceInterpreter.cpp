//===- ReferenceInterpreter.cpp - The reference's per-token interpreter --===//
#include "ReferenceInterpreter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace moerun;
using namespace moerun::detail;

namespace {
/// Near-tie combinations enumerated at one top-k (per group selection and per
/// expert selection); beyond it only the reference's own choice is kept.
constexpr int64_t kMaxCombinations = 16;

/// Relative size of one ulp of a dtype (the spacing at 1).
double ulpOf(DType dtype) {
  switch (dtype) {
  case DType::BF16:
    return 0x1p-7;
  case DType::F16:
    return 0x1p-10;
  default:
    return 0x1p-23;
  }
}

double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += a[i] * b[i];
  return s;
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

/// Candidates ranked best first; returns the admissible choices of the best
/// `count` (the ranking's own first), each as a list of candidates. A choice
/// differs from the primary only among near-tied candidates: a selected `a`
/// and an unselected `b` are near-tied when value[a] - value[b] <= unc[a] +
/// unc[b].
std::vector<std::vector<int64_t>> admissibleChoices(
    const std::vector<int64_t> &ranking, const std::vector<double> &value,
    const std::vector<double> &unc, int64_t count, bool &truncated) {
  std::vector<int64_t> primary(ranking.begin(), ranking.begin() + count);
  if (int64_t(ranking.size()) == count)
    return {primary};
  double maxUnselected = -std::numeric_limits<double>::infinity();
  for (size_t r = size_t(count); r < ranking.size(); ++r)
    maxUnselected = std::max(maxUnselected, value[size_t(ranking[r])] +
                                                unc[size_t(ranking[r])]);
  double minSelected = std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < count; ++r)
    minSelected = std::min(minSelected,
                           value[size_t(ranking[r])] - unc[size_t(ranking[r])]);
  std::vector<int64_t> fixed, pool;
  for (int64_t r = 0; r < count; ++r) {
    int64_t c = ranking[size_t(r)];
    (value[size_t(c)] - unc[size_t(c)] <= maxUnselected ? pool : fixed)
        .push_back(c);
  }
  int64_t k = int64_t(pool.size());
  if (k == 0)
    return {primary};
  for (size_t r = size_t(count); r < ranking.size(); ++r) {
    int64_t c = ranking[r];
    if (value[size_t(c)] + unc[size_t(c)] >= minSelected)
      pool.push_back(c);
  }
  int64_t m = int64_t(pool.size());
  // C(m, k), capped.
  double combinations = 1;
  for (int64_t i = 0; i < k; ++i)
    combinations = combinations * double(m - i) / double(i + 1);
  if (combinations > double(kMaxCombinations)) {
    truncated = true;
    return {primary};
  }
  std::vector<std::vector<int64_t>> choices;
  std::vector<int64_t> pick(static_cast<size_t>(k));
  std::iota(pick.begin(), pick.end(), 0);
  while (true) {
    std::vector<int64_t> choice(fixed);
    for (int64_t p : pick)
      choice.push_back(pool[size_t(p)]);
    choices.push_back(std::move(choice));
    int64_t i = k - 1;
    while (i >= 0 && pick[size_t(i)] == m - k + i)
      --i;
    if (i < 0)
      break;
    ++pick[size_t(i)];
    for (int64_t j = i + 1; j < k; ++j)
      pick[size_t(j)] = pick[size_t(j - 1)] + 1;
  }
  return choices;
}
} // namespace

namespace moerun {
namespace detail {

void loadRow(const void *data, DType dtype, int64_t offset, int64_t n,
             double *out) {
  switch (dtype) {
  case DType::BF16: {
    const uint16_t *p = static_cast<const uint16_t *>(data) + offset;
    for (int64_t i = 0; i < n; ++i)
      out[i] = bf16ToDouble(p[i]);
    return;
  }
  case DType::F16: {
    const uint16_t *p = static_cast<const uint16_t *>(data) + offset;
    for (int64_t i = 0; i < n; ++i)
      out[i] = f16ToDouble(p[i]);
    return;
  }
  case DType::F32: {
    const float *p = static_cast<const float *>(data) + offset;
    for (int64_t i = 0; i < n; ++i)
      out[i] = p[i];
    return;
  }
  case DType::I32: {
    const int32_t *p = static_cast<const int32_t *>(data) + offset;
    for (int64_t i = 0; i < n; ++i)
      out[i] = p[i];
    return;
  }
  case DType::F8E4M3: {
    const uint8_t *p = static_cast<const uint8_t *>(data) + offset;
    for (int64_t i = 0; i < n; ++i)
      out[i] = e4m3ToDouble(p[i]);
    return;
  }
  }
}

void quantizeFp8Groups(const double *v, int64_t n, double *out,
                       float *scales) {
  // fp32 throughout, as the contract has it: the value as a float, the
  // group's amax, s = fmaxf(amax, 1e-10f) / 448.0f and a / s are IEEE fp32
  // divisions (float operands, float result; never a reciprocal), then one
  // rounding to e4m3 (nearest even, saturating).
  for (int64_t g0 = 0; g0 < n; g0 += kFp8Block) {
    int64_t g1 = std::min(n, g0 + kFp8Block);
    float amax = 0;
    for (int64_t i = g0; i < g1; ++i)
      amax = std::max(amax, std::fabs(float(v[i]))); // NaN: skipped (fmaxf)
    const float s = std::max(amax, 1e-10f) / 448.0f;
    for (int64_t i = g0; i < g1; ++i) {
      const float a = float(v[i]);
      const float quotient = a / s;
      // code * s is exact in double (4 and 24 significant bits).
      out[i] = e4m3ToDouble(doubleToE4M3(double(quotient))) * double(s);
    }
    if (scales)
      scales[g0 / kFp8Block] = s;
  }
}

bool Interpreter::classify(std::string &error) {
  numSlots = d.args.size() + d.buffers.size();
  tokenMajor.assign(numSlots, -1);
  auto mark = [&](const TypedOp &op, size_t operand, int kind) {
    size_t s = slotOf(op.operands[operand]);
    if (tokenMajor[s] != -1 && tokenMajor[s] != kind) {
      error = "op " + op.name + ": " + operandString(d, op.operands[operand]) +
              " is used both per token and as a whole (weight-like) buffer";
      return false;
    }
    tokenMajor[s] = kind;
    return true;
  };
  for (const TypedOp &op : ops) {
    std::vector<size_t> perToken, global;
    switch (op.kind) {
    case OpKind::Gate:
      perToken = {0, 2};
      global = {1};
      break;
    case OpKind::TopK:
      perToken = {0, op.operands.size() - 2, op.operands.size() - 1};
      if (op.hasBias)
        global = {1};
      break;
    case OpKind::RoutedExperts:
    case OpKind::SharedExperts:
      perToken = {size_t(op.hidden), size_t(op.output)};
      if (op.kind == OpKind::RoutedExperts)
        perToken.insert(perToken.end(), {1, 2}); // topk_ids, topk_weights
      for (int w : {op.w13, op.w2, op.w13Scale, op.w2Scale})
        if (w >= 0)
          global.push_back(size_t(w));
      break;
    case OpKind::Add:
      perToken = {0, 1, 2};
      break;
    case OpKind::AllReduce:
      perToken = {0, 1};
      break;
    case OpKind::Copy:
      break;
    }
    for (size_t i : perToken)
      if (!mark(op, i, 1))
        return false;
    for (size_t i : global)
      if (!mark(op, i, 0))
        return false;
  }
  // A copy's operands are alike; propagate to a fixpoint.
  for (bool changed = true; changed;) {
    changed = false;
    for (const TypedOp &op : ops) {
      if (op.kind != OpKind::Copy)
        continue;
      size_t a = slotOf(op.operands[0]), b = slotOf(op.operands[1]);
      int kind = std::max(tokenMajor[a], tokenMajor[b]);
      if (kind == -1)
        continue;
      for (size_t i = 0; i < 2; ++i) {
        if (tokenMajor[i ? b : a] == kind)
          continue;
        if (!mark(op, i, kind)) // the other kind: a conflict
          return false;
        changed = true;
      }
    }
  }
  rowLength.assign(numSlots, 0);
  rowOffset.assign(numSlots, 0);
  for (size_t s = 0; s < numSlots; ++s) {
    if (tokenMajor[s] == -1)
      tokenMajor[s] = 0; // never used per token: a whole buffer
    if (tokenMajor[s] != 1)
      continue;
    const TensorDesc &t = tensorOf(s);
    std::vector<int64_t> shape = resolveShape(t.shape, T);
    if (shape.empty() || shape[0] != T) {
      error =
          (s < d.args.size() ? "arg " + std::to_string(s)
                             : "buffer " + std::to_string(s - d.args.size())) +
          " is used per token but its first dimension is not the token "
          "count";
      return false;
    }
    std::vector<int64_t> row(shape.begin() + 1, shape.end());
    if (!elementCount(row, T, rowLength[s])) {
      error = "a row size overflows";
      return false;
    }
    rowOffset[s] = stateSize;
    stateSize += rowLength[s];
  }
  return true;
}

bool Interpreter::prepare(std::string &error) {
  if (!classify(error))
    return false;
  // Global slots: the argument's bytes, or poison for buffers; memref.copy
  // between global slots makes a new version, so each op sees the bytes
  // current at its position.
  std::vector<const void *> current(numSlots, nullptr);
  for (size_t s = 0; s < numSlots; ++s) {
    if (tokenMajor[s] != 0)
      continue;
    if (s < d.args.size() && d.args[s].role != Role::Output) {
      current[s] = initial[s];
      continue;
    }
    int64_t bytes;
    if (!byteSize(tensorOf(s), T, bytes)) {
      error = "a buffer size overflows";
      return false;
    }
    owned.push_back(
        std::make_unique<std::vector<unsigned char>>(size_t(bytes), 0xff));
    current[s] = owned.back()->data();
  }
  std::vector<bool> written(numSlots, false);
  globalData.assign(ops.size(), {});
  inputComputed.assign(ops.size(), false);
  layersBefore.assign(ops.size(), 0);
  for (size_t i = 0; i < ops.size(); ++i) {
    const TypedOp &op = ops[i];
    inputComputed[i] = written[slotOf(op.operands[0])];
    layersBefore[i] =
        i ? layersBefore[i - 1] + (ops[i - 1].kind == OpKind::TopK) : 0;
    globalData[i].assign(op.operands.size(), nullptr);
    for (size_t j = 0; j < op.operands.size(); ++j)
      globalData[i][j] = current[slotOf(op.operands[j])];
    if (op.kind == OpKind::Copy && tokenMajor[slotOf(op.operands[0])] == 0) {
      size_t src = slotOf(op.operands[0]), dst = slotOf(op.operands[1]);
      int64_t bytes;
      byteSize(tensorOf(dst), T, bytes);
      auto copy = std::make_unique<std::vector<unsigned char>>(
          static_cast<size_t>(bytes));
      if (bytes)
        std::memcpy(copy->data(), current[src], size_t(bytes));
      current[dst] = copy->data();
      owned.push_back(std::move(copy));
    }
    std::vector<bool> w = writtenOperands(d.ops[i]);
    for (size_t j = 0; j < w.size(); ++j)
      if (w[j])
        written[slotOf(op.operands[j])] = true;
  }
  finalGlobal = current;
  return true;
}

void Interpreter::applyTopK(int64_t t, const TypedOp &op, const Variant &v,
                            std::vector<Variant> &out, bool &truncated) const {
  const int64_t E = op.E, K = op.K;
  size_t logitsSlot = slotOf(op.operands[0]);
  const double *logits = v.values.data() + rowOffset[logitsSlot];
  const double *delta = v.delta.data() + rowOffset[logitsSlot];
  std::vector<double> bias(static_cast<size_t>(E), 0.0);
  if (op.hasBias)
    loadRow(globalData[size_t(&op - ops.data())][1], DType::F32, 0, E,
            bias.data());

  // Scores, selection scores, and their uncertainty.
  const size_t numExperts = static_cast<size_t>(E);
  std::vector<double> s(numExperts), q(numExperts), sigma(numExperts);
  double maxDelta = 0;
  for (int64_t e = 0; e < E; ++e)
    maxDelta = std::max(maxDelta, delta[e]);
  if (op.scoring == Scoring::Softmax) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t e = 0; e < E; ++e)
      m = std::max(m, logits[e]);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e)
      sum += (s[size_t(e)] = std::exp(logits[e] - m));
    for (int64_t e = 0; e < E; ++e) {
      s[size_t(e)] /= sum;
      // ds_e = s_e (dl_e - sum_j s_j dl_j)
      sigma[size_t(e)] = s[size_t(e)] * (delta[e] + maxDelta);
    }
  } else {
    for (int64_t e = 0; e < E; ++e) {
      s[size_t(e)] = 1.0 / (1.0 + std::exp(-logits[e]));
      sigma[size_t(e)] = s[size_t(e)] * (1 - s[size_t(e)]) * delta[e];
    }
  }
  for (int64_t e = 0; e < E; ++e) {
    q[size_t(e)] = s[size_t(e)] + bias[size_t(e)];
    // fp32 evaluation of the score itself.
    sigma[size_t(e)] +=
        4e-7 * (std::fabs(s[size_t(e)]) + std::fabs(bias[size_t(e)])) + 1e-12;
  }

  auto rankBy = [](const std::vector<int64_t> &candidates,
                   const std::vector<double> &value) {
    std::vector<int64_t> r(candidates);
    std::stable_sort(r.begin(), r.end(), [&](int64_t a, int64_t b) {
      return value[size_t(a)] > value[size_t(b)] ||
             (value[size_t(a)] == value[size_t(b)] && a < b);
    });
    return r;
  };

  // Group selection.
  std::vector<std::vector<int64_t>> groupChoices;
  const int64_t G = op.nGroup, perGroup = E / G;
  std::vector<double> groupScore, groupUnc;
  if (G > 1) {
    const size_t numGroups = static_cast<size_t>(G);
    groupScore.assign(numGroups, 0);
    groupUnc.assign(numGroups, 0);
    for (int64_t g = 0; g < G; ++g) {
      std::vector<int64_t> members(static_cast<size_t>(perGroup));
      std::iota(members.begin(), members.end(), g * perGroup);
      std::vector<int64_t> ranked = rankBy(members, q);
      int64_t take =
          op.scoring == Scoring::Sigmoid ? std::min<int64_t>(2, perGroup) : 1;
      double score = 0, unc = 0;
      for (int64_t i = 0; i < take; ++i) {
        score += q[size_t(ranked[size_t(i)])];
        unc += sigma[size_t(ranked[size_t(i)])];
      }
      // The member just below the taken ones may swap in.
      if (take < perGroup)
        unc += sigma[size_t(ranked[size_t(take)])];
      groupScore[size_t(g)] = score;
      groupUnc[size_t(g)] = unc;
    }
    std::vector<int64_t> all(numGroups);
    std::iota(all.begin(), all.end(), 0);
    groupChoices = admissibleChoices(rankBy(all, groupScore), groupScore,
                                     groupUnc, op.topkGroup, truncated);
  } else {
    groupChoices = {{0}};
  }

  // Expert selection within each admissible group choice.
  std::vector<std::vector<int64_t>> expertChoices;
  if (routingHint) {
    // The backend's experts, if a ranking within the uncertainties picks
    // them: their groups beat the others' (as far as topk_group needs), and
    // within the eligible experts they beat the rest.
    std::vector<int64_t> hint(routingHint + t * K, routingHint + (t + 1) * K);
    std::vector<bool> chosen(numExperts, false), groupUsed(size_t(G), false);
    bool valid = true;
    for (int64_t e : hint) {
      valid &= e >= 0 && e < E && !chosen[size_t(e)];
      if (valid) {
        chosen[size_t(e)] = true;
        groupUsed[size_t(e / perGroup)] = true;
      }
    }
    auto beats = [](const std::vector<bool> &in, const std::vector<double> &x,
                    const std::vector<double> &u, const std::vector<bool> &among) {
      double low = std::numeric_limits<double>::infinity();
      double high = -low;
      for (size_t i = 0; i < in.size(); ++i)
        if (!among[i])
          continue;
        else if (in[i])
          low = std::min(low, x[i] + u[i]);
        else
          high = std::max(high, x[i] - u[i]);
      return low >= high;
    };
    std::vector<bool> eligible(numExperts, true);
    if (valid && G > 1) {
      int64_t used = std::count(groupUsed.begin(), groupUsed.end(), true);
      valid = used <= op.topkGroup;
      // The other groups taken are the best of the rest.
      std::vector<int64_t> rest;
      for (int64_t g = 0; g < G; ++g)
        if (!groupUsed[size_t(g)])
          rest.push_back(g);
      std::stable_sort(rest.begin(), rest.end(), [&](int64_t a, int64_t b) {
        return groupScore[size_t(a)] > groupScore[size_t(b)];
      });
      for (int64_t i = 0; valid && i < op.topkGroup - used; ++i)
        groupUsed[size_t(rest[size_t(i)])] = true;
      valid = valid && beats(groupUsed, groupScore, groupUnc,
                             std::vector<bool>(size_t(G), true));
      for (int64_t e = 0; e < E; ++e)
        eligible[size_t(e)] = groupUsed[size_t(e / perGroup)];
    }
    if (valid && beats(chosen, q, sigma, eligible)) {
      groupChoices.clear();
      expertChoices.push_back(rankBy(hint, q));
    }
  }
  for (const auto &groups : groupChoices) {
    std::vector<int64_t> selectable;
    for (int64_t g : groups)
      for (int64_t e = g * perGroup; e < (g + 1) * perGroup; ++e)
        selectable.push_back(e);
    if (G <= 1) {
      selectable.resize(static_cast<size_t>(E));
      std::iota(selectable.begin(), selectable.end(), 0);
    }
    for (auto &choice :
         admissibleChoices(rankBy(selectable, q), q, sigma, K, truncated)) {
      std::vector<int64_t> ordered = rankBy(choice, q);
      if (std::find(expertChoices.begin(), expertChoices.end(), ordered) ==
          expertChoices.end())
        expertChoices.push_back(std::move(ordered));
    }
  }

  size_t idsSlot = slotOf(op.operands[op.operands.size() - 2]);
  size_t weightsSlot = slotOf(op.operands[op.operands.size() - 1]);
  DType idsType = tensorOf(idsSlot).dtype,
        weightsType = tensorOf(weightsSlot).dtype;
  double scale = double(float(op.routedScalingFactor));
  // log s_e of a sigmoid score, without overflow or underflow.
  auto logSigmoid = [](double l) {
    return l >= 0 ? -std::log1p(std::exp(-l)) : l - std::log1p(std::exp(l));
  };
  for (const auto &experts : expertChoices) {
    Variant next = v;
    double sum = 0;
    for (int64_t e : experts)
      sum += s[size_t(e)];
    // Renormalized sigmoid weights through log s: exact even where every
    // chosen score underflows (logits below about -745).
    bool logDomain = op.renormalize && op.scoring == Scoring::Sigmoid;
    double maxLog = -std::numeric_limits<double>::infinity(), logSum = 0;
    if (logDomain) {
      for (int64_t e : experts)
        maxLog = std::max(maxLog, logSigmoid(logits[e]));
      for (int64_t e : experts)
        logSum += std::exp(logSigmoid(logits[e]) - maxLog);
    }
    for (int64_t j = 0; j < K; ++j) {
      int64_t e = experts[size_t(j)];
      double w = s[size_t(e)];
      if (logDomain)
        w = std::exp(logSigmoid(logits[e]) - maxLog) / logSum;
      else if (op.renormalize)
        w /= sum;
      w *= scale;
      next.values[size_t(rowOffset[idsSlot] + j)] =
          roundToDType(double(e), idsType);
      next.values[size_t(rowOffset[weightsSlot] + j)] =
          roundToDType(w, weightsType);
      next.delta[size_t(rowOffset[idsSlot] + j)] = 0;
      next.delta[size_t(rowOffset[weightsSlot] + j)] = 0;
    }
    out.push_back(std::move(next));
  }
}

bool Interpreter::runToken(int64_t t, std::vector<Variant> &variants,
                           bool &truncated, std::string &error) const {
  Variant start;
  start.values.assign(size_t(stateSize), kNaN);
  start.delta.assign(size_t(stateSize), 0.0);
  for (size_t s = 0; s < d.args.size(); ++s)
    if (tokenMajor[s] == 1 && d.args[s].role != Role::Output)
      loadRow(initial[s], d.args[s].dtype, t * rowLength[s], rowLength[s],
              start.values.data() + rowOffset[s]);
  variants.clear();
  variants.push_back(std::move(start));

  std::vector<double> row, act, acc, xq;
  for (size_t i = 0; i < ops.size(); ++i) {
    const TypedOp &op = ops[i];
    auto slot = [&](size_t operand) { return slotOf(op.operands[operand]); };
    auto type = [&](size_t operand) { return tensorOf(slot(operand)).dtype; };
    std::vector<Variant> next;
    for (Variant &v : variants) {
      auto rowOf = [&](size_t operand) {
        return v.values.data() + rowOffset[slot(operand)];
      };
      switch (op.kind) {
      case OpKind::Gate: {
        const double *x = rowOf(0);
        double *logits = rowOf(2);
        double *delta = v.delta.data() + rowOffset[slot(2)];
        row.resize(static_cast<size_t>(op.H));
        // A computed hidden state may differ from the module's by about an
        // ulp per element, growing with the layers behind it.
        double hiddenUlp = 0.0;
        if (inputComputed[i]) {
          hiddenUlp = ulpOf(type(0));
          for (int64_t l = 1; l < layersBefore[i]; ++l)
            hiddenUlp *= kLayerGrowth;
        }
        for (int64_t e = 0; e < op.E; ++e) {
          loadRow(globalData[i][1], type(1), e * op.H, op.H, row.data());
          double sum = 0, abs = 0, sq = 0;
          for (int64_t h = 0; h < op.H; ++h) {
            double p = x[h] * row[size_t(h)];
            sum += p;
            abs += std::fabs(p);
            sq += p * p;
          }
          logits[e] = roundToDType(sum, type(2));
          // fp32 accumulation, plus (after an earlier op) an ulp of the
          // module's own rounding in every hidden element.
          delta[e] = 1e-5 * abs + hiddenUlp * std::sqrt(sq);
        }
        break;
      }
      case OpKind::TopK:
        applyTopK(t, op, v, next, truncated);
        continue; // pushed its own variants
      case OpKind::RoutedExperts:
      case OpKind::SharedExperts: {
        bool routed = op.kind == OpKind::RoutedExperts;
        const double *x = rowOf(size_t(op.hidden));
        int64_t H = op.H, I = op.I, K = routed ? op.K : 1;
        const void *w13 = globalData[i][size_t(op.w13)];
        const void *w2 = globalData[i][size_t(op.w2)];
        DType wt = type(size_t(op.w13));
        DType outType = type(size_t(op.output));
        acc.assign(size_t(H), 0.0);
        act.resize(static_cast<size_t>(I));
        row.resize(size_t(std::max(H, I)));
        // fp8: the hidden quantized once (rule 1), as dequantized values.
        if (op.fp8) {
          xq.resize(size_t(H));
          quantizeFp8Groups(x, H, xq.data());
          x = xq.data();
        }
        // A weight row, dequantized (fp8: code * its block's scale, exact).
        const int64_t B = kFp8Block;
        auto weightRow = [&](const void *w, int scalesOperand, int64_t rows,
                             int64_t cols, int64_t e, int64_t n) {
          loadRow(w, wt, (e * rows + n) * cols, cols, row.data());
          if (!op.fp8)
            return;
          const float *scale =
              static_cast<const float *>(globalData[i][size_t(scalesOperand)]);
          int64_t rowBlocks = (rows + B - 1) / B;
          int64_t colBlocks = (cols + B - 1) / B;
          const float *s = scale + (e * rowBlocks + n / B) * colBlocks;
          for (int64_t k = 0; k < cols; ++k)
            row[size_t(k)] *= double(s[k / B]);
        };
        // The fp8 combine (rule 4): partials rounded to the output's bf16,
        // then sum_j fp32(topk_weight * partial) in slot order, each
        // product and sum rounded to fp32 (double then float: exact
        // products, correctly rounded sums).
        for (int64_t j = 0; j < K; ++j) {
          int64_t e = 0;
          double weight = 1.0;
          if (routed) {
            double id = rowOf(1)[j];
            weight = rowOf(2)[j];
            if (!(id >= 0 && id < double(op.E)) || id != std::floor(id)) {
              error = "op " + op.name + ": topk_ids[" + std::to_string(t) +
                      ", " + std::to_string(j) + "] = " + jsonNumber(id) +
                      " is not an expert in [0, " + std::to_string(op.E) + ")";
              return false;
            }
            e = int64_t(id);
          }
          for (int64_t k = 0; k < I; ++k) {
            weightRow(w13, op.w13Scale, 2 * I, H, e, k);
            double g = dot(x, row.data(), H);
            weightRow(w13, op.w13Scale, 2 * I, H, e, I + k);
            double u = dot(x, row.data(), H);
            act[size_t(k)] = silu(g) * u;
          }
          if (op.fp8) // rule 3
            quantizeFp8Groups(act.data(), I, act.data());
          for (int64_t h = 0; h < H; ++h) {
            weightRow(w2, op.w2Scale, H, I, e, h);
            double partial = dot(act.data(), row.data(), I);
            if (!op.fp8) {
              acc[size_t(h)] += weight * partial;
            } else if (!routed) {
              acc[size_t(h)] = partial;
            } else {
              double product =
                  double(float(weight * roundToDType(partial, outType)));
              acc[size_t(h)] = double(float(acc[size_t(h)] + product));
            }
          }
        }
        double *outRow = rowOf(size_t(op.output));
        for (int64_t h = 0; h < H; ++h)
          outRow[h] = roundToDType(acc[size_t(h)], outType);
        break;
      }
      case OpKind::Add: {
        double scale = double(float(op.scale));
        const double *lhs = rowOf(0), *rhs = rowOf(1);
        double *outRow = rowOf(2);
        for (int64_t h = 0; h < op.H; ++h)
          outRow[h] = roundToDType(scale * lhs[h] + rhs[h], type(2));
        break;
      }
      case OpKind::AllReduce: {
        // The reference runs one rank: a group of one, whose sum is the
        // input (moe-run checks a group's sum op by op, OpCheck.h).
        const double *in = rowOf(0);
        double *outRow = rowOf(1);
        for (int64_t h = 0; h < op.H; ++h)
          outRow[h] = roundToDType(in[h], type(1));
        break;
      }
      case OpKind::Copy: {
        if (tokenMajor[slot(0)] != 1)
          break; // done in prepare()
        int64_t n = rowLength[slot(0)];
        const double *src = rowOf(0);
        double *dst = rowOf(1);
        if (src != dst)
          for (int64_t k = 0; k < n; ++k)
            dst[k] = roundToDType(src[k], type(1));
        break;
      }
      }
      next.push_back(std::move(v));
    }
    if (int64_t(next.size()) > options.maxRoutingsPerToken) {
      next.resize(static_cast<size_t>(options.maxRoutingsPerToken));
      truncated = true;
    }
    variants = std::move(next);
  }
  return true;
}

} // namespace detail
} // namespace moerun
