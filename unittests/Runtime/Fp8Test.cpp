//===- Fp8Test.cpp - fp8 (e4m3, block-scaled) experts on the CPU backend --===//
//
// moert_routed_experts and moert_shared_experts with MOERT_F8E4M3 weights
// (kernels/moe_kernels.h's fp8 numerics contract, docs/runtime.md) against
// references written here, independently of the runtime:
//  - e4m3 is modelled (Fp8Model.h) as a table of the 127 non-negative finite values; a
//    value's code is the nearest entry, ties to the even code (its last
//    mantissa bit), saturating at 448;
//  - rule 1 (activation quantization) is redone in fp32 exactly as the
//    contract spells it, so the quantized hidden must match bit for bit;
//  - rules 2-4 run in double: exact block sums of the e4m3 products, scales
//    multiplied in double, act = silu(g) * u in double, then quantized by
//    rule 3 (fp32, as rule 1), the down projection in double, rounded to
//    bf16 (the test's own rounding) where the contract rounds.
// The runtime computes rules 2-4 in fp32, so it is within a few fp32 ulps
// of the reference before each quantization. An act value whose ratio to its
// group scale lies within that error of an e4m3 rounding midpoint may land
// on the neighbouring code. The reference therefore carries, per act
// element, the interval of codes the runtime may produce (almost always one
// code) and, per output, a hard bound derived from those intervals and the
// fp32 roundings; see referenceExpert for the derivation.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "Backend.h"
#include "Fp8Model.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>

using namespace moert_test;
using namespace fp8_model;

namespace {

constexpr int64_t kBlock = MOERT_FP8_BLOCK;
/// fp32's unit roundoff: one rounding changes a value by at most kU of it.
constexpr double kU = 0x1p-24;
/// bf16: one rounding to nearest changes a value by at most half an ulp,
/// 2^-8 of it; two values within d round to values within d + 2^-7 of the
/// larger magnitude.
constexpr double kBf16Ulp = 0x1p-7;

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

//===----------------------------------------------------------------------===//
// Rule 1 and the test data
//===----------------------------------------------------------------------===//

struct Quantized {
  std::vector<uint8_t> q;
  std::vector<float> scales;
};

/// Rule 1 as the contract spells it: per row per 128 columns, fp32 amax,
/// s = fmaxf(amax, 1e-10f) / 448.0f and q = e4m3(a / s), fp32 divisions.
Quantized quantizeRule1(const std::vector<float> &a, int64_t rows,
                        int64_t cols) {
  Quantized out;
  out.q.resize(size_t(rows * cols));
  out.scales.resize(size_t(rows * cols / kBlock));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / kBlock; ++g) {
      const float *x = &a[size_t(r * cols + g * kBlock)];
      float amax = 0.0f;
      for (int64_t i = 0; i < kBlock; ++i)
        amax = std::fmax(amax, std::fabs(x[i]));
      float s = std::fmax(amax, 1e-10f) / 448.0f;
      out.scales[size_t(r * (cols / kBlock) + g)] = s;
      for (int64_t i = 0; i < kBlock; ++i) {
        float quotient = x[i] / s;
        out.q[size_t(r * cols + g * kBlock + i)] = e4m3Nearest(quotient);
      }
    }
  return out;
}

/// `count` block-scaled e4m3 matrices of rows x cols with scales
/// [count, rows/128, cols/128]. Codes are round(N(0, 1) * 100) in e4m3, with
/// 1% of them any finite code (subnormals and +-448 included); each block's
/// scale is typicalMagnitude / 100 times a factor in [1/2, 2], so that a
/// scale taken from the wrong block shows.
struct Fp8Weight {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> q;
  std::vector<float> scales;
  std::vector<double> values; // e4m3Value(q), unscaled

  Fp8Weight(int64_t count, int64_t rows, int64_t cols, double magnitude,
            std::mt19937_64 &rng)
      : count(count), rows(rows), cols(cols) {
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::uniform_int_distribution<int> anyCode(0, 0x7e);
    for (int64_t i = 0; i < count * rows * cols; ++i) {
      uint8_t code = unit(rng) < 0.01
                         ? uint8_t(anyCode(rng) | (unit(rng) < 0.5 ? 0x80 : 0))
                         : e4m3Nearest(normal(rng) * 100.0);
      q.push_back(code);
      values.push_back(e4m3Value(code));
    }
    for (int64_t i = 0; i < count * (rows / kBlock) * (cols / kBlock); ++i)
      scales.push_back(float(magnitude / 100.0 * std::exp2(2 * unit(rng) - 1)));
  }
  const double *row(int64_t m, int64_t r) const {
    return &values[size_t((m * rows + r) * cols)];
  }
  /// The scale of element (r, c) of matrix m.
  double scale(int64_t m, int64_t r, int64_t c) const {
    return scales[size_t((m * (rows / kBlock) + r / kBlock) * (cols / kBlock) +
                         c / kBlock)];
  }
};

