//===- OpsTest.cpp - Each op of the CPU backend against a naive reference -===//
//
// The references below are written independently of the runtime: plain
// loops in double precision, rounding to the data type (with the test's own
// rounding) at the points the numerics contract names. Each output is checked
// twice:
//  - every element within a hard bound derived from the computation: fp32
//    accumulation error (1e-5 of the sum of absolute terms, propagated through
//    the MLP) plus one rounding flip (an ulp) at each dtype rounding point;
//  - at least 99% of the elements within a plain relative tolerance: f32
//    1e-5, f16 2e-3, bf16 1e-2, with an absolute floor of 1% of the mean
//    magnitude (the rest may be near-zero results of cancellation, where only
//    the hard bound is meaningful).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "Backend.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

using namespace moert_test;

namespace {

/// The plain relative tolerance per dtype.
double relativeTolerance(moert_dtype dtype) {
  switch (dtype) {
  case MOERT_BF16:
    return 1e-2;
  case MOERT_F16:
    return 2e-3;
  default:
    return 1e-5;
  }
}

/// The largest change one rounding flip makes, relative to the value.
double ulpOf(moert_dtype dtype) {
  switch (dtype) {
  case MOERT_BF16:
    return 0x1p-7;
  case MOERT_F16:
    return 0x1p-10;
  default:
    return 0x1p-22;
  }
}

/// The fraction of 16-bit results expected to match the reference bit for bit.
double exactFraction(moert_dtype dtype) {
  return dtype == MOERT_F32 ? 0.0 : 0.9;
}

/// fp32 accumulation error, relative to the sum of absolute terms.
constexpr double kAccumulation = 1e-5;

/// A reference result: values and their hard (absolute) tolerances.
struct Reference {
  std::vector<double> value, tolerance;
  explicit Reference(int64_t n)
      : value(static_cast<size_t>(n)), tolerance(static_cast<size_t>(n)) {}
};

/// Expects every |got(i) - ref.value[i]| <= ref.tolerance[i], and at least
/// 99% of them within `relative` * (|ref.value[i]| + 1% of the mean |ref|).
/// With `minExact` > 0, also expects at least that fraction of the elements
/// to equal the reference exactly: for bf16/f16 the reference rounds at the
/// same points as the runtime, so only rare fp32-vs-double rounding flips may
/// differ.
template <typename Got>
void expectClose(Got got, int64_t n, const Reference &ref, double relative,
                 const std::string &what, double minExact = 0.0) {
  int64_t bad = 0, loose = 0, exact = 0;
  double meanAbs = 0;
  for (int64_t i = 0; i < n; ++i)
    meanAbs += std::fabs(ref.value[size_t(i)]) / double(n);
  for (int64_t i = 0; i < n; ++i) {
    double g = got(i);
    double r = ref.value[size_t(i)];
    double error = std::fabs(g - r);
    if (!(error <= ref.tolerance[size_t(i)] + 1e-30)) {
      if (bad < 5)
        ADD_FAILURE() << what << "[" << i << "]: got " << g << ", expected "
                      << r << " (tolerance " << ref.tolerance[size_t(i)] << ")";
      ++bad;
    }
    if (!(error <= relative * (std::fabs(r) + 0.01 * meanAbs)))
      ++loose;
    if (error == 0)
      ++exact;
  }
  EXPECT_GE(double(exact), minExact * double(n))
      << what << ": only " << exact << " of " << n << " equal the reference";
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << n << " differ";
  EXPECT_LE(loose * 100, n) << what << ": " << loose << " of " << n
                            << " beyond the relative tolerance " << relative;
}

//===----------------------------------------------------------------------===//
// References
//===----------------------------------------------------------------------===//

/// One expert MLP on one row x (H): w13 (2I x H), w2 (H x I), all exact
/// values. Writes y (H) and its tolerance.
void referenceExpert(const double *x, const double *w13, const double *w2,
                     int64_t H, int64_t I, moert_dtype dtype, double *y,
                     double *yTolerance) {
  std::vector<double> act(static_cast<size_t>(I)),
      actTolerance(static_cast<size_t>(I));
  for (int64_t i = 0; i < I; ++i) {
    double g = 0, gAbs = 0, u = 0, uAbs = 0;
    for (int64_t h = 0; h < H; ++h) {
      g += x[h] * w13[i * H + h];
      gAbs += std::fabs(x[h] * w13[i * H + h]);
      u += x[h] * w13[(I + i) * H + h];
      uAbs += std::fabs(x[h] * w13[(I + i) * H + h]);
    }
    double s = 1.0 / (1.0 + std::exp(-g));
    double silu = g * s;
    double siluSlope = s * (1.0 + g * (1.0 - s));
    act[size_t(i)] = roundTo(silu * u, dtype);
    actTolerance[size_t(i)] = kAccumulation * (std::fabs(siluSlope * u) * gAbs +
                                               std::fabs(silu) * uAbs) +
                              ulpOf(dtype) * std::fabs(act[size_t(i)]);
  }
  for (int64_t h = 0; h < H; ++h) {
    double sum = 0, sumAbs = 0, propagated = 0;
    for (int64_t i = 0; i < I; ++i) {
      sum += act[size_t(i)] * w2[h * I + i];
      sumAbs += std::fabs(act[size_t(i)] * w2[h * I + i]);
      propagated += std::fabs(w2[h * I + i]) * actTolerance[size_t(i)];
    }
    y[h] = roundTo(sum, dtype);
    yTolerance[h] =
        propagated + kAccumulation * sumAbs + ulpOf(dtype) * std::fabs(y[h]);
  }
}

Reference referenceRouted(const Buffer &hidden, const std::vector<int32_t> &ids,
                          const std::vector<float> &weights, const Buffer &w13,
                          const Buffer &w2, int64_t T, int64_t H, int64_t K,
                          int64_t I) {
  moert_dtype dtype = hidden.type();
  std::vector<double> x = hidden.values(), w13v = w13.values(),
                      w2v = w2.values();
  Reference ref(T * H);
  std::vector<double> y(static_cast<size_t>(H)),
      yTolerance(static_cast<size_t>(H));
  std::vector<double> sum(static_cast<size_t>(H)),
      sumAbs(static_cast<size_t>(H)), propagated(static_cast<size_t>(H));
  for (int64_t t = 0; t < T; ++t) {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(sumAbs.begin(), sumAbs.end(), 0.0);
    std::fill(propagated.begin(), propagated.end(), 0.0);
    for (int64_t j = 0; j < K; ++j) {
      int64_t e = ids[size_t(t * K + j)];
      double w = weights[size_t(t * K + j)];
      referenceExpert(&x[size_t(t * H)], &w13v[size_t(e * 2 * I * H)],
                      &w2v[size_t(e * H * I)], H, I, dtype, y.data(),
                      yTolerance.data());
      for (int64_t h = 0; h < H; ++h) {
        sum[size_t(h)] += w * y[size_t(h)];
        sumAbs[size_t(h)] += std::fabs(w * y[size_t(h)]);
        propagated[size_t(h)] += std::fabs(w) * yTolerance[size_t(h)];
      }
    }
    for (int64_t h = 0; h < H; ++h) {
      double out = roundTo(sum[size_t(h)], dtype);
      ref.value[size_t(t * H + h)] = out;
      ref.tolerance[size_t(t * H + h)] = propagated[size_t(h)] +
                                         kAccumulation * sumAbs[size_t(h)] +
                                         ulpOf(dtype) * std::fabs(out);
    }
  }
  return ref;
}

struct TopKReference {
  std::vector<int32_t> ids;
  std::vector<double> weights;
};

TopKReference referenceTopK(const std::vector<float> &logits,
                            const std::vector<float> *bias, int64_t T,
                            int64_t E, int64_t K, moert_scoring scoring,
                            int64_t nGroup, int64_t topkGroup, bool renormalize,
                            double scale) {
  TopKReference ref{std::vector<int32_t>(size_t(T * K)),
                    std::vector<double>(size_t(T * K))};
  int64_t groupSize = E / nGroup;
  for (int64_t t = 0; t < T; ++t) {
    const float *l = &logits[size_t(t * E)];
    std::vector<double> score(static_cast<size_t>(E)),
        selection(static_cast<size_t>(E));
    if (scoring == MOERT_SCORING_SOFTMAX) {
      double m = *std::max_element(l, l + E), sum = 0;
      for (int64_t e = 0; e < E; ++e)
        sum += std::exp(double(l[e]) - m);
      for (int64_t e = 0; e < E; ++e)
        score[size_t(e)] = std::exp(double(l[e]) - m) / sum;
    } else {
      for (int64_t e = 0; e < E; ++e)
        score[size_t(e)] = 1.0 / (1.0 + std::exp(-double(l[e])));
    }
    for (int64_t e = 0; e < E; ++e)
      selection[size_t(e)] =
          score[size_t(e)] + (bias ? double((*bias)[size_t(e)]) : 0.0);

    // Order by (value descending, index ascending).
    auto ranked = [](const std::vector<double> &v) {
      std::vector<int64_t> order(v.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return v[size_t(a)] > v[size_t(b)];
      });
      return order;
    };
    std::vector<bool> allowed(size_t(E), true);
    if (nGroup > 1) {
      std::vector<double> groupScore(static_cast<size_t>(nGroup));
      for (int64_t g = 0; g < nGroup; ++g) {
        std::vector<double> members(selection.begin() + g * groupSize,
                                    selection.begin() + (g + 1) * groupSize);
        std::sort(members.rbegin(), members.rend());
        groupScore[size_t(g)] =
            scoring == MOERT_SCORING_SIGMOID && groupSize > 1
                ? members[0] + members[1]
                : members[0];
      }
      std::vector<int64_t> groups = ranked(groupScore);
      std::vector<bool> keep(size_t(nGroup), false);
      for (int64_t i = 0; i < topkGroup; ++i)
        keep[size_t(groups[size_t(i)])] = true;
      for (int64_t e = 0; e < E; ++e)
        allowed[size_t(e)] = keep[size_t(e / groupSize)];
    }
    std::vector<double> masked = selection;
    for (int64_t e = 0; e < E; ++e)
      if (!allowed[size_t(e)])
        masked[size_t(e)] = -std::numeric_limits<double>::infinity();
    std::vector<int64_t> experts = ranked(masked);
    double sum = 0;
    for (int64_t j = 0; j < K; ++j)
      sum += score[size_t(experts[size_t(j)])];
    for (int64_t j = 0; j < K; ++j) {
      int64_t e = experts[size_t(j)];
      ref.ids[size_t(t * K + j)] = int32_t(e);
      double w = score[size_t(e)];
      ref.weights[size_t(t * K + j)] = (renormalize ? w / sum : w) * scale;
    }
  }
  return ref;
}

