//===- Reference.cpp - The independent reference of --check ---------------===//

#include "Reference.h"
#include "ReferenceInterpreter.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <tuple>

using namespace moerun;
using namespace moerun::detail;

double moerun::defaultTolerance(DType dtype, int64_t layers, bool fp8) {
  double base = 0;
  switch (dtype) {
  case DType::F8E4M3: // storage of weights only, never an op's output
    base = 0;
    break;
  case DType::BF16:
    base = 5e-2;
    break;
  case DType::F16:
    base = 6e-3;
    break;
  case DType::F32:
    base = 1e-4;
    break;
  case DType::I32:
    base = 0;
    break;
  }
  if (fp8)
    base += kFp8ActCodeTolerance;
  for (int64_t l = 1; l < layers; ++l)
    base *= kLayerGrowth;
  return base;
}

bool moerun::hasFp8Experts(const std::vector<TypedOp> &ops) {
  for (const TypedOp &op : ops)
    if (op.fp8)
      return true;
  return false;
}

int64_t moerun::countLayers(const std::vector<TypedOp> &ops) {
  int64_t n = 0;
  for (const TypedOp &op : ops)
    n += op.kind == OpKind::TopK;
  return std::max<int64_t>(n, 1);
}

namespace {

/// The smallest normal of a dtype: below it a dtype's spacing is absolute
/// (subnormals), so errors there are relative to it.
double smallestNormal(DType dtype) {
  switch (dtype) {
  case DType::F16:
    return 6.103515625e-05; // 2^-14
  case DType::BF16:
  case DType::F32:
    return 1.1754943508222875e-38; // 2^-126
  default:
    return 0;
  }
}

double relativeError(double got, double expected, double floor,
                     DType dtype) {
  // Where the exact value is beyond the dtype's range (or undefined: an
  // input was), any overflow agrees with it: an fp32 inf * 0 inside the op
  // is NaN where the reference's wider range still gave inf.
  if (isFloat(dtype) && !std::isfinite(roundToDType(expected, dtype)))
    return std::isfinite(got) ? std::numeric_limits<double>::infinity() : 0;
  if (got == expected)
    return 0;
  double denom = std::max(std::fabs(expected), floor);
  if (!(denom > 0) || !std::isfinite(got))
    return std::numeric_limits<double>::infinity();
  return std::fabs(got - expected) / denom;
}

} // namespace