/// bf16 hidden [T, H]: uniform in [-1, 1) times a factor in [1/8, 8] per
/// (token, group); element 5 of each group scaled by 1e-5 (its code is
/// subnormal or zero); the last token's first group all zeros (the amax
/// floor) when T > 1.
Buffer randomFp8Hidden(int64_t T, int64_t H, std::mt19937_64 &rng) {
  Buffer hidden(MOERT_BF16, T * H);
  std::uniform_real_distribution<double> dist(-1.0, 1.0), unit(0.0, 1.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t g = 0; g < H / kBlock; ++g) {
      double factor = std::exp2(6 * unit(rng) - 3);
      for (int64_t i = 0; i < kBlock; ++i) {
        double v = dist(rng) * factor * (i == 5 ? 1e-5 : 1.0);
        if (T > 1 && t == T - 1 && g == 0)
          v = 0;
        hidden.set(t * H + g * kBlock + i, roundTo(v, MOERT_BF16));
      }
    }
  return hidden;
}

std::vector<float> asFloats(const Buffer &b) {
  std::vector<float> v(size_t(b.size()));
  for (int64_t i = 0; i < b.size(); ++i)
    v[size_t(i)] = float(b.get(i));
  return v;
}

//===----------------------------------------------------------------------===//
// The reference of one expert MLP on one quantized row
//===----------------------------------------------------------------------===//

struct ExpertReference {
  /// act codes (rule 3 on the double act) and their scales [I/128].
  std::vector<uint8_t> actCode;
  std::vector<float> actScale;
  /// The codes the runtime may produce: every code between lo and hi.
  std::vector<uint8_t> actLo, actHi;
  /// Bound on |runtime act scale - actScale| / actScale, per group.
  std::vector<double> actScaleTolerance;
  /// The down projection before the bf16 rounding, and a bound on the
  /// runtime's distance from it (before its own bf16 rounding), [H].
  std::vector<double> partial, partialTolerance;
};