//===----------------------------------------------------------------------===//
// gate
//===----------------------------------------------------------------------===//

class DtypeTest : public RuntimeTest,
                  public ::testing::WithParamInterface<moert_dtype> {};

TEST_P(DtypeTest, GateMatchesReference) {
  moert_dtype dtype = GetParam();
  const int64_t T = 19, H = 300, E = 24;
  std::mt19937_64 rng(11);
  Buffer hidden = randomBuffer(dtype, T * H, rng);
  // Mixed dtypes: the router weight in f32 with bf16/f16 tokens.
  Buffer weight = randomBuffer(MOERT_F32, E * H, rng, 0.1);
  Buffer weightSame = randomBuffer(dtype, E * H, rng, 0.1);
  for (const Buffer *w : {&weight, &weightSame}) {
    std::vector<float> logits = poisonedFloats(T * E);
    ASSERT_EQ(moert_gate(hidden.data(), dtype, w->data(), w->type(),
                         logits.data(), T, H, E),
              MOERT_SUCCESS)
        << moert_last_error();
    std::vector<double> x = hidden.values(), wv = w->values();
    Reference ref(T * E);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < E; ++e)
        for (int64_t h = 0; h < H; ++h) {
          double p = x[size_t(t * H + h)] * wv[size_t(e * H + h)];
          ref.value[size_t(t * E + e)] += p;
          ref.tolerance[size_t(t * E + e)] += kAccumulation * std::fabs(p);
        }
    expectClose([&](int64_t i) { return double(logits[size_t(i)]); }, T * E,
                ref, 1e-5, "logits");
  }
  expectNoError();
}