bool moerun::runReference(const ModuleDescription &d,
                          const std::vector<TypedOp> &ops, int64_t T,
                          const std::vector<const void *> &initial,
                          const std::vector<const void *> &results,
                          const CheckOptions &options, CheckResult &result,
                          std::string &error,
                          std::vector<std::vector<double>> *primary) {
  result = CheckResult();
  Interpreter interp(d, ops, T, initial, options);
  if (!interp.prepare(error))
    return false;
  if (options.unorderedSlots && ops.size() == 1 &&
      ops[0].kind == OpKind::TopK) {
    const Operand &ids = ops[0].operands[ops[0].operands.size() - 2];
    if (ids.isArg && results[size_t(ids.index)] &&
        d.args[size_t(ids.index)].dtype == DType::I32)
      interp.routingHint =
          static_cast<const int32_t *>(results[size_t(ids.index)]);
  }

  // The token-major outputs, and where their rows sit in the state.
  std::vector<size_t> outputs;
  int64_t outputRow = 0;
  for (size_t a = 0; a < d.args.size(); ++a)
    if (d.args[a].role == Role::Output && interp.tokenMajor[a] == 1) {
      outputs.push_back(a);
      outputRow += interp.rowLength[a];
    }

  // Run every token (in parallel: tokens are independent), keeping each
  // admissible routing's output rows.
  std::vector<std::vector<double>> tokenRows(static_cast<size_t>(T));
  std::vector<unsigned char> tokenTruncated(size_t(T), 0);
  std::mutex errorMutex;
  std::string firstError;
  std::atomic<int64_t> nextToken{0};
  std::atomic<bool> failed{false};
  auto worker = [&] {
    std::vector<Variant> variants;
    while (!failed) {
      int64_t t = nextToken++;
      if (t >= T)
        return;
      bool truncated = false;
      std::string err;
      if (!interp.runToken(t, variants, truncated, err)) {
        std::lock_guard<std::mutex> lock(errorMutex);
        if (!failed.exchange(true))
          firstError = err;
        return;
      }
      tokenTruncated[size_t(t)] = truncated;
      auto &rows = tokenRows[size_t(t)];
      rows.reserve(variants.size() * size_t(outputRow));
      for (const Variant &v : variants)
        for (size_t a : outputs)
          rows.insert(rows.end(), v.values.begin() + interp.rowOffset[a],
                      v.values.begin() + interp.rowOffset[a] +
                          interp.rowLength[a]);
    }
  };
  unsigned threads = options.threads
                         ? options.threads
                         : std::max(1u, std::thread::hardware_concurrency());
  threads = unsigned(std::min<int64_t>(threads, std::max<int64_t>(T, 1)));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i)
      pool.emplace_back(worker);
    for (auto &th : pool)
      th.join();
  }
  if (failed) {
    error = firstError;
    return false;
  }

  // Per token, the rms of each output's row under the reference's own
  // routing: a token's roundings scale with its own magnitude, and after a
  // few layers the magnitudes of tokens differ by orders.
  std::vector<double> floors(size_t(T) * outputs.size());
  for (int64_t t = 0; t < T; ++t) {
    int64_t off = 0;
    for (size_t k = 0; k < outputs.size(); ++k) {
      int64_t n = interp.rowLength[outputs[k]];
      double sq = 0;
      int64_t count = 0;
      for (int64_t i = 0; i < n; ++i) {
        double r = tokenRows[size_t(t)][size_t(off + i)];
        if (std::isfinite(r)) {
          sq += r * r;
          ++count;
        }
      }
      floors[size_t(t) * outputs.size() + k] = std::max(
          options.rmsFloor * (count ? std::sqrt(sq / double(count)) : 0),
          smallestNormal(d.args[outputs[k]].dtype));
      off += n;
    }
  }
  if (primary) {
    primary->assign(d.args.size(), {});
    int64_t off = 0;
    for (size_t k = 0; k < outputs.size(); ++k) {
      int64_t n = interp.rowLength[outputs[k]];
      auto &dst = (*primary)[outputs[k]];
      for (int64_t t = 0; t < T; ++t)
        dst.insert(dst.end(), tokenRows[size_t(t)].begin() + off,
                   tokenRows[size_t(t)].begin() + off + n);
      off += n;
    }
  }

  auto noteWorst = [&](double err, size_t arg, int64_t flat, double got,
                       double expected) {
    if (err > result.maxRelErr || result.worstArg < 0) {
      result.maxRelErr = err;
      result.worstArg = int64_t(arg);
      result.worstCoords =
          coordsOf(resolveShape(d.args[arg].shape, T), flat);
      result.worstGot = got;
      result.worstExpected = expected;
    }
  };

  // A lone topk compared by (expert id, weight) pairs: each row's slots
  // sorted by id (ids first, then weights, K each).
  bool unordered = options.unorderedSlots && ops.size() == 1 &&
                   ops[0].kind == OpKind::TopK && outputs.size() == 2;
  auto sortSlots = [&](double *row) {
    int64_t K = interp.rowLength[outputs[0]];
    std::vector<std::pair<double, double>> pairs(static_cast<size_t>(K));
    for (int64_t j = 0; j < K; ++j)
      pairs[size_t(j)] = {row[j], row[K + j]};
    std::sort(pairs.begin(), pairs.end());
    for (int64_t j = 0; j < K; ++j)
      std::tie(row[j], row[K + j]) = pairs[size_t(j)];
  };
  if (unordered)
    for (auto &rows : tokenRows)
      for (size_t v = 0; outputRow && v < rows.size() / size_t(outputRow); ++v)
        sortSlots(rows.data() + v * size_t(outputRow));

  // Per token: the admissible routing that matches best.
  std::vector<double> got(static_cast<size_t>(outputRow));
  for (int64_t t = 0; t < T; ++t) {
    const auto &rows = tokenRows[size_t(t)];
    size_t numVariants = outputRow ? rows.size() / size_t(outputRow) : 1;
    if (numVariants > 1)
      ++result.nearTieTokens;
    if (tokenTruncated[size_t(t)])
      ++result.truncatedTokens;
    {
      int64_t off = 0;
      for (size_t a : outputs) {
        int64_t n = interp.rowLength[a];
        if (results[a])
          loadRow(results[a], d.args[a].dtype, t * n, n, got.data() + off);
        off += n;
      }
    }
    if (unordered)
      sortSlots(got.data());
    size_t best = 0;
    double bestErr = std::numeric_limits<double>::infinity();
    for (size_t v = 0; v < numVariants; ++v) {
      double err = 0;
      int64_t off = 0;
      for (size_t k = 0; k < outputs.size(); ++k) {
        int64_t n = interp.rowLength[outputs[k]];
        if (results[outputs[k]])
          for (int64_t i = 0; i < n; ++i)
            err = std::max(
                err,
                relativeError(got[size_t(off + i)],
                              rows[v * size_t(outputRow) + size_t(off + i)],
                              floors[size_t(t) * outputs.size() + k],
                              d.args[outputs[k]].dtype));
        off += n;
      }
      if (v == 0 || err < bestErr) { // ties keep the reference's own
        bestErr = err;
        best = v;
      }
    }
    if (best != 0)
      ++result.alternativeTokens;
    int64_t off = 0;
    for (size_t k = 0; k < outputs.size(); ++k) {
      size_t a = outputs[k];
      int64_t n = interp.rowLength[a];
      if (results[a])
        for (int64_t i = 0; i < n; ++i) {
          double expected = rows[best * size_t(outputRow) + size_t(off + i)];
          double g = got[size_t(off + i)];
          noteWorst(relativeError(g, expected,
                                  floors[size_t(t) * outputs.size() + k],
                                  d.args[a].dtype),
                    a, t * n + i, g, expected);
          ++result.elements;
        }
      off += n;
    }
  }

  // Whole-buffer outputs (not per token): element by element.
  for (size_t a = 0; a < d.args.size(); ++a) {
    if (d.args[a].role != Role::Output || interp.tokenMajor[a] != 0 ||
        !results[a])
      continue;
    int64_t n;
    elementCount(d.args[a].shape, T, n);
    std::vector<double> ref(static_cast<size_t>(n)),
        out(static_cast<size_t>(n));
    loadRow(interp.finalGlobal[a], d.args[a].dtype, 0, n, ref.data());
    loadRow(results[a], d.args[a].dtype, 0, n, out.data());
    double sq = 0;
    for (double r : ref)
      if (std::isfinite(r))
        sq += r * r;
    double floor =
        std::max(options.rmsFloor * (n ? std::sqrt(sq / double(n)) : 0),
                 smallestNormal(d.args[a].dtype));
    for (int64_t i = 0; i < n; ++i) {
      noteWorst(relativeError(out[size_t(i)], ref[size_t(i)], floor,
                              d.args[a].dtype),
                a, i,
                out[size_t(i)], ref[size_t(i)]);
      ++result.elements;
    }
    if (primary)
      (*primary)[a] = ref;
  }
  return true;
}
