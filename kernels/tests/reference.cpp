//===- reference.cpp - CPU reference of the moe ops ------------------------===//
#include "reference.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

namespace moek {
namespace ref {

static uint16_t floatToBf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fc0; // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

static float bf16BitsToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static uint16_t floatToHalfBits(float f) {
  __half h = __float2half_rn(f);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}

static float halfBitsToFloat(uint16_t b) {
  __half h;
  std::memcpy(&h, &b, 2);
  return __half2float(h);
}

float roundTo(DType t, float v) {
  switch (t) {
  case DType::BF16: return bf16BitsToFloat(floatToBf16Bits(v));
  case DType::F16: return halfBitsToFloat(floatToHalfBits(v));
  default: return v;
  }
}

std::vector<uint8_t> encode(const std::vector<float> &v, DType t) {
  std::vector<uint8_t> out(v.size() * dtypeBytes(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(&out[4 * i], &v[i], 4);
    } else {
      uint16_t b = t == DType::BF16 ? floatToBf16Bits(v[i]) : floatToHalfBits(v[i]);
      std::memcpy(&out[2 * i], &b, 2);
    }
  }
  return out;
}

std::vector<float> decode(const std::vector<uint8_t> &bytes, DType t) {
  size_t n = bytes.size() / dtypeBytes(t);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::F32) {
      std::memcpy(&out[i], &bytes[4 * i], 4);
    } else {
      uint16_t b;
      std::memcpy(&b, &bytes[2 * i], 2);
      out[i] = t == DType::BF16 ? bf16BitsToFloat(b) : halfBitsToFloat(b);
    }
  }
  return out;
}

void parallelFor(int64_t n, const std::function<void(int64_t)> &body) {
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  if (n < 2 || workers == 1) {
    for (int64_t i = 0; i < n; ++i)
      body(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (int64_t i = next++; i < n; i = next++)
        body(i);
    });
  for (auto &t : pool)
    t.join();
}

std::vector<float> gate(const std::vector<float> &hidden,
                        const std::vector<float> &w, int64_t T, int64_t H,
                        int64_t E) {
  std::vector<float> out(T * E);
  parallelFor(T, [&](int64_t t) {
    for (int64_t e = 0; e < E; ++e) {
      double s = 0;
      for (int64_t h = 0; h < H; ++h)
        s += double(hidden[t * H + h]) * double(w[e * H + h]);
      out[t * E + e] = static_cast<float>(s);
    }
  });
  return out;
}

void topk(const std::vector<float> &logits, const std::vector<float> *bias,
          int64_t T, int64_t E, const TopKParams &p, std::vector<int32_t> &ids,
          std::vector<float> &weights, std::vector<float> *keysOut) {
  ids.assign(T * p.k, -1);
  weights.assign(T * p.k, 0.f);
  if (keysOut)
    keysOut->assign(T * E, 0.f);
  for (int64_t t = 0; t < T; ++t) {
    const float *row = &logits[t * E];
    std::vector<float> score(E), key(E);
    if (p.scoring == Scoring::Softmax) {
      float m = -INFINITY;
      for (int64_t e = 0; e < E; ++e)
        m = std::max(m, row[e]);
      double s = 0;
      for (int64_t e = 0; e < E; ++e) {
        score[e] = std::exp(row[e] - m);
        s += score[e];
      }
      for (int64_t e = 0; e < E; ++e)
        score[e] = static_cast<float>(score[e] / s);
    } else {
      for (int64_t e = 0; e < E; ++e)
        score[e] = 1.0f / (1.0f + std::exp(-row[e]));
    }
    for (int64_t e = 0; e < E; ++e)
      key[e] = bias ? score[e] + (*bias)[e] : score[e];
    if (keysOut)
      std::copy(key.begin(), key.end(), keysOut->begin() + t * E);
    std::vector<bool> eligible(E, true);
    if (p.nGroup > 1) {
      int64_t gs = E / p.nGroup;
      std::vector<float> gv(p.nGroup);
      for (int g = 0; g < p.nGroup; ++g) {
        std::vector<float> v(key.begin() + g * gs, key.begin() + (g + 1) * gs);
        std::sort(v.begin(), v.end(), std::greater<float>());
        gv[g] = (p.scoring == Scoring::Softmax || gs < 2) ? v[0] : v[0] + v[1];
      }
      std::vector<bool> chosen(p.nGroup, false);
      for (int r = 0; r < p.topkGroup; ++r) {
        int best = -1;
        for (int g = 0; g < p.nGroup; ++g)
          if (!chosen[g] && (best < 0 || gv[g] > gv[best]))
            best = g;
        chosen[best] = true;
      }
      for (int64_t e = 0; e < E; ++e)
        eligible[e] = chosen[e / gs];
    }
    std::vector<bool> taken(E, false);
    for (int j = 0; j < p.k; ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        if (!eligible[e] || taken[e])
          continue;
        if (best < 0 || key[e] > key[best])
          best = e;
      }
      taken[best] = true;
      ids[t * p.k + j] = static_cast<int32_t>(best);
    }
    // Sigmoid weights in double: exact where the fp32 scores underflow.
    std::vector<double> exact(p.k);
    double exactSum = 0;
    for (int j = 0; j < p.k; ++j) {
      exact[j] = p.scoring == Scoring::Softmax
                     ? double(score[ids[t * p.k + j]])
                     : 1.0 / (1.0 + std::exp(-double(row[ids[t * p.k + j]])));
      exactSum += exact[j];
    }
    for (int j = 0; j < p.k; ++j) {
      double w = exact[j];
      if (p.renormalize)
        w /= exactSum;
      weights[t * p.k + j] = static_cast<float>(w * p.routedScalingFactor);
    }
  }
}