//===----------------------------------------------------------------------===//
// routed_experts
//===----------------------------------------------------------------------===//

struct RoutedProblem {
  int64_t T, H, E, K, I;
  moert_dtype dtype;
  Buffer hidden, w13, w2;
  std::vector<int32_t> ids;
  std::vector<float> weights;

  RoutedProblem(moert_dtype dtype, int64_t T, int64_t H, int64_t E, int64_t K,
                int64_t I, uint64_t seed)
      : T(T), H(H), E(E), K(K), I(I), dtype(dtype) {
    std::mt19937_64 rng(seed);
    hidden = randomBuffer(dtype, T * H, rng);
    w13 = randomBuffer(dtype, E * 2 * I * H, rng, 2.0 / std::sqrt(double(H)));
    w2 = randomBuffer(dtype, E * H * I, rng, 2.0 / std::sqrt(double(I)));
    // Ids skip the last expert (an expert with no tokens) and may repeat
    // within a token; weights in [0, 1).
    std::uniform_int_distribution<int32_t> expert(0,
                                                  int32_t(E > 1 ? E - 2 : 0));
    std::uniform_real_distribution<float> weight(0.0f, 1.0f);
    for (int64_t p = 0; p < T * K; ++p) {
      ids.push_back(expert(rng));
      weights.push_back(weight(rng));
    }
  }