/// Rules 2-4 for one row: x (e4m3 values [H], scales [H/128]) through
/// expert `e` of w13 ([2I, H]) and w2 ([H, I]).
///
/// Derivation of the bounds (u = 2^-24, one fp32 rounding):
///  - gate/up: the runtime rounds each term P_b * (s_a * s_w) at most three
///    times (P_b, the scale product, the product; P_b itself is otherwise
///    exact) and adds nb terms in fp32 (nb - 1 roundings of partial sums no
///    larger than sum |term|): |acc' - acc| <= (nb + 3) u sum |term|; one
///    more u covers second-order terms and the double reference's own
///    roundings (2^-53 each).
///  - act = silu(g) u: |silu'| <= 1.1 everywhere, so the runtime's inputs
///    move it by <= 1.1 dg (|u| + du) + |silu(g)| du; its fp32 expf (< 1 ulp
///    = 2u), 1 + e, the division and the product add <= 5u |act| (6u with
///    second-order slack).
///  - rule 3: the runtime's group amax is within max(d act) of the exact
///    one, so its scale is within relS = max(d act) / amax + 2u (the amax
///    and the division) of amax / 448; its quotient act / s is within
///    R = |r| (relS + 4u) + d act / s (1 + relS) of the exact r = act / s
///    (4u covers the quotient's rounding and the reference's own fp32
///    act, amax, scale and quotient). The runtime's code is then one of the
///    codes of [r - R, r + R]: codes lo..hi, one code unless a rounding
///    midpoint lies within R of r.
///  - down: the runtime's act value differs from the reference's by at most
///    (value(hi) - value(lo)) s + max(|value(lo)|, |value(hi)|) s (relS + 2u)
///    per element (the code interval and the two scales); times |w2| summed
///    that is the flip term. Its fp32 accumulation adds (nb + 4) u of the
///    terms' absolute sum (as for gate/up; the terms may be larger by the
///    flip term).
ExpertReference referenceExpert(const double *x, const float *xScales,
                                const Fp8Weight &w13, const Fp8Weight &w2,
                                int64_t e, int64_t H, int64_t I) {
  const int64_t hBlocks = H / kBlock, iBlocks = I / kBlock;
  std::vector<double> acc(size_t(2 * I)), accError(size_t(2 * I));
  for (int64_t n = 0; n < 2 * I; ++n) {
    const double *w = w13.row(e, n);
    double sum = 0, sumAbs = 0;
    for (int64_t b = 0; b < hBlocks; ++b) {
      double p = 0; // exact: products of e4m3 values, 43 bits at most
      for (int64_t i = b * kBlock; i < (b + 1) * kBlock; ++i)
        p += x[i] * w[i];
      double term = p * double(xScales[b]) * w13.scale(e, n, b * kBlock);
      sum += term;
      sumAbs += std::fabs(term);
    }
    acc[size_t(n)] = sum;
    accError[size_t(n)] = double(hBlocks + 4) * kU * sumAbs;
  }
  std::vector<double> act(static_cast<size_t>(I)),
      actError(static_cast<size_t>(I));
  for (int64_t i = 0; i < I; ++i) {
    double g = acc[size_t(i)], u = acc[size_t(I + i)];
    double dg = accError[size_t(i)], du = accError[size_t(I + i)];
    double silu = g / (1.0 + std::exp(-g));
    act[size_t(i)] = silu * u;
    actError[size_t(i)] = 1.1 * dg * (std::fabs(u) + du) +
                          std::fabs(silu) * du + 6 * kU * std::fabs(silu * u);
  }

  ExpertReference ref;
  std::vector<float> actFloat(act.begin(), act.end());
  Quantized q = quantizeRule1(actFloat, 1, I);
  ref.actCode = q.q;
  ref.actScale = q.scales;
  ref.actLo.resize(static_cast<size_t>(I));
  ref.actHi.resize(static_cast<size_t>(I));
  ref.actScaleTolerance.resize(static_cast<size_t>(iBlocks));
  // Per act element: what a flip may change, in units of |w2 value| *
  // w2 scale.
  std::vector<double> flipWeight(static_cast<size_t>(I));
  for (int64_t b = 0; b < iBlocks; ++b) {
    double amax = 0, maxError = 0;
    for (int64_t i = b * kBlock; i < (b + 1) * kBlock; ++i) {
      amax = std::max(amax, std::fabs(act[size_t(i)]));
      maxError = std::max(maxError, actError[size_t(i)]);
    }
    EXPECT_GT(amax, 1e-6) << "degenerate test data: an all-zero act group";
    double relS = maxError / amax + 2 * kU;
    double s = amax / 448.0;
    ref.actScaleTolerance[size_t(b)] = relS + 2 * kU;
    for (int64_t i = b * kBlock; i < (b + 1) * kBlock; ++i) {
      double r = act[size_t(i)] / s;
      double R = std::fabs(r) * (relS + 4 * kU) +
                 actError[size_t(i)] / s * (1 + relS);
      uint8_t lo = e4m3Nearest(r - R), hi = e4m3Nearest(r + R);
      ref.actLo[size_t(i)] = lo;
      ref.actHi[size_t(i)] = hi;
      double code = e4m3Value(ref.actCode[size_t(i)]);
      EXPECT_TRUE(e4m3Value(lo) <= code && code <= e4m3Value(hi))
          << "the reference's own act code is outside its interval";
      flipWeight[size_t(i)] =
          double(ref.actScale[size_t(b)]) *
          ((e4m3Value(hi) - e4m3Value(lo)) +
           std::max(std::fabs(e4m3Value(lo)), std::fabs(e4m3Value(hi))) *
               ref.actScaleTolerance[size_t(b)]);
    }
  }

  std::vector<double> a(static_cast<size_t>(I));
  for (int64_t i = 0; i < I; ++i)
    a[size_t(i)] = e4m3Value(ref.actCode[size_t(i)]);
  ref.partial.resize(static_cast<size_t>(H));
  ref.partialTolerance.resize(static_cast<size_t>(H));
  for (int64_t h = 0; h < H; ++h) {
    const double *w = w2.row(e, h);
    double sum = 0, sumAbs = 0, flip = 0;
    for (int64_t b = 0; b < iBlocks; ++b) {
      double p = 0, f = 0;
      for (int64_t i = b * kBlock; i < (b + 1) * kBlock; ++i) {
        p += a[size_t(i)] * w[i];
        f += flipWeight[size_t(i)] * std::fabs(w[i]);
      }
      double ws = w2.scale(e, h, b * kBlock);
      double term = p * double(ref.actScale[size_t(b)]) * ws;
      sum += term;
      sumAbs += std::fabs(term);
      flip += f * ws;
    }
    ref.partial[size_t(h)] = sum;
    ref.partialTolerance[size_t(h)] =
        flip + double(iBlocks + 4) * kU * (sumAbs + flip);
  }
  return ref;
}