static float siluMul(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

std::vector<float> routedExperts(const std::vector<float> &hidden,
                                 const std::vector<int32_t> &ids,
                                 const std::vector<float> &weights,
                                 const std::vector<float> &w13,
                                 const std::vector<float> &w2, int64_t T,
                                 int64_t H, int64_t E, int64_t K, int64_t I,
                                 DType t) {
  std::vector<float> out(T * H);
  parallelFor(T, [&](int64_t tok) {
    std::vector<float> act(I);
    std::vector<float> acc(H, 0.f);
    const float *x = &hidden[tok * H];
    for (int64_t j = 0; j < K; ++j) {
      int32_t e = ids[tok * K + j];
      if (e < 0 || e >= E)
        continue;
      const float *wg = &w13[e * 2 * I * H];
      for (int64_t i = 0; i < I; ++i) {
        double g = 0, u = 0;
        for (int64_t h = 0; h < H; ++h) {
          g += double(x[h]) * double(wg[i * H + h]);
          u += double(x[h]) * double(wg[(I + i) * H + h]);
        }
        act[i] = roundTo(t, siluMul(static_cast<float>(g), static_cast<float>(u)));
      }
      const float w = weights[tok * K + j];
      const float *wd = &w2[e * H * I];
      for (int64_t h = 0; h < H; ++h) {
        double s = 0;
        for (int64_t i = 0; i < I; ++i)
          s += double(act[i]) * double(wd[h * I + i]);
        float partial = roundTo(t, static_cast<float>(s));
        acc[h] = acc[h] + w * partial; // no FMA (-ffp-contract=off)
      }
    }
    for (int64_t h = 0; h < H; ++h)
      out[tok * H + h] = roundTo(t, acc[h]);
  });
  return out;
}

std::vector<float> sharedExperts(const std::vector<float> &hidden,
                                 const std::vector<float> &w13,
                                 const std::vector<float> &w2, int64_t T,
                                 int64_t H, int64_t I, DType t) {
  std::vector<float> out(T * H);
  parallelFor(T, [&](int64_t tok) {
    std::vector<float> act(I);
    const float *x = &hidden[tok * H];
    for (int64_t i = 0; i < I; ++i) {
      double g = 0, u = 0;
      for (int64_t h = 0; h < H; ++h) {
        g += double(x[h]) * double(w13[i * H + h]);
        u += double(x[h]) * double(w13[(I + i) * H + h]);
      }
      act[i] = roundTo(t, siluMul(static_cast<float>(g), static_cast<float>(u)));
    }
    for (int64_t h = 0; h < H; ++h) {
      double s = 0;
      for (int64_t i = 0; i < I; ++i)
        s += double(act[i]) * double(w2[h * I + i]);
      out[tok * H + h] = roundTo(t, static_cast<float>(s));
    }
  });
  return out;
}

std::vector<float> add(const std::vector<float> &lhs,
                       const std::vector<float> &rhs, float scale, DType t) {
  std::vector<float> out(lhs.size());
  for (size_t i = 0; i < lhs.size(); ++i) {
    float scaled = scale * lhs[i];
    out[i] = roundTo(t, scaled + rhs[i]);
  }
  return out;
}

//===--- fp8 -------------------------------------------------------------------===//

uint8_t toE4m3(float v) {
  if (std::isnan(v))
    return 0x7f;
  const uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  const double a = std::fabs(double(v));
  // Largest finite 448 = 1.75 * 2^8 (0x7e); satfinite clamps beyond it.
  if (a >= 448.0)
    return sign | 0x7e;
  int e; // a = f * 2^e, f in [0.5, 1)
  std::frexp(a, &e);
  // Normal binades have exponents -6..8 (value 2^(e-1)); below 2^-6 the
  // subnormal quantum 2^-9 applies. Either way 3 mantissa bits: the quantum
  // of the binade of a is 2^(max(e - 1, -6) - 3).
  const int binade = std::max(e - 1, -6);
  const double quantum = std::ldexp(1.0, binade - 3);
  // Exact: a / quantum has at most 24 + 3 significant bits and rint rounds to
  // nearest even (the default mode).
  const double m = std::nearbyint(a / quantum);
  if (m == 0)
    return sign;
  const double q = m * quantum; // may be the next binade's first value
  if (q > 448.0)
    return sign | 0x7e;
  int qe;
  const double qf = std::frexp(q, &qe); // q = qf * 2^qe
  const int unbiased = qe - 1;
  if (unbiased < -6) // subnormal: q = mant * 2^-9
    return sign | static_cast<uint8_t>(std::lrint(q / std::ldexp(1.0, -9)));
  const int mant = static_cast<int>(std::lrint((qf * 2.0 - 1.0) * 8.0));
  return sign | static_cast<uint8_t>(((unbiased + 7) << 3) | mant);
}

float fromE4m3(uint8_t b) {
  const int exp = (b >> 3) & 0xf, mant = b & 7;
  if (exp == 0xf && mant == 7)
    return NAN;
  const double v = exp == 0 ? std::ldexp(double(mant), -9)
                            : std::ldexp(1.0 + mant / 8.0, exp - 7);
  return static_cast<float>((b & 0x80) ? -v : v);
}

void quantizeFp8(const std::vector<float> &x, int64_t rows, int64_t cols,
                 std::vector<uint8_t> &q, std::vector<float> &scales) {
  const int64_t groups = cols / kFp8Block;
  q.assign(rows * cols, 0);
  scales.assign(rows * groups, 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const float *a = &x[r * cols + g * kFp8Block];
      float amax = 0.f;
      for (int64_t i = 0; i < kFp8Block; ++i)
        amax = std::fmax(amax, std::fabs(a[i]));
      // fp32 IEEE divisions (SSE, no fast-math), as the contract says.
      const float s = std::fmax(amax, kFp8AmaxFloor) / kE4m3Max;
      scales[r * groups + g] = s;
      for (int64_t i = 0; i < kFp8Block; ++i)
        q[r * cols + g * kFp8Block + i] = toE4m3(a[i] / s);
    }
}

void quantizeWeightsFp8(const std::vector<float> &w, int64_t matrices,
                        int64_t n, int64_t k, std::vector<uint8_t> &q,
                        std::vector<float> &scales) {
  const int64_t bn = (n + kFp8Block - 1) / kFp8Block,
                bk = (k + kFp8Block - 1) / kFp8Block;
  q.assign(matrices * n * k, 0);
  scales.assign(matrices * bn * bk, 0.f);
  for (int64_t m = 0; m < matrices; ++m)
    for (int64_t i = 0; i < bn; ++i)
      for (int64_t j = 0; j < bk; ++j) {
        float amax = 0.f;
        for (int64_t r = i * kFp8Block; r < std::min(n, (i + 1) * kFp8Block);
             ++r)
          for (int64_t c = j * kFp8Block;
               c < std::min(k, (j + 1) * kFp8Block); ++c)
            amax = std::fmax(amax, std::fabs(w[(m * n + r) * k + c]));
        const float s = std::fmax(amax / kE4m3Max, std::ldexp(1.f, -20));
        scales[(m * bn + i) * bk + j] = s;
        for (int64_t r = i * kFp8Block; r < std::min(n, (i + 1) * kFp8Block);
             ++r)
          for (int64_t c = j * kFp8Block;
               c < std::min(k, (j + 1) * kFp8Block); ++c)
            q[(m * n + r) * k + c] = toE4m3(w[(m * n + r) * k + c] / s);
      }
}

namespace {

struct E4m3Table {
  float v[256];
  E4m3Table() {
    for (int i = 0; i < 256; ++i)
      v[i] = fromE4m3(static_cast<uint8_t>(i));
  }
};
const E4m3Table &e4m3Table() {
  static const E4m3Table table;
  return table;
}

/// sum_b P_b * (sa[b] * sw[b]) in double, P_b the exact sum of 128 e4m3
/// products (exact in double: 8-bit significands, exponents within 2^-18..
/// 2^17, 128 terms), the scale product one fp32 multiply.
float blockScaledDot(const uint8_t *a, const float *sa, const uint8_t *w,
                     const float *sw, int64_t k) {
  const float *tv = e4m3Table().v;
  double acc = 0;
  for (int64_t b = 0; b < k / kFp8Block; ++b) {
    double p = 0;
    for (int64_t i = b * kFp8Block; i < (b + 1) * kFp8Block; ++i)
      p += double(tv[a[i]]) * double(tv[w[i]]);
    const float scale = sa[b] * sw[b];
    acc += p * double(scale);
  }
  return static_cast<float>(acc);
}

/// act of one pair from its quantized hidden row (rules 2-3).
void gateUpRow(const uint8_t *xq, const float *xs, const Fp8Weights &w,
               int64_t e, int64_t H, int64_t I, float *value, uint8_t *q,
               float *scales) {
  const int64_t gh = H / kFp8Block, gi = I / kFp8Block;
  const uint8_t *w13 = &w.w13[e * 2 * I * H];
  const float *s13 = &w.w13Scale[e * (2 * I / kFp8Block) * gh];
  for (int64_t n = 0; n < I; ++n) {
    const float g = blockScaledDot(xq, xs, w13 + n * H,
                                   s13 + (n / kFp8Block) * gh, H);
    const float u = blockScaledDot(xq, xs, w13 + (I + n) * H,
                                   s13 + ((I + n) / kFp8Block) * gh, H);
    value[n] = siluMul(g, u);
  }
  std::vector<float> row(value, value + I);
  std::vector<uint8_t> rq;
  std::vector<float> rs;
  quantizeFp8(row, 1, I, rq, rs);
  std::copy(rq.begin(), rq.end(), q);
  std::copy(rs.begin(), rs.begin() + gi, scales);
}

/// bf16(down projection of one act row) for output columns [0, H).
void downRow(const uint8_t *aq, const float *as, const Fp8Weights &w,
             int64_t e, int64_t H, int64_t I, float *out) {
  const int64_t gi = I / kFp8Block;
  const uint8_t *w2 = &w.w2[e * H * I];
  const float *s2 = &w.w2Scale[e * (H / kFp8Block) * gi];
  for (int64_t h = 0; h < H; ++h)
    out[h] = roundTo(DType::BF16,
                     blockScaledDot(aq, as, w2 + h * I,
                                    s2 + (h / kFp8Block) * gi, I));
}

} // namespace

Fp8Act routedGateUpFp8(const std::vector<float> &hidden,
                       const std::vector<int32_t> &ids, const Fp8Weights &w,
                       int64_t T, int64_t H, int64_t E, int64_t K, int64_t I) {
  std::vector<uint8_t> xq;
  std::vector<float> xs;
  quantizeFp8(hidden, T, H, xq, xs); // once, as the kernels do
  const int64_t gh = H / kFp8Block, gi = I / kFp8Block;
  Fp8Act act;
  act.value.assign(T * K * I, 0.f);
  act.q.assign(T * K * I, 0);
  act.scales.assign(T * K * gi, 0.f);
  parallelFor(T * K, [&](int64_t p) {
    const int32_t e = ids[p];
    if (e < 0 || e >= E)
      return;
    const int64_t t = p / K;
    gateUpRow(&xq[t * H], &xs[t * gh], w, e, H, I, &act.value[p * I],
              &act.q[p * I], &act.scales[p * gi]);
  });
  return act;
}

std::vector<float> routedDownFp8(const Fp8Act &act,
                                 const std::vector<int32_t> &ids,
                                 const std::vector<float> &weights,
                                 const Fp8Weights &w, int64_t T, int64_t H,
                                 int64_t E, int64_t K, int64_t I) {
  const int64_t gi = I / kFp8Block;
  std::vector<float> out(T * H);
  parallelFor(T, [&](int64_t t) {
    std::vector<float> acc(H, 0.f), partial(H);
    for (int64_t j = 0; j < K; ++j) {
      const int64_t p = t * K + j;
      const int32_t e = ids[p];
      if (e < 0 || e >= E)
        continue;
      downRow(&act.q[p * I], &act.scales[p * gi], w, e, H, I, partial.data());
      const float wt = weights[p];
      for (int64_t h = 0; h < H; ++h)
        acc[h] = acc[h] + wt * partial[h]; // no FMA (-ffp-contract=off)
    }
    for (int64_t h = 0; h < H; ++h)
      out[t * H + h] = roundTo(DType::BF16, acc[h]);
  });
  return out;
}

Fp8Act sharedGateUpFp8(const std::vector<float> &hidden, const Fp8Weights &w,
                       int64_t T, int64_t H, int64_t I) {
  std::vector<int32_t> ids(T, 0);
  return routedGateUpFp8(hidden, ids, w, T, H, 1, 1, I);
}

std::vector<float> sharedDownFp8(const Fp8Act &act, const Fp8Weights &w,
                                 int64_t T, int64_t H, int64_t I) {
  const int64_t gi = I / kFp8Block;
  std::vector<float> out(T * H);
  parallelFor(T, [&](int64_t t) {
    downRow(&act.q[t * I], &act.scales[t * gi], w, 0, H, I, &out[t * H]);
  });
  return out;
}

} // namespace ref
} // namespace moek