  moert_status run(const void *in, void *out, void *workspace = nullptr) {
    return moert_routed_experts(in, ids.data(), weights.data(), w13.data(),
                                w2.data(), nullptr, nullptr, out, workspace, dtype, dtype, T, H, E, K,
                                I);
  }
};

TEST_P(DtypeTest, RoutedExpertsMatchReference) {
  moert_dtype dtype = GetParam();
  // One column block with H % 16 != 0; two column blocks (512 + 88) with
  // K == E; a single token; no tokens at all.
  struct Shape {
    int64_t T, H, E, K, I;
  };
  for (Shape s : {Shape{37, 200, 8, 3, 72}, Shape{5, 600, 4, 4, 40},
                  Shape{1, 64, 3, 2, 17}, Shape{0, 64, 3, 2, 16}}) {
    SCOPED_TRACE(::testing::Message()
                 << dtypeName(dtype) << " T=" << s.T << " H=" << s.H
                 << " E=" << s.E << " K=" << s.K << " I=" << s.I);
    RoutedProblem problem(dtype, s.T, s.H, s.E, s.K, s.I, 100 + s.H);
    Buffer out(dtype, s.T * s.H);
    out.poison();
    ASSERT_EQ(problem.run(problem.hidden.data(), out.data()), MOERT_SUCCESS)
        << moert_last_error();
    Reference ref =
        referenceRouted(problem.hidden, problem.ids, problem.weights,
                        problem.w13, problem.w2, s.T, s.H, s.K, s.I);
    expectClose([&](int64_t i) { return out.get(i); }, s.T * s.H, ref,
                relativeTolerance(dtype), "routed output",
                exactFraction(dtype));
  }
  expectNoError();
}

TEST_P(DtypeTest, RoutedExpertsAreDeterministicAndInPlaceSafe) {
  moert_dtype dtype = GetParam();
  RoutedProblem problem(dtype, 29, 160, 6, 2, 48, 7);
  Buffer first(dtype, 29 * 160), second(dtype, 29 * 160);
  first.poison();
  second.poison();
  ASSERT_EQ(problem.run(problem.hidden.data(), first.data()), MOERT_SUCCESS);
  ASSERT_EQ(problem.run(problem.hidden.data(), second.data()), MOERT_SUCCESS);
  EXPECT_TRUE(first.sameBytes(second));

  // In place: the output overwrites the input and equals the out-of-place
  // result bit for bit.
  Buffer inout = problem.hidden;
  ASSERT_EQ(problem.run(inout.data(), inout.data()), MOERT_SUCCESS)
      << moert_last_error();
  EXPECT_TRUE(inout.sameBytes(first));
  expectNoError();
}

TEST_F(RuntimeTest, RoutedWorkspaceHoldsTheDocumentedLayout) {
  const int64_t T = 9, H = 40, E = 5, K = 2, I = 24;
  RoutedProblem problem(MOERT_F32, T, H, E, K, I, 3);
  int64_t bytes =
      moert_routed_experts_workspace_bytes(T, H, E, K, I, MOERT_F32, MOERT_F32);
  void *workspace = moert_alloc(bytes);
  ASSERT_NE(workspace, nullptr);
  Buffer out(MOERT_F32, T * H);
  ASSERT_EQ(problem.run(problem.hidden.data(), out.data(), workspace),
            MOERT_SUCCESS)
      << moert_last_error();

  moert::RoutedWorkspaceLayout layout =
      moert::carveRoutedWorkspace(workspace, T, H, E, K, I, 4);
  EXPECT_LE(layout.bytes, bytes);
  // Pairs sorted by expert, stable by (token, slot); offsets; inverse.
  std::vector<int32_t> expected(size_t(T * K));
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(), [&](int32_t a, int32_t b) {
    return problem.ids[size_t(a)] < problem.ids[size_t(b)];
  });
  for (int64_t p = 0; p < T * K; ++p) {
    EXPECT_EQ(layout.sortedPairs[p], expected[size_t(p)]) << p;
    EXPECT_EQ(layout.pairPositions[layout.sortedPairs[p]], p) << p;
  }
  int32_t offset = 0;
  for (int64_t e = 0; e < E; ++e) {
    EXPECT_EQ(layout.expertOffsets[e], offset) << e;
    offset += int32_t(std::count(problem.ids.begin(), problem.ids.end(), e));
  }
  EXPECT_EQ(layout.expertOffsets[E], T * K);
  // Each sub-buffer starts at the workspace alignment.
  for (const void *p :
       {(const void *)layout.expertOffsets, (const void *)layout.sortedPairs,
        (const void *)layout.pairPositions, (const void *)layout.activations,
        (const void *)layout.partials})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % MOERT_WORKSPACE_ALIGNMENT, 0u);
  moert_free(workspace);
  expectNoError();
}