/// Counts of a comparison against the reference.
struct Agreement {
  int64_t n = 0, exact = 0, bad = 0;
  double worst = 0; // max |got - expected| / tolerance
  void add(double got, double expected, double tolerance,
           const std::string &what, int64_t index) {
    double error = std::fabs(got - expected);
    ++n;
    exact += error == 0;
    if (tolerance > 0)
      worst = std::max(worst, error / tolerance);
    if (!(error <= tolerance)) {
      if (bad < 5)
        ADD_FAILURE() << what << "[" << index << "]: got " << got
                      << ", expected " << expected << " (tolerance "
                      << tolerance << ")";
      ++bad;
    }
  }
};

/// Expects the runtime's quantized act row (codes [I], scales [I/128]) to
/// lie within the reference's intervals; counts ambiguous elements.
struct ActAgreement {
  int64_t ambiguous = 0; // elements whose interval holds several codes
  int64_t differ = 0;    // codes other than the reference's (all ambiguous)
  int64_t bad = 0;       // codes or scales outside the reference's bounds
};

/// Expects the runtime's quantized act row (codes [I], scales [I/128]) to
/// lie within the reference's intervals, and counts.
void expectActRow(const uint8_t *codes, const float *scales,
                  const ExpertReference &ref, int64_t I, ActAgreement &count) {
  int64_t &bad = count.bad;
  for (int64_t i = 0; i < I; ++i) {
    count.ambiguous += ref.actLo[size_t(i)] != ref.actHi[size_t(i)];
    count.differ += codes[i] != ref.actCode[size_t(i)];
    double got = e4m3Value(codes[i]);
    bool ok = (codes[i] & 0x7f) != 0x7f &&
              e4m3Value(ref.actLo[size_t(i)]) <= got &&
              got <= e4m3Value(ref.actHi[size_t(i)]);
    if (!ok && bad++ < 5)
      ADD_FAILURE() << "act code [" << i << "] = " << int(codes[i])
                    << ", expected " << int(ref.actCode[size_t(i)])
                    << " (allowed " << int(ref.actLo[size_t(i)]) << ".."
                    << int(ref.actHi[size_t(i)]) << ")";
  }
  for (int64_t b = 0; b < I / kBlock; ++b) {
    double expected = ref.actScale[size_t(b)];
    if (!(std::fabs(scales[b] - expected) <=
          ref.actScaleTolerance[size_t(b)] * expected) &&
        bad++ < 5)
      ADD_FAILURE() << "act scale [" << b << "] = " << scales[b]
                    << ", expected " << expected;
  }
}

/// The hard bounds are only meaningful if they rarely need the code
/// intervals: an interval holds two codes only where the act lies within its
/// fp32 error bound (~1e-5 of it with the cancellation of these sums) of a
/// rounding midpoint, which these data do for 0.02-0.2% of the elements; 1%
/// would mean a reference too blunt to test anything. Outputs: the runtime
/// sits a few fp32 ulps from the reference before each bf16 rounding (a
/// flip ~1e-5 / 2^-8 likely) and the rare differing act code moves one
/// token's row, so nearly every output equals the reference exactly.
void expectSharpReference(const ActAgreement &act, const Agreement &out,
                          int64_t actElements) {
  EXPECT_LE(act.ambiguous * 100, actElements)
      << act.ambiguous << " of " << actElements << " act codes ambiguous";
  EXPECT_GE(out.exact * 100, out.n * 95)
      << out.exact << " of " << out.n << " outputs exact";
}

/// x as e4m3 values (the reference's input rows).
std::vector<double> valuesOf(const std::vector<uint8_t> &codes) {
  std::vector<double> v(codes.size());
  for (size_t i = 0; i < codes.size(); ++i)
    v[i] = e4m3Value(codes[i]);
  return v;
}

//===----------------------------------------------------------------------===//
// routed_experts
//===----------------------------------------------------------------------===//

struct RoutedFp8Problem {
  int64_t T, H, E, K, I;
  std::mt19937_64 rng;
  Buffer hidden;
  Fp8Weight w13, w2;
  std::vector<int32_t> ids;
  std::vector<float> weights;

  RoutedFp8Problem(int64_t T, int64_t H, int64_t E, int64_t K, int64_t I,
                   uint64_t seed)
      : T(T), H(H), E(E), K(K), I(I), rng(seed),
        hidden(randomFp8Hidden(T, H, rng)),
        w13(E, 2 * I, H, 1.0 / std::sqrt(double(H)), rng),
        w2(E, H, I, 1.0 / std::sqrt(double(I)), rng) {
    // Expert 2 never receives a token (E = 5); ids may repeat within a
    // token; weights in [0, 1).
    const int32_t experts[] = {0, 1, 3, 4};
    std::uniform_int_distribution<int> pick(0, 3);
    std::uniform_real_distribution<float> weight(0.0f, 1.0f);
    for (int64_t p = 0; p < T * K; ++p) {
      ids.push_back(experts[pick(rng)]);
      weights.push_back(weight(rng));
    }
  }

