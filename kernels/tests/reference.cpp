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
    double sum = 0;
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
      sum += score[best];
    }
    for (int j = 0; j < p.k; ++j) {
      double w = score[ids[t * p.k + j]];
      if (p.renormalize)
        w /= sum;
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

} // namespace ref
} // namespace moek