TEST_F(RuntimeTest, WorkspaceLayoutsFitTheFormula) {
  for (int64_t T : {0, 1, 3, 50})
    for (int64_t H : {1, 7, 512, 513, 1100})
      for (int64_t I : {1, 3, 300})
        for (moert_dtype dtype : {MOERT_BF16, MOERT_F32}) {
          int64_t E = 7, K = 3;
          int64_t bytes =
              moert_routed_experts_workspace_bytes(T, H, E, K, I, dtype, dtype);
          int64_t B = bytesOf(dtype), C = std::min<int64_t>(H, 512);
          EXPECT_EQ(bytes, T * K * (8 + I * B + C * B) + (E + 1) * 4 + 5 * 256);
          void *workspace = moert_alloc(bytes);
          ASSERT_NE(workspace, nullptr);
          moert::RoutedWorkspaceLayout layout =
              moert::carveRoutedWorkspace(workspace, T, H, E, K, I, B);
          EXPECT_LE(layout.bytes, bytes);
          moert_free(workspace);
          EXPECT_EQ(moert_shared_experts_workspace_bytes(T, H, I, dtype, dtype),
                    T * I * B + 256);
        }
  expectNoError();
}

//===----------------------------------------------------------------------===//
// shared_experts and add
//===----------------------------------------------------------------------===//

TEST_P(DtypeTest, SharedExpertsMatchReference) {
  moert_dtype dtype = GetParam();
  const int64_t T = 21, H = 130, I = 90;
  std::mt19937_64 rng(17);
  Buffer hidden = randomBuffer(dtype, T * H, rng);
  Buffer w13 = randomBuffer(dtype, 2 * I * H, rng, 2.0 / std::sqrt(double(H)));
  Buffer w2 = randomBuffer(dtype, H * I, rng, 2.0 / std::sqrt(double(I)));
  Buffer out(dtype, T * H);
  out.poison();
  ASSERT_EQ(moert_shared_experts(hidden.data(), w13.data(), w2.data(), nullptr, nullptr,
                                 out.data(), nullptr, dtype, dtype, T, H, I),
            MOERT_SUCCESS)
      << moert_last_error();

  std::vector<double> x = hidden.values(), w13v = w13.values(),
                      w2v = w2.values();
  Reference ref(T * H);
  for (int64_t t = 0; t < T; ++t)
    referenceExpert(&x[size_t(t * H)], w13v.data(), w2v.data(), H, I, dtype,
                    &ref.value[size_t(t * H)], &ref.tolerance[size_t(t * H)]);
  expectClose([&](int64_t i) { return out.get(i); }, T * H, ref,
              relativeTolerance(dtype), "shared output", exactFraction(dtype));

  // Deterministic, and the same in place.
  Buffer again(dtype, T * H), inout = hidden;
  again.poison();
  ASSERT_EQ(moert_shared_experts(hidden.data(), w13.data(), w2.data(), nullptr, nullptr,
                                 again.data(), nullptr, dtype, dtype, T, H, I),
            MOERT_SUCCESS);
  EXPECT_TRUE(again.sameBytes(out));
  ASSERT_EQ(moert_shared_experts(inout.data(), w13.data(), w2.data(), nullptr, nullptr,
                                 inout.data(), nullptr, dtype, dtype, T, H, I),
            MOERT_SUCCESS);
  EXPECT_TRUE(inout.sameBytes(out));
  expectNoError();
}