  moert_status run(const void *in, void *out, void *workspace = nullptr) {
    return moert_routed_experts(in, ids.data(), weights.data(), w13.q.data(),
                                w2.q.data(), w13.scales.data(),
                                w2.scales.data(), out, workspace, MOERT_BF16,
                                MOERT_F8E4M3, T, H, E, K, I);
  }
  int64_t workspaceBytes() const {
    return moert_routed_experts_workspace_bytes(T, H, E, K, I, MOERT_BF16,
                                                MOERT_F8E4M3);
  }
};

struct Shape {
  int64_t T, H, E, K, I;
};

class Fp8RoutedTest : public RuntimeTest,
                      public ::testing::WithParamInterface<Shape> {};

TEST_P(Fp8RoutedTest, MatchesReference) {
  const Shape s = GetParam();
  const int64_t T = s.T, H = s.H, E = s.E, K = s.K, I = s.I;
  RoutedFp8Problem problem(T, H, E, K, I, 1000 + uint64_t(T * H + I));

  // Our own workspace, poisoned, so its contents can be inspected.
  const int64_t bytes = problem.workspaceBytes();
  const int64_t C = std::min<int64_t>(H, MOERT_COMBINE_COLUMNS);
  ASSERT_EQ(bytes, T * (H + 4 * (H / kBlock)) +
                       T * K * (8 + I + 4 * (I / kBlock) + 2 * C) +
                       (E + 1) * 4 + 8 * 256);
  void *workspace = moert_alloc(bytes);
  ASSERT_NE(workspace, nullptr);
  std::memset(workspace, 0x7f, size_t(bytes));
  Buffer out(MOERT_BF16, T * H);
  out.poison();
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(problem.run(problem.hidden.data(), out.data(), workspace),
            MOERT_SUCCESS)
      << moert_last_error();
  double opMs = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  moert::RoutedFp8WorkspaceLayout ws =
      moert::carveRoutedFp8Workspace(workspace, T, H, E, K, I);
  EXPECT_LE(ws.bytes, bytes);

  // Rule 1, bit for bit: the quantized hidden and its scales.
  Quantized hq = quantizeRule1(asFloats(problem.hidden), T, H);
  EXPECT_EQ(std::memcmp(ws.hiddenQ, hq.q.data(), size_t(T * H)), 0)
      << "the quantized hidden differs from rule 1";
  EXPECT_EQ(std::memcmp(ws.hiddenScales, hq.scales.data(),
                        size_t(T * (H / kBlock) * 4)),
            0)
      << "the hidden scales differ from rule 1";
  int64_t codeMismatches = 0;
  for (int64_t i = 0; i < T * H; ++i)
    if (ws.hiddenQ[i] != hq.q[size_t(i)] && codeMismatches++ < 5)
      ADD_FAILURE() << "hidden code [" << i / H << ", " << i % H
                    << "] = " << int(ws.hiddenQ[i]) << ", rule 1 gives "
                    << int(hq.q[size_t(i)]);

  // Routing metadata: the pairs sorted by expert, stable; the inverse.
  std::vector<int32_t> sorted(size_t(T * K));
  std::iota(sorted.begin(), sorted.end(), 0);
  std::stable_sort(sorted.begin(), sorted.end(), [&](int32_t a, int32_t b) {
    return problem.ids[size_t(a)] < problem.ids[size_t(b)];
  });
  for (int64_t p = 0; p < T * K; ++p) {
    ASSERT_EQ(ws.sortedPairs[p], sorted[size_t(p)]) << p;
    ASSERT_EQ(ws.pairPositions[sorted[size_t(p)]], p) << p;
  }
  for (int64_t e = 0, offset = 0; e <= E; ++e) {
    EXPECT_EQ(ws.expertOffsets[e], offset) << e;
    offset += std::count(problem.ids.begin(), problem.ids.end(), int32_t(e));
  }

  // The reference, pair by pair; each pair's act row in the workspace.
  std::vector<double> x = valuesOf(hq.q);
  Agreement agreement;
  ActAgreement act;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> sum(static_cast<size_t>(H)),
        sumAbs(static_cast<size_t>(H)), tolerance(static_cast<size_t>(H));
    for (int64_t j = 0; j < K; ++j) {
      const int64_t p = t * K + j, e = problem.ids[size_t(p)];
      const double w = problem.weights[size_t(p)];
      ExpertReference ref =
          referenceExpert(&x[size_t(t * H)], &hq.scales[size_t(t * (H / kBlock))],
                          problem.w13, problem.w2, e, H, I);
      const int64_t position = ws.pairPositions[p];
      expectActRow(ws.actQ + position * I,
                   ws.actScales + position * (I / kBlock), ref, I, act);
      for (int64_t h = 0; h < H; ++h) {
        // The partial rounded to bf16, and the runtime's distance from it.
        double partial = ref.partial[size_t(h)];
        double partialTolerance = ref.partialTolerance[size_t(h)];
        double rounded = roundTo(partial, MOERT_BF16);
        double roundedTolerance =
            partialTolerance +
            kBf16Ulp * (std::fabs(partial) + partialTolerance);
        sum[size_t(h)] += w * rounded;
        sumAbs[size_t(h)] += std::fabs(w * rounded);
        tolerance[size_t(h)] += std::fabs(w) * roundedTolerance;
      }
    }
    // The combine: K fp32 products and sums, then one bf16 rounding.
    for (int64_t h = 0; h < H; ++h) {
      double combined = tolerance[size_t(h)] + 2 * K * kU * sumAbs[size_t(h)];
      double expected = roundTo(sum[size_t(h)], MOERT_BF16);
      agreement.add(out.get(t * H + h), expected,
                    combined + kBf16Ulp * (std::fabs(sum[size_t(h)]) + combined),
                    "routed output", t * H + h);
    }
  }
  EXPECT_EQ(act.bad, 0);
  EXPECT_EQ(agreement.bad, 0) << agreement.bad << " of " << agreement.n;
  expectSharpReference(act, agreement, T * K * I);
  std::printf("[fp8 routed T=%lld H=%lld I=%lld] op %.1f ms; %lld/%lld "
              "outputs exact, worst error/tolerance %.3g; act codes: %lld "
              "ambiguous, %lld differ, of %lld\n",
              (long long)T, (long long)H, (long long)I, opMs,
              (long long)agreement.exact, (long long)agreement.n,
              agreement.worst, (long long)act.ambiguous,
              (long long)act.differ, (long long)(T * K * I));
  moert_free(workspace);
  expectNoError();
}

TEST_P(Fp8RoutedTest, IsDeterministicAndInPlaceSafe) {
  const Shape s = GetParam();
  RoutedFp8Problem problem(s.T, s.H, s.E, s.K, s.I, 77 + uint64_t(s.T));
  Buffer first(MOERT_BF16, s.T * s.H), second(MOERT_BF16, s.T * s.H);
  first.poison();
  second.poison();
  ASSERT_EQ(problem.run(problem.hidden.data(), first.data()), MOERT_SUCCESS)
      << moert_last_error();
  ASSERT_EQ(problem.run(problem.hidden.data(), second.data()), MOERT_SUCCESS);
  EXPECT_TRUE(first.sameBytes(second));
  // In place: the same bytes as out of place.
  Buffer inout = problem.hidden;
  ASSERT_EQ(problem.run(inout.data(), inout.data()), MOERT_SUCCESS)
      << moert_last_error();
  EXPECT_TRUE(inout.sameBytes(first));
  // Not vacuous: the output is not the input.
  if (s.T > 0) {
    EXPECT_FALSE(first.sameBytes(problem.hidden));
  }
  expectNoError();
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Fp8RoutedTest,
    ::testing::Values(Shape{1, 256, 5, 3, 128}, Shape{37, 384, 5, 3, 256},
                      Shape{200, 256, 5, 3, 128},
                      // Two column blocks of the combine (512 + 128).
                      Shape{37, 640, 5, 3, 128}),
    [](const ::testing::TestParamInfo<Shape> &info) {
      const Shape &s = info.param;
      return "T" + std::to_string(s.T) + "_H" + std::to_string(s.H) + "_I" +
             std::to_string(s.I);
    });

TEST_F(RuntimeTest, Fp8RoutedExpertsWithNoTokens) {
  RoutedFp8Problem problem(0, 256, 5, 3, 128, 9);
  EXPECT_EQ(problem.run(nullptr, nullptr), MOERT_SUCCESS) << moert_last_error();
  expectNoError();
}

//===----------------------------------------------------------------------===//
// shared_experts
//===----------------------------------------------------------------------===//

struct SharedFp8Problem {
  int64_t T, H, I;
  std::mt19937_64 rng;
  Buffer hidden;
  Fp8Weight w13, w2;