TEST_P(DtypeTest, AddMatchesReference) {
  moert_dtype dtype = GetParam();
  const int64_t T = 7, H = 33;
  std::mt19937_64 rng(23);
  Buffer lhs = randomBuffer(dtype, T * H, rng, 4.0);
  Buffer rhs = randomBuffer(dtype, T * H, rng, 4.0);
  for (float scale : {1.0f, 0.5f, -2.5f}) {
    Buffer out(dtype, T * H);
    out.poison();
    ASSERT_EQ(moert_add(lhs.data(), rhs.data(), out.data(), dtype, T, H, scale),
              MOERT_SUCCESS)
        << moert_last_error();
    Reference ref(T * H);
    for (int64_t i = 0; i < T * H; ++i) {
      double l = scale * lhs.get(i), r = rhs.get(i);
      ref.value[size_t(i)] = roundTo(l + r, dtype);
      // Two fp32 roundings (the product, the sum), then one to the dtype.
      ref.tolerance[size_t(i)] = 0x1p-23 * (std::fabs(l) + std::fabs(l + r)) +
                                 ulpOf(dtype) * std::fabs(ref.value[size_t(i)]);
    }
    expectClose([&](int64_t i) { return out.get(i); }, T * H, ref,
                relativeTolerance(dtype), "add output");

    // In place into either operand: the same bits.
    Buffer inLhs = lhs, inRhs = rhs;
    ASSERT_EQ(
        moert_add(inLhs.data(), rhs.data(), inLhs.data(), dtype, T, H, scale),
        MOERT_SUCCESS);
    ASSERT_EQ(
        moert_add(lhs.data(), inRhs.data(), inRhs.data(), dtype, T, H, scale),
        MOERT_SUCCESS);
    EXPECT_TRUE(inLhs.sameBytes(out));
    EXPECT_TRUE(inRhs.sameBytes(out));
  }
  expectNoError();
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, DtypeTest,
                         ::testing::Values(MOERT_BF16, MOERT_F16, MOERT_F32),
                         [](const ::testing::TestParamInfo<moert_dtype> &info) {
                           return std::string(dtypeName(info.param));
                         });

//===----------------------------------------------------------------------===//
// topk
//===----------------------------------------------------------------------===//

struct TopKCase {
  moert_scoring scoring;
  int64_t nGroup, topkGroup;
  bool useBias, renormalize;
  float scale;
};

class TopKRandomTest : public RuntimeTest,
                       public ::testing::WithParamInterface<TopKCase> {};

TEST_P(TopKRandomTest, MatchesReference) {
  TopKCase c = GetParam();
  const int64_t T = 64, E = 64, K = 8;
  std::mt19937_64 rng(31);
  std::uniform_real_distribution<float> logit(-4.0f, 4.0f), b(-0.5f, 0.5f);
  std::vector<float> logits(size_t(T * E)), bias(static_cast<size_t>(E));
  for (float &l : logits)
    l = logit(rng);
  for (float &v : bias)
    v = b(rng);
  std::vector<int32_t> ids(size_t(T * K), -7);
  std::vector<float> weights = poisonedFloats(T * K);
  ASSERT_EQ(moert_topk(logits.data(), c.useBias ? bias.data() : nullptr,
                       ids.data(), weights.data(), T, E, K, c.scoring, c.nGroup,
                       c.topkGroup, c.renormalize, c.scale),
            MOERT_SUCCESS)
      << moert_last_error();
  TopKReference ref =
      referenceTopK(logits, c.useBias ? &bias : nullptr, T, E, K, c.scoring,
                    c.nGroup, c.topkGroup, c.renormalize, c.scale);
  EXPECT_EQ(ids, ref.ids);
  Reference weightRef(T * K);
  for (size_t i = 0; i < ref.weights.size(); ++i) {
    weightRef.value[i] = ref.weights[i];
    weightRef.tolerance[i] = 1e-5 * std::fabs(ref.weights[i]);
  }
  expectClose([&](int64_t i) { return double(weights[size_t(i)]); }, T * K,
              weightRef, 1e-5, "topk weights");
  expectNoError();
}

INSTANTIATE_TEST_SUITE_P(
    Configs, TopKRandomTest,
    ::testing::Values(
        // Qwen3: softmax, renormalize.
        TopKCase{MOERT_SCORING_SOFTMAX, 1, 1, false, true, 1.0f},
        // Plain softmax top-k, no renormalization.
        TopKCase{MOERT_SCORING_SOFTMAX, 1, 1, false, false, 1.0f},
        // DeepSeek-V3: sigmoid, bias, 8 groups keep 4, renormalize, 2.5.
        TopKCase{MOERT_SCORING_SIGMOID, 8, 4, true, true, 2.5f},
        // Kimi-K2: sigmoid, bias, no groups.
        TopKCase{MOERT_SCORING_SIGMOID, 1, 1, true, true, 2.827f},
        // Grouped softmax (group score = max).
        TopKCase{MOERT_SCORING_SOFTMAX, 4, 2, false, false, 1.0f}));