  SharedFp8Problem(int64_t T, int64_t H, int64_t I, uint64_t seed)
      : T(T), H(H), I(I), rng(seed), hidden(randomFp8Hidden(T, H, rng)),
        w13(1, 2 * I, H, 1.0 / std::sqrt(double(H)), rng),
        w2(1, H, I, 1.0 / std::sqrt(double(I)), rng) {}

  moert_status run(const void *in, void *out, void *workspace = nullptr) {
    return moert_shared_experts(in, w13.q.data(), w2.q.data(),
                                w13.scales.data(), w2.scales.data(), out,
                                workspace, MOERT_BF16, MOERT_F8E4M3, T, H, I);
  }
};

TEST_F(RuntimeTest, Fp8SharedExpertsMatchReference) {
  struct SharedShape {
    int64_t T, H, I;
  };
  for (SharedShape s : {SharedShape{1, 256, 128}, SharedShape{37, 384, 256},
                        SharedShape{200, 256, 128}}) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << s.T << " H=" << s.H << " I=" << s.I);
    SharedFp8Problem problem(s.T, s.H, s.I, 500 + uint64_t(s.T));
    const int64_t bytes = moert_shared_experts_workspace_bytes(
        s.T, s.H, s.I, MOERT_BF16, MOERT_F8E4M3);
    ASSERT_EQ(bytes, s.T * (s.H + 4 * (s.H / kBlock) + s.I +
                            4 * (s.I / kBlock)) +
                         4 * 256);
    void *workspace = moert_alloc(bytes);
    ASSERT_NE(workspace, nullptr);
    std::memset(workspace, 0x7f, size_t(bytes));
    Buffer out(MOERT_BF16, s.T * s.H);
    out.poison();
    ASSERT_EQ(problem.run(problem.hidden.data(), out.data(), workspace),
              MOERT_SUCCESS)
        << moert_last_error();
    moert::SharedFp8WorkspaceLayout ws =
        moert::carveSharedFp8Workspace(workspace, s.T, s.H, s.I);
    EXPECT_LE(ws.bytes, bytes);

    Quantized hq = quantizeRule1(asFloats(problem.hidden), s.T, s.H);
    EXPECT_EQ(std::memcmp(ws.hiddenQ, hq.q.data(), size_t(s.T * s.H)), 0);
    EXPECT_EQ(std::memcmp(ws.hiddenScales, hq.scales.data(),
                          size_t(s.T * (s.H / kBlock) * 4)),
              0);

    std::vector<double> x = valuesOf(hq.q);
    Agreement agreement;
    ActAgreement act;
    for (int64_t t = 0; t < s.T; ++t) {
      ExpertReference ref = referenceExpert(
          &x[size_t(t * s.H)], &hq.scales[size_t(t * (s.H / kBlock))],
          problem.w13, problem.w2, 0, s.H, s.I);
      expectActRow(ws.actQ + t * s.I, ws.actScales + t * (s.I / kBlock), ref,
                   s.I, act);
      for (int64_t h = 0; h < s.H; ++h) {
        double partial = ref.partial[size_t(h)];
        double tolerance = ref.partialTolerance[size_t(h)];
        agreement.add(out.get(t * s.H + h), roundTo(partial, MOERT_BF16),
                      tolerance + kBf16Ulp * (std::fabs(partial) + tolerance),
                      "shared output", t * s.H + h);
      }
    }
    EXPECT_EQ(act.bad, 0);
    EXPECT_EQ(agreement.bad, 0) << agreement.bad << " of " << agreement.n;
    expectSharpReference(act, agreement, s.T * s.I);
    std::printf("[fp8 shared T=%lld H=%lld I=%lld] %lld/%lld outputs exact, "
                "worst error/tolerance %.3g; act codes: %lld ambiguous, %lld "
                "differ, of %lld\n",
                (long long)s.T, (long long)s.H, (long long)s.I,
                (long long)agreement.exact, (long long)agreement.n,
                agreement.worst, (long long)act.ambiguous,
                (long long)act.differ, (long long)(s.T * s.I));

    // Deterministic, and the same bytes in place.
    Buffer again(MOERT_BF16, s.T * s.H), inout = problem.hidden;
    again.poison();
    ASSERT_EQ(problem.run(problem.hidden.data(), again.data()), MOERT_SUCCESS);
    EXPECT_TRUE(again.sameBytes(out));
    ASSERT_EQ(problem.run(inout.data(), inout.data()), MOERT_SUCCESS)
        << moert_last_error();
    EXPECT_TRUE(inout.sameBytes(out));
    moert_free(workspace);
  }
  expectNoError();
}

//===----------------------------------------------------------------------===//
// Argument errors
//===----------------------------------------------------------------------===//

/// Expects INVALID_ARGUMENT with a message naming every one of `words`, then
/// clears the sticky error.
#define EXPECT_INVALID(call, ...)                                              \
  do {                                                                         \
    EXPECT_EQ((call), MOERT_ERROR_INVALID_ARGUMENT);                           \
    std::string message = moert_last_error();                                  \
    for (const char *word : {__VA_ARGS__})                                     \
      EXPECT_TRUE(contains(message, word))                                     \
          << "'" << word << "' not in: " << message;                           \
    moert_context_clear_error(ctx);                                            \
  } while (false)

TEST_F(RuntimeTest, Fp8ArgumentErrors) {
  RoutedFp8Problem routed(3, 256, 5, 3, 128, 1);
  Buffer out(MOERT_BF16, 3 * 256);
  out.poison();
  const Buffer untouched = out;
  const void *h = routed.hidden.data();
  const int32_t *ids = routed.ids.data();
  const float *tw = routed.weights.data();
  const void *w13 = routed.w13.q.data(), *w2 = routed.w2.q.data();
  const float *s13 = routed.w13.scales.data(), *s2 = routed.w2.scales.data();

  // fp8 weights without their scales.
  EXPECT_INVALID(moert_routed_experts(h, ids, tw, w13, w2, nullptr, s2,
                                      out.data(), nullptr, MOERT_BF16,
                                      MOERT_F8E4M3, 3, 256, 5, 3, 128),
                 "moert_routed_experts", "'w13_scale'", "f8E4M3FN");
  EXPECT_INVALID(moert_routed_experts(h, ids, tw, w13, w2, s13, nullptr,
                                      out.data(), nullptr, MOERT_BF16,
                                      MOERT_F8E4M3, 3, 256, 5, 3, 128),
                 "moert_routed_experts", "'w2_scale'");
  // H = 200 and I = 100 are not multiples of the 128 block.
  EXPECT_INVALID(moert_routed_experts(h, ids, tw, w13, w2, s13, s2,
                                      out.data(), nullptr, MOERT_BF16,
                                      MOERT_F8E4M3, 3, 200, 5, 3, 128),
                 "moert_routed_experts", "'w13_scale'", "(200)",
                 "multiple of 128");
  EXPECT_INVALID(moert_routed_experts(h, ids, tw, w13, w2, s13, s2,
                                      out.data(), nullptr, MOERT_BF16,
                                      MOERT_F8E4M3, 3, 256, 5, 3, 100),
                 "moert_routed_experts", "(100)", "multiple of 128");
  // fp8 weights need a bf16 hidden.
  EXPECT_INVALID(moert_routed_experts(h, ids, tw, w13, w2, s13, s2,
                                      out.data(), nullptr, MOERT_F16,
                                      MOERT_F8E4M3, 3, 256, 5, 3, 128),
                 "moert_routed_experts", "'hidden'", "bf16");
  EXPECT_TRUE(out.sameBytes(untouched));

  // An id outside [0, E): rejected before anything is written, in place or
  // not.
  routed.ids[4] = 5;
  EXPECT_INVALID(routed.run(h, out.data()), "moert_routed_experts",
                 "topk_ids[1, 1] = 5");
  EXPECT_TRUE(out.sameBytes(untouched));
  Buffer inout = routed.hidden;
  routed.ids[4] = -1;
  EXPECT_INVALID(routed.run(inout.data(), inout.data()), "topk_ids[1, 1] = -1");
  EXPECT_TRUE(inout.sameBytes(routed.hidden));

  // The shared op: missing scales, H not a multiple of 128.
  SharedFp8Problem shared(3, 256, 128, 2);
  EXPECT_INVALID(moert_shared_experts(shared.hidden.data(), shared.w13.q.data(),
                                      shared.w2.q.data(),
                                      shared.w13.scales.data(), nullptr,
                                      out.data(), nullptr, MOERT_BF16,
                                      MOERT_F8E4M3, 3, 256, 128),
                 "moert_shared_experts", "'w2_scale'", "f8E4M3FN");
  EXPECT_INVALID(moert_shared_experts(shared.hidden.data(), shared.w13.q.data(),
                                      shared.w2.q.data(),
                                      shared.w13.scales.data(),
                                      shared.w2.scales.data(), out.data(),
                                      nullptr, MOERT_BF16, MOERT_F8E4M3, 3,
                                      200, 128),
                 "moert_shared_experts", "(200)", "multiple of 128");
  EXPECT_TRUE(out.sameBytes(untouched));
  expectNoError();
}

} // namespace