TEST_F(RuntimeTest, TopKTiesGoToTheLowerIndex) {
  const int64_t E = 4, K = 2;
  std::vector<float> logits(E, 0.5f);
  std::vector<int32_t> ids(K);
  std::vector<float> weights(K);
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, E,
                       K, MOERT_SCORING_SOFTMAX, 1, 1, 0, 1.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1}));
  EXPECT_FLOAT_EQ(weights[0], 0.25f);
  EXPECT_FLOAT_EQ(weights[1], 0.25f);
}

TEST_F(RuntimeTest, TopKGroupsExcludeTheBestExpertOfALosingGroup) {
  // 4 groups of 2, keep the best 2 groups by the sum of their top-2 sigmoid
  // scores: g0 = {5, -5} (~1.0), g1 = {1, 1} (~1.46), g2 = {0.5, 0.6}
  // (~1.27), g3 = {-1, -1} (~0.54). Groups 1 and 2 win, so expert 0 (the
  // single best score) is excluded.
  std::vector<float> logits = {5, -5, 1, 1, 0.5f, 0.6f, -1, -1};
  std::vector<int32_t> ids(3);
  std::vector<float> weights(3);
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 8,
                       3, MOERT_SCORING_SIGMOID, 4, 2, 0, 1.0f),
            MOERT_SUCCESS);
  // 2 and 3 tie (lower first), then 5 (0.6) before 4 (0.5).
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 3, 5}));
  float s1 = 1.0f / (1.0f + std::exp(-1.0f));
  float s06 = 1.0f / (1.0f + std::exp(-0.6f));
  EXPECT_FLOAT_EQ(weights[0], s1);
  EXPECT_FLOAT_EQ(weights[1], s1);
  EXPECT_FLOAT_EQ(weights[2], s06);

  // Softmax groups score by their max: group 0 (5) and group 1 (1) win.
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 8,
                       3, MOERT_SCORING_SOFTMAX, 4, 2, 0, 1.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 2, 3}));

  // Tied groups: the lower group index wins.
  std::vector<float> flat(8, 0.0f);
  ASSERT_EQ(moert_topk(flat.data(), nullptr, ids.data(), weights.data(), 1, 8,
                       3, MOERT_SCORING_SIGMOID, 4, 2, 0, 1.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2}));
}

TEST_F(RuntimeTest, TopKBiasSelectsButDoesNotWeigh) {
  // Selection scores: sigmoid + bias = {0.881, 0.731, 3.5, 0.269}: experts 2
  // and 0. Weights: their unbiased scores {0.5, 0.881}, renormalized, x 2.5.
  std::vector<float> logits = {2, 1, 0, -1}, bias = {0, 0, 3, 0};
  std::vector<int32_t> ids(2);
  std::vector<float> weights(2);
  ASSERT_EQ(moert_topk(logits.data(), bias.data(), ids.data(), weights.data(),
                       1, 4, 2, MOERT_SCORING_SIGMOID, 1, 1, 1, 2.5f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 0}));
  double s2 = 0.5, s0 = 1.0 / (1.0 + std::exp(-2.0));
  EXPECT_NEAR(weights[0], s2 / (s2 + s0) * 2.5, 1e-6);
  EXPECT_NEAR(weights[1], s0 / (s2 + s0) * 2.5, 1e-6);
  EXPECT_NEAR(weights[0] + weights[1], 2.5, 1e-6);

  // Without renormalization: the raw scores times the factor.
  ASSERT_EQ(moert_topk(logits.data(), bias.data(), ids.data(), weights.data(),
                       1, 4, 2, MOERT_SCORING_SIGMOID, 1, 1, 0, 2.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 0}));
  EXPECT_NEAR(weights[0], 1.0, 1e-6);
  EXPECT_NEAR(weights[1], 2 * s0, 1e-6);

  // Without the bias, the order is by score.
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 4,
                       2, MOERT_SCORING_SIGMOID, 1, 1, 0, 1.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1}));
}

TEST_F(RuntimeTest, TopKSoftmaxRenormalizes) {
  std::vector<float> logits = {0, std::log(2.0f), std::log(3.0f),
                               std::log(4.0f)};
  std::vector<int32_t> ids(2);
  std::vector<float> weights(2);
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 4,
                       2, MOERT_SCORING_SOFTMAX, 1, 1, 0, 1.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 2}));
  EXPECT_NEAR(weights[0], 0.4, 1e-6);
  EXPECT_NEAR(weights[1], 0.3, 1e-6);
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 4,
                       2, MOERT_SCORING_SOFTMAX, 1, 1, 1, 1.0f),
            MOERT_SUCCESS);
  EXPECT_NEAR(weights[0], 4.0 / 7, 1e-6);
  EXPECT_NEAR(weights[1], 3.0 / 7, 1e-6);
}

TEST_F(RuntimeTest, TopKSigmoidRenormalizesScoresThatUnderflow) {
  // Every score underflows to 0 in fp32 (exp(100) overflows), so the
  // experts tie (lower index first), but the renormalized weights are still
  // exact, e^(l - max l) over their sum, not 0/0.
  std::vector<float> logits = {-101.0f, -100.0f, -130.0f, -99.0f};
  std::vector<int32_t> ids(2);
  std::vector<float> weights(2);
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 4,
                       2, MOERT_SCORING_SIGMOID, 1, 1, 1, 2.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1}));
  double e = std::exp(-1.0);
  EXPECT_NEAR(weights[0], 2.0 * e / (1 + e), 1e-6);
  EXPECT_NEAR(weights[1], 2.0 / (1 + e), 1e-6);
  // Above the threshold nothing changes: the plain quotient of the scores.
  logits = {-10.0f, -11.0f, -13.0f, -9.0f};
  ASSERT_EQ(moert_topk(logits.data(), nullptr, ids.data(), weights.data(), 1, 4,
                       2, MOERT_SCORING_SIGMOID, 1, 1, 1, 1.0f),
            MOERT_SUCCESS);
  float s3 = 1.0f / (1.0f + std::exp(9.0f)), s0 = 1.0f / (1.0f + std::exp(10.0f));
  EXPECT_EQ(weights[0], s3 / (s3 + s0));
  EXPECT_EQ(weights[1], s0 / (s3 + s0));
}

//===----------------------------------------------------------------------===//
// A DeepSeek-shaped layer, reduced
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, DeepSeekShapedLayerRunsQuickly) {
  // DeepSeek-V3's structure at hidden 256, I 128, 32 experts (8 groups keep
  // 4), top-8, one shared expert, 64 tokens, bf16.
  const int64_t T = 64, H = 256, I = 128, E = 32, K = 8;
  const moert_dtype dtype = MOERT_BF16;
  std::mt19937_64 rng(2025);
  Buffer x = randomBuffer(dtype, T * H, rng);
  Buffer gateWeight = randomBuffer(dtype, E * H, rng, 0.1);
  Buffer w13 = randomBuffer(dtype, E * 2 * I * H, rng, 0.12);
  Buffer w2 = randomBuffer(dtype, E * H * I, rng, 0.17);
  Buffer sw13 = randomBuffer(dtype, 2 * I * H, rng, 0.12);
  Buffer sw2 = randomBuffer(dtype, H * I, rng, 0.17);
  std::vector<float> bias(E, 0.0f), logits(size_t(T * E));
  std::vector<int32_t> ids(size_t(T * K));
  std::vector<float> weights(size_t(T * K));
  Buffer shared(dtype, T * H), routed(dtype, T * H), out(dtype, T * H);

  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(moert_gate(x.data(), dtype, gateWeight.data(), dtype, logits.data(),
                       T, H, E),
            MOERT_SUCCESS);
  ASSERT_EQ(moert_topk(logits.data(), bias.data(), ids.data(), weights.data(),
                       T, E, K, MOERT_SCORING_SIGMOID, 8, 4, 1, 2.5f),
            MOERT_SUCCESS);
  ASSERT_EQ(moert_shared_experts(x.data(), sw13.data(), sw2.data(), nullptr, nullptr,
                                 shared.data(), nullptr, dtype, dtype, T, H, I),
            MOERT_SUCCESS);
  ASSERT_EQ(moert_routed_experts(x.data(), ids.data(), weights.data(),
                                 w13.data(), w2.data(), nullptr, nullptr, routed.data(), nullptr,
                                 dtype,
                                 dtype, T, H, E, K, I),
            MOERT_SUCCESS);
  ASSERT_EQ(
      moert_add(routed.data(), shared.data(), out.data(), dtype, T, H, 1.0f),
      MOERT_SUCCESS);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  RecordProperty("seconds", std::to_string(seconds));
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__) &&                       \
    !__has_feature(address_sanitizer)
  EXPECT_LT(seconds, 1.0); // optimized builds only
#endif

  Reference ref = referenceRouted(x, ids, weights, w13, w2, T, H, K, I);
  expectClose([&](int64_t i) { return routed.get(i); }, T * H, ref,
              relativeTolerance(dtype), "routed output", exactFraction(dtype));
  expectNoError();
}

} // namespace
