//===- test_fp8.cpp - Numerics tests of the fp8 expert kernels ------------===//
//
// routedExpertsFp8, sharedExpertsFp8 and quantizeTokenGroupsFp8 against the
// CPU reading of the fp8 contract (moe_kernels.h; reference.cpp), with the
// error model below. Registered into moe-kernels-test by registerFp8Tests.
//
//===----------------------------------------------------------------------===//
#include "harness.h"

#include "moe-runtime/WorkspaceLayout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace moek::test {
namespace {

//===--- fp8 experts and quantization ---------------------------------------===//
//
// Quantization (rule 1) is checked bit for bit. The expert ops are checked
// in three layers, each against the CPU reading of the contract:
//   act    : the GPU's quantized act (from the workspace) against the
//            reference's fp32 act: every scale within kFp8ScaleTol, every
//            dequantized code within half an e4m3 step (its rounding) plus
//            kFp8ActTol of the group's amax. The slack is the tensor cores'
//            fp8 sum: Hopper adds e4m3 products with ~14 significant bits
//            (DeepSeek-V3 report, 3.3.2; why the contract promotes every
//            128), so P_b and act differ from exact sums by a few 1e-4 of
//            their magnitude. Seen on an H100 (3 seeds, every case here):
//            scales <= 7.9e-4 apart, act errors <= 4.3e-4 of the amax, ~1%
//            of the codes moved by a step or, for values small against their
//            group's scale, a few steps.
//   down   : the GPU output against the reference's down + combine run on
//            the GPU's own act: the bf16 path's error model (a partial or
//            output bf16 flip of one ulp), so its tolerances.
//   output : against the reference end to end, where the act code changes
//            above dominate (seen: relL2 <= 6.3e-3, single elements up to
//            0.26 rms where a moved code meets a large w2 value): kFp8OutL2
//            on relL2 and kFp8OutRel |ref| + kFp8OutRms rms(ref) per element.
//            A wrong scale, block or row moves relL2 by >= 1e-1.
// Plus: determinism, in place == out of place, every config variant gives
// the same bytes (the per-element arithmetic does not depend on the tile).

constexpr double kFp8ScaleTol = 4e-3; // relative (5x the largest seen)
constexpr double kFp8ActTol = 4e-3;   // of the group's amax (9x)
constexpr double kFp8OutRel = 2e-2, kFp8OutRms = 0.5, kFp8OutL2 = 2e-2;

/// Signed ordinal of an e4m3 code: neighbouring values differ by one.
int e4m3Ordinal(uint8_t b) { return (b & 0x80) ? -(b & 0x7f) : (b & 0x7f); }

float bf16Neighbor(float v, int dir) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u += dir > 0 ? 0x10000u : -0x10000u; // bf16 values have 16 zero low bits
  std::memcpy(&v, &u, 4);
  return v;
}

/// Rows that exercise rule 1's corners, 128-column groups each: zeros,
/// exact ties and their bf16 neighbours under a power-of-two scale (amax =
/// 448 * 2^k makes s = 2^k exactly), huge, tiny (below the 1e-10 floor and
/// bf16 subnormals), constant groups, a lone value.
std::vector<float> specialFp8Rows(int64_t cols, int64_t &rows) {
  std::vector<float> mids; // midpoints of neighbouring e4m3 values
  for (int c = 0; c < 0x7e; ++c)
    mids.push_back(0.5f * (ref::fromE4m3(c) + ref::fromE4m3(c + 1)));
  std::vector<float> interesting;
  for (float m : mids) {
    interesting.push_back(m);
    interesting.push_back(bf16Neighbor(m, +1));
    if (m > 0.002f)
      interesting.push_back(bf16Neighbor(m, -1));
  }
  std::vector<float> out;
  std::uniform_int_distribution<int> coin(0, 1);
  auto group = [&](const std::function<float(int)> &value) {
    for (int i = 0; i < kFp8Block; ++i)
      out.push_back(value(i));
  };
  size_t next = 0;
  const int ks[] = {0, -12, 4, 20, -3};
  int kIndex = 0;
  while (out.size() % cols != 0 ||
         out.size() < std::max<size_t>(cols * 6, 64 * kFp8Block)) {
    const int64_t g = int64_t(out.size()) / kFp8Block;
    switch (g % 8) {
    case 0: group([](int) { return 0.f; }); break;
    case 1: group([](int i) { return i % 2 ? -3.3e38f : 1e38f; }); break;
    case 2: group([](int i) { return ref::roundTo(DType::BF16, 1e-12f * (i - 60)); }); break;
    case 3: group([](int i) { return i == 77 ? -2.5f : 0.f; }); break;
    case 4: group([](int i) { return i % 3 ? 9.2e-41f : -1e-38f; }); break;
    case 5: group([](int) { return -0.3125f; }); break;
    default: {
      const float p2 = std::ldexp(1.f, ks[kIndex++ % 5]);
      group([&](int i) {
        const float sign = coin(gRng) ? -1.f : 1.f;
        if (i == 0)
          return sign * 448.f * p2;
        return sign * interesting[next++ % interesting.size()] * p2;
      });
    }
    }
  }
  for (float &v : out)
    v = ref::roundTo(DType::BF16, v);
  rows = int64_t(out.size()) / cols;
  return out;
}

void testQuantizeFp8(const std::string &label, int64_t rows, int64_t cols,
                     bool special) {
  std::vector<float> x;
  if (special) {
    x = specialFp8Rows(cols, rows);
  } else {
    std::normal_distribution<float> d(0.f, 1.f);
    std::uniform_real_distribution<float> e(-30.f, 30.f);
    x.resize(rows * cols);
    for (int64_t g = 0; g < rows * cols / kFp8Block; ++g) {
      const float scale = std::ldexp(1.f, int(e(gRng)));
      for (int i = 0; i < kFp8Block; ++i)
        x[g * kFp8Block + i] = ref::roundTo(DType::BF16, d(gRng) * scale);
    }
  }
  const std::string name = "quantize-fp8[" + label + " " +
                           std::to_string(rows) + "x" + std::to_string(cols) +
                           "]";
  std::vector<uint8_t> wantQ;
  std::vector<float> wantS;
  ref::quantizeFp8(x, rows, cols, wantQ, wantS);
  // The reference itself: each group's largest |x| encodes to +-448.
  size_t badMax = 0;
  for (int64_t g = 0; g < rows * cols / kFp8Block; ++g) {
    int64_t arg = g * kFp8Block;
    for (int64_t i = arg; i < (g + 1) * kFp8Block; ++i)
      if (std::fabs(x[i]) > std::fabs(x[arg]))
        arg = i;
    if (std::fabs(x[arg]) >= kFp8AmaxFloor && (wantQ[arg] & 0x7f) != 0x7e)
      ++badMax;
  }
  auto bx = ref::encode(x, DType::BF16);
  DevBuf dx(bx.size()), dq(rows * cols), ds(wantS.size() * 4);
  dx.upload(bx.data(), bx.size());
  dq.poison();
  ds.poison();
  cudaError_t err = finish(quantizeTokenGroupsFp8(dx.p, rows, cols, dq.p,
                                                  ds.as<float>(), 0));
  if (err == cudaErrorNotSupported) {
    skip(name, lastErrorMessage());
    return;
  }
  if (err != cudaSuccess) {
    report(false, name, std::string("error: ") + lastErrorMessage());
    return;
  }
  auto q = dq.download(rows * cols), sb = ds.download(wantS.size() * 4);
  size_t badQ = 0, badS = 0;
  std::string first;
  for (size_t i = 0; i < q.size(); ++i)
    if (q[i] != wantQ[i] && badQ++ == 0) {
      char buf[128];
      std::snprintf(buf, sizeof buf, " first: x=%a s=%a gpu=0x%02x ref=0x%02x",
                    x[i], wantS[i / kFp8Block], q[i], wantQ[i]);
      first = buf;
    }
  for (size_t g = 0; g < wantS.size(); ++g)
    badS += std::memcmp(&sb[4 * g], &wantS[g], 4) != 0;
  report(badQ == 0 && badS == 0 && badMax == 0, name,
         "code mismatches=" + std::to_string(badQ) + " scale mismatches=" +
             std::to_string(badS) + " amax not 448=" +
             std::to_string(badMax) + first);
}

/// Random e4m3 codes (N(0, 100) before rounding: saturates rarely) with a
/// random scale per 128 x 128 block around stddev / 100.
void randomFp8Matrix(int64_t count, int64_t n, int64_t k, float stddev,
                     std::vector<uint8_t> &q, std::vector<float> &scales) {
  std::normal_distribution<float> d(0.f, 100.f);
  std::uniform_real_distribution<float> f(-1.f, 1.f);
  q.resize(count * n * k);
  for (auto &b : q)
    b = ref::toE4m3(d(gRng));
  scales.resize(count * (n / kFp8Block) * (k / kFp8Block));
  for (auto &s : scales)
    s = stddev / 100.f * std::exp2(f(gRng));
}

/// bf16 tokens with a per-token magnitude (so hidden scales differ by row).
std::vector<float> randomTokens(int64_t T, int64_t H) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::uniform_real_distribution<float> f(-2.f, 2.f);
  std::vector<float> x(T * H);
  for (int64_t t = 0; t < T; ++t) {
    const float m = std::exp2(f(gRng));
    for (int64_t h = 0; h < H; ++h)
      x[t * H + h] = ref::roundTo(DType::BF16, d(gRng) * m);
  }
  return x;
}

/// Half the e4m3 step at code b (the rounding error of a code).
double e4m3HalfStep(uint8_t b) {
  const int e = (b >> 3) & 0xf;
  return std::ldexp(1.0, (e == 0 ? -9 : e - 10) - 1);
}

/// The GPU's act rows (from the workspace) against the reference's; rowOf
/// maps a pair to its act row, -1 for ignored pairs.
std::string checkFp8Act(const ref::Fp8Act &want, const uint8_t *q,
                        const float *scales, int64_t pairs, int64_t I,
                        const std::function<int64_t(int64_t)> &rowOf,
                        ref::Fp8Act &got, bool &ok) {
  const int64_t gi = I / kFp8Block;
  got.q.assign(pairs * I, 0);
  got.scales.assign(pairs * gi, 0.f);
  size_t flips = 0, codes = 0, bad = 0;
  double scaleErr = 0, actErr = 0; // max over groups / values
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t row = rowOf(p);
    if (row < 0)
      continue;
    std::copy(q + row * I, q + (row + 1) * I, &got.q[p * I]);
    std::copy(scales + row * gi, scales + (row + 1) * gi, &got.scales[p * gi]);
    for (int64_t g = 0; g < gi; ++g) {
      const double w = want.scales[p * gi + g], s = got.scales[p * gi + g];
      const double e = std::isfinite(s) ? std::fabs(s - w) / w : INFINITY;
      scaleErr = std::max(scaleErr, e);
      bad += !(e <= kFp8ScaleTol);
      const double amax = kE4m3Max * w;
      for (int64_t i = g * kFp8Block; i < (g + 1) * kFp8Block; ++i) {
        const uint8_t b = got.q[p * I + i];
        flips += b != want.q[p * I + i];
        // |dequantized - exact| less its own rounding, against the amax.
        const double d = std::fabs(ref::fromE4m3(b) * s - want.value[p * I + i]);
        const double over = std::max(0.0, d - e4m3HalfStep(b) * s) / amax;
        actErr = std::max(actErr, std::isfinite(d) ? over : INFINITY);
        bad += !(over <= kFp8ActTol);
      }
    }
    codes += I;
  }
  ok = bad == 0;
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "act: codes changed=%zu/%zu (%.2g) scale relerr=%.2g "
                "act err/amax=%.2g bad=%zu",
                flips, codes, codes ? double(flips) / codes : 0.0, scaleErr,
                actErr, bad);
  return buf;
}

/// compare() plus the largest error in units of rms(want).
std::string fp8OutText(const Cmp &c, const std::vector<float> &got,
                       const std::vector<float> &want) {
  double ss = 0, worst = 0;
  for (float w : want)
    ss += double(w) * w;
  const double rms = want.empty() ? 0 : std::sqrt(ss / want.size());
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::fabs(double(got[i]) - want[i]) / rms);
  char buf[80];
  std::snprintf(buf, sizeof buf, " rms=%.3g max|d|/rms=%.3g", rms, worst);
  return c.text() + buf;
}

struct Fp8Case {
  const char *label;
  int64_t T, H, E, K, I;
  std::vector<int> emptyExperts;
  bool invalidIds = false;
};

/// Config variants of the fp8 GEMMs (null: the heuristic's).
struct Fp8Variant {
  const char *name;
  Fp8GemmConfig gateUp, down;
  bool pdl;
};
std::vector<Fp8Variant> fp8Variants() {
  Fp8GemmConfig up, wide, narrow;
  wide.tileN = 256;
  wide.stages = fp8Stages(GemmOp::Down, 256);
  narrow.tileN = 128;
  narrow.stages = fp8Stages(GemmOp::Down, 128);
  Fp8GemmConfig upSkip = up, narrowSkip = narrow;
  upSkip.idleHalfSkip = upSkip.pdl = true;
  narrowSkip.idleHalfSkip = narrowSkip.pdl = true;
  return {{"n256", up, wide, false}, {"n128+skip+pdl", upSkip, narrowSkip, true}};
}

/// Runs `op(configs)` for the heuristic's configs and every variant, and
/// reports whether all give the bytes of the first run.
void checkFp8Variants(const std::string &name,
                      const std::function<cudaError_t(const KernelConfigs *)> &op,
                      const std::function<std::vector<uint8_t>()> &result,
                      const std::vector<uint8_t> &first) {
  for (const Fp8Variant &v : fp8Variants()) {
    LaunchConfig launch;
    launch.pdl = v.pdl;
    KernelConfigs c;
    c.fp8GateUp = &v.gateUp;
    c.fp8Down = &v.down;
    c.launch = &launch;
    cudaError_t err = op(&c);
    report(err == cudaSuccess && result() == first,
           name + " " + v.name + " == default (bits)",
           err == cudaSuccess ? "" : lastErrorMessage());
  }
}

void testRoutedFp8(const Fp8Case &rc) {
  const int64_t T = rc.T, H = rc.H, E = rc.E, K = rc.K, I = rc.I;
  char name[160];
  std::snprintf(name, sizeof name,
                "routed-fp8[%s T=%lld H=%lld E=%lld K=%lld I=%lld]", rc.label,
                (long long)T, (long long)H, (long long)E, (long long)K,
                (long long)I);
  auto x = randomTokens(T, H);
  ref::Fp8Weights w;
  randomFp8Matrix(E, 2 * I, H, 1.f / std::sqrt(float(H)), w.w13, w.w13Scale);
  randomFp8Matrix(E, H, I, 1.f / std::sqrt(float(I)), w.w2, w.w2Scale);
  std::vector<int> allowed;
  for (int e = 0; e < E; ++e)
    if (std::find(rc.emptyExperts.begin(), rc.emptyExperts.end(), e) ==
        rc.emptyExperts.end())
      allowed.push_back(e);
  std::vector<int32_t> ids(T * K);
  std::vector<float> wts(T * K);
  std::uniform_real_distribution<float> uw(0.05f, 1.f);
  std::uniform_int_distribution<int> coin(0, 99);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int> pool = allowed;
    std::shuffle(pool.begin(), pool.end(), gRng);
    for (int64_t j = 0; j < K; ++j) {
      ids[t * K + j] = pool[j % pool.size()];
      wts[t * K + j] = uw(gRng);
      if (rc.invalidIds && coin(gRng) < 10)
        ids[t * K + j] = -1;
    }
  }
  const ref::Fp8Act wantAct = ref::routedGateUpFp8(x, ids, w, T, H, E, K, I);
  const auto want = ref::routedDownFp8(wantAct, ids, wts, w, T, H, E, K, I);

  auto bx = ref::encode(x, DType::BF16);
  DevBuf dx(bx.size()), d13(w.w13.size()), d13s(w.w13Scale.size() * 4),
      d2(w.w2.size()), d2s(w.w2Scale.size() * 4), di(T * K * 4),
      dw(T * K * 4), dout(T * H * 2), dinplace(T * H * 2);
  dx.upload(bx.data(), bx.size());
  d13.upload(w.w13.data(), w.w13.size());
  d13s.upload(w.w13Scale.data(), w.w13Scale.size() * 4);
  d2.upload(w.w2.data(), w.w2.size());
  d2s.upload(w.w2Scale.data(), w.w2Scale.size() * 4);
  di.upload(ids.data(), ids.size() * 4);
  dw.upload(wts.data(), wts.size() * 4);
  const size_t wsBytes = routedExpertsFp8WorkspaceBytes(T, H, E, K, I);
  DevBuf ws(wsBytes);
  auto run = [&](const void *in, void *out, const KernelConfigs *c) {
    ws.poison();
    return finish(routedExpertsFp8(in, di.as<int32_t>(), dw.as<float>(),
                                   d13.p, d13s.as<float>(), d2.p,
                                   d2s.as<float>(), out, T, H, E, K, I, ws.p,
                                   wsBytes, 0, c));
  };
  dout.poison();
  cudaError_t err = run(dx.p, dout.p, nullptr);
  if (err == cudaErrorNotSupported) {
    skip(name, lastErrorMessage());
    return;
  }
  if (err != cudaSuccess) {
    report(false, name, std::string("error: ") + lastErrorMessage());
    std::exit(1); // a sticky device error makes every later test meaningless
  }
  const auto first = dout.download(T * H * 2);
  const auto wsHost = ws.download(wsBytes);
  const auto layout = moert::carveRoutedFp8Workspace(ws.p, T, H, E, K, I);
  auto at = [&](const void *p) {
    return wsHost.data() + (static_cast<const char *>(p) - ws.as<char>());
  };
  // The hidden's quantization, inside the op, bit for bit.
  std::vector<uint8_t> xq;
  std::vector<float> xs;
  ref::quantizeFp8(x, T, H, xq, xs);
  const bool hiddenOk =
      std::memcmp(at(layout.hiddenQ), xq.data(), xq.size()) == 0 &&
      std::memcmp(at(layout.hiddenScales), xs.data(), xs.size() * 4) == 0;
  report(hiddenOk, std::string(name) + " hidden quantization", "");
  std::vector<int32_t> inverse(T * K);
  std::memcpy(inverse.data(), at(layout.pairPositions), T * K * 4);
  ref::Fp8Act gotAct;
  bool actOk = false;
  const std::string actText = checkFp8Act(
      wantAct, at(layout.actQ), reinterpret_cast<const float *>(at(layout.actScales)),
      T * K, I, [&](int64_t p) -> int64_t { return inverse[p]; }, gotAct, actOk);
  report(actOk, std::string(name) + " act", actText);

  const auto got = ref::decode(first, DType::BF16);
  Cmp down = compare(got, ref::routedDownFp8(gotAct, ids, wts, w, T, H, E, K, I),
                     1e-2, kRmsTol);
  down.ok = down.ok && down.relL2 <= kRelL2Tol;
  report(down.ok, std::string(name) + " down+combine from the GPU's act",
         down.text());
  Cmp c = compare(got, want, kFp8OutRel, kFp8OutRms);
  c.ok = c.ok && c.relL2 <= kFp8OutL2;
  report(c.ok, std::string(name) + " output", fp8OutText(c, got, want));

  dout.poison();
  err = run(dx.p, dout.p, nullptr);
  report(err == cudaSuccess && dout.download(T * H * 2) == first,
         std::string(name) + " deterministic", "");
  dinplace.upload(bx.data(), bx.size());
  err = run(dinplace.p, dinplace.p, nullptr);
  report(err == cudaSuccess && dinplace.download(T * H * 2) == first,
         std::string(name) + " in-place==out-of-place", "");
  checkFp8Variants(
      name,
      [&](const KernelConfigs *c) {
        dout.poison();
        return run(dx.p, dout.p, c);
      },
      [&] { return dout.download(T * H * 2); }, first);
}

void testSharedFp8(int64_t T, int64_t H, int64_t I) {
  char name[128];
  std::snprintf(name, sizeof name, "shared-fp8[T=%lld H=%lld I=%lld]",
                (long long)T, (long long)H, (long long)I);
  auto x = randomTokens(T, H);
  ref::Fp8Weights w;
  randomFp8Matrix(1, 2 * I, H, 1.f / std::sqrt(float(H)), w.w13, w.w13Scale);
  randomFp8Matrix(1, H, I, 1.f / std::sqrt(float(I)), w.w2, w.w2Scale);
  const ref::Fp8Act wantAct = ref::sharedGateUpFp8(x, w, T, H, I);
  const auto want = ref::sharedDownFp8(wantAct, w, T, H, I);
  auto bx = ref::encode(x, DType::BF16);
  DevBuf dx(bx.size()), d13(w.w13.size()), d13s(w.w13Scale.size() * 4),
      d2(w.w2.size()), d2s(w.w2Scale.size() * 4), dout(T * H * 2),
      dinplace(T * H * 2);
  dx.upload(bx.data(), bx.size());
  d13.upload(w.w13.data(), w.w13.size());
  d13s.upload(w.w13Scale.data(), w.w13Scale.size() * 4);
  d2.upload(w.w2.data(), w.w2.size());
  d2s.upload(w.w2Scale.data(), w.w2Scale.size() * 4);
  const size_t wsBytes = sharedExpertsFp8WorkspaceBytes(T, H, I);
  DevBuf ws(wsBytes);
  auto run = [&](const void *in, void *out, const KernelConfigs *c) {
    ws.poison();
    return finish(sharedExpertsFp8(in, d13.p, d13s.as<float>(), d2.p,
                                   d2s.as<float>(), out, T, H, I, ws.p,
                                   wsBytes, 0, c));
  };
  dout.poison();
  cudaError_t err = run(dx.p, dout.p, nullptr);
  if (err == cudaErrorNotSupported) {
    skip(name, lastErrorMessage());
    return;
  }
  if (err != cudaSuccess) {
    report(false, name, std::string("error: ") + lastErrorMessage());
    std::exit(1);
  }
  const auto first = dout.download(T * H * 2);
  const auto wsHost = ws.download(wsBytes);
  const auto layout = moert::carveSharedFp8Workspace(ws.p, T, H, I);
  auto at = [&](const void *p) {
    return wsHost.data() + (static_cast<const char *>(p) - ws.as<char>());
  };
  ref::Fp8Act gotAct;
  bool actOk = false;
  const std::string actText = checkFp8Act(
      wantAct, at(layout.actQ), reinterpret_cast<const float *>(at(layout.actScales)),
      T, I, [](int64_t p) { return p; }, gotAct, actOk);
  report(actOk, std::string(name) + " act", actText);
  const auto got = ref::decode(first, DType::BF16);
  Cmp down = compare(got, ref::sharedDownFp8(gotAct, w, T, H, I), 1e-2, kRmsTol);
  down.ok = down.ok && down.relL2 <= kRelL2Tol;
  report(down.ok, std::string(name) + " down from the GPU's act", down.text());
  Cmp c = compare(got, want, kFp8OutRel, kFp8OutRms);
  c.ok = c.ok && c.relL2 <= kFp8OutL2;
  report(c.ok, std::string(name) + " output", fp8OutText(c, got, want));
  dout.poison();
  err = run(dx.p, dout.p, nullptr);
  report(err == cudaSuccess && dout.download(T * H * 2) == first,
         std::string(name) + " deterministic", "");
  dinplace.upload(bx.data(), bx.size());
  err = run(dinplace.p, dinplace.p, nullptr);
  report(err == cudaSuccess && dinplace.download(T * H * 2) == first,
         std::string(name) + " in-place==out-of-place", "");
  checkFp8Variants(
      name,
      [&](const KernelConfigs *c) {
        dout.poison();
        return run(dx.p, dout.p, c);
      },
      [&] { return dout.download(T * H * 2); }, first);
}

/// A config the kernel is not built for is refused before any launch.
void testFp8BadConfig() {
  Fp8GemmConfig narrowUp;
  narrowUp.tileN = 128;
  KernelConfigs c;
  c.fp8GateUp = &narrowUp;
  const int64_t T = 4, H = 256, I = 128;
  const size_t wsBytes = sharedExpertsFp8WorkspaceBytes(T, H, I);
  DevBuf x(T * H * 2), w13(2 * I * H), w2(H * I), s(4096), out(T * H * 2),
      ws(wsBytes);
  cudaError_t err = sharedExpertsFp8(x.p, w13.p, s.as<float>(), w2.p,
                                     s.as<float>(), out.p, T, H, I, ws.p,
                                     wsBytes, 0, &c);
  report(err == cudaErrorNotSupported, "fp8-config gate-up tile 128 refused",
         lastErrorMessage());
}

/// Host-only: argument checks, the device check, the workspace formulas and
/// the reference's e4m3 conversion.
void testFp8HostChecks() {
  void *p = reinterpret_cast<void *>(256);
  auto *ip = reinterpret_cast<int32_t *>(256);
  auto *fp = reinterpret_cast<float *>(256);
  const bool args =
      routedExpertsFp8(p, ip, fp, p, fp, p, fp, p, 4, 200, 8, 2, 128, p,
                       1 << 30, 0) == cudaErrorInvalidValue &&
      routedExpertsFp8(p, ip, fp, p, fp, p, fp, p, 4, 256, 8, 2, 200, p,
                       1 << 30, 0) == cudaErrorInvalidValue &&
      routedExpertsFp8(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                       nullptr, nullptr, 0, 256, 8, 2, 128, nullptr, 0,
                       0) == cudaSuccess &&
      routedExpertsFp8(p, ip, fp, p, fp, p, fp, nullptr, 4, 256, 8, 2, 128, p,
                       1 << 30, 0) == cudaErrorInvalidValue &&
      routedExpertsFp8(p, ip, fp, p, fp, p, fp, p, 4, 256, 8, 2, 128, p, 64,
                       0) == cudaErrorInvalidValue &&
      sharedExpertsFp8(p, p, fp, p, fp, p, 4, 200, 128, p, 1 << 30, 0) ==
          cudaErrorInvalidValue &&
      sharedExpertsFp8(p, p, fp, p, fp, p, 4, 256, 128, p, 64, 0) ==
          cudaErrorInvalidValue &&
      quantizeTokenGroupsFp8(p, 4, 200, p, fp, 0) == cudaErrorInvalidValue;
  report(args, "fp8 argument checks",
         "H or I not a multiple of 128, T = 0, null pointers, small workspace");

  DeviceProps ampere{108, 8, 0}, ada{128, 8, 9}, hopper{132, 9, 0},
      blackwell{148, 10, 0};
  const bool device = !fp8DeviceProblem(ampere).empty() &&
                      fp8DeviceProblem(ampere).find("8.9") != std::string::npos &&
                      !fp8DeviceProblem(ada).empty() &&
                      fp8DeviceProblem(hopper).empty() &&
                      !fp8DeviceProblem(blackwell).empty();
  report(device, "fp8 device check", fp8DeviceProblem(ampere));

  GemmShape big;
  big.op = GemmOp::GateUp;
  big.rows = 131072;
  big.groups = 256;
  big.columns = 512;
  const Fp8GemmConfig up = chooseFp8GemmConfig(big, hopper);
  big.op = GemmOp::Down;
  big.columns = 512;
  const Fp8GemmConfig down = chooseFp8GemmConfig(big, hopper);
  GemmShape tiny = big;
  tiny.rows = 16;
  const Fp8GemmConfig downTiny = chooseFp8GemmConfig(tiny, hopper);
  report(up.tileN == 256 && up.stages == fp8Stages(GemmOp::GateUp, 256) &&
             !up.pdl && down.tileN == 256 && down.stages == 3 &&
             downTiny.tileN == 128 && downTiny.idleHalfSkip && downTiny.pdl,
         "fp8 heuristic", describe(up) + " / " + describe(down) + " / " +
                              describe(downTiny));

  // Workspace: the carve fits the formula wherever the workspace starts,
  // the formula is linear in T and saturates instead of overflowing.
  bool ws = true;
  for (int64_t T : {0, 1, 7, 300, 16384})
    for (uintptr_t base : {uintptr_t(0x10000), uintptr_t(0x10001),
                           uintptr_t(0x100ff)}) {
      void *b = reinterpret_cast<void *>(base);
      const int64_t need = int64_t(routedExpertsFp8WorkspaceBytes(T, 7168, 256, 8, 512));
      const int64_t shared = int64_t(sharedExpertsFp8WorkspaceBytes(T, 7168, 512));
      auto r = moert::carveRoutedFp8Workspace(b, T, 7168, 256, 8, 512);
      auto s = moert::carveSharedFp8Workspace(b, T, 7168, 512);
      ws = ws && r.bytes <= need && need - r.bytes <= 8 * 256 &&
           s.bytes <= shared && shared - s.bytes <= 4 * 256 &&
           reinterpret_cast<uintptr_t>(r.actQ) % 256 == 0 &&
           reinterpret_cast<uintptr_t>(s.actScales) % 256 == 0;
    }
  const auto lin = moert_routed_experts_fp8_workspace(7168, 256, 8, 512);
  ws = ws && lin.per_token == 8 * (8 + 512 + 4 * 4 + 512 * 2) + 7168 + 56 * 4 &&
       lin.constant == 257 * 4 + 8 * 256 &&
       moert_linear_eval_checked(
           moert_routed_experts_fp8_workspace(INT64_MAX / 2, 8, 8, 128), 2) ==
           MOERT_SIZE_OVERFLOW;
  report(ws, "fp8 workspace formulas and carving", "");

  // The reference's e4m3: exact values round-trip, ties go to even codes,
  // saturation, subnormals, NaN.
  bool conv = true;
  for (int b = 0; b < 256; ++b)
    if ((b & 0x7f) != 0x7f)
      conv = conv && ref::toE4m3(ref::fromE4m3(b)) == b;
  conv = conv && ref::toE4m3(1.0625f) == 0x38 && ref::toE4m3(1.1875f) == 0x3a &&
         ref::toE4m3(432.f) == 0x7e && ref::toE4m3(1e9f) == 0x7e &&
         ref::toE4m3(-500.f) == 0xfe && ref::toE4m3(std::ldexp(1.f, -10)) == 0 &&
         ref::toE4m3(std::ldexp(3.f, -10)) == 0x02 &&
         ref::toE4m3(std::ldexp(15.f, -10)) == 0x08 &&
         ref::toE4m3(NAN) == 0x7f && ref::fromE4m3(0x7e) == 448.f &&
         ref::fromE4m3(0x01) == std::ldexp(1.f, -9);
  report(conv, "fp8 reference e4m3 conversion", "");
}

} // namespace

void registerFp8Tests(bool quick) {
  addTest("Fp8", "host_checks", testFp8HostChecks, /*needsDevice=*/false);
  auto quantize = [](const std::string &label, int64_t rows, int64_t cols,
                     bool special) {
    addTest("Fp8Quantize", label + "_" + std::to_string(cols),
            [=] { testQuantizeFp8(label, rows, cols, special); });
  };
  quantize("special", 0, 512, true);
  quantize("special", 0, 128, true);
  quantize("random", 37, 1024, false);
  quantize("random", 1, 128, false);
  if (!quick)
    quantize("random", 300, 7168, false);
  // DeepSeek-V3-like at small sizes (H/I = 14 there), plus the corners.
  std::vector<Fp8Case> fp8Cases = {
      {"ds-v3 small T=1", 1, 512, 8, 2, 256, {}},
      {"ds-v3 small T=7", 7, 512, 8, 2, 256, {}},
      {"ds-v3 small T=300", 300, 512, 8, 2, 256, {}},
      {"expert without tokens", 100, 512, 8, 2, 256, {3}},
      {"odd E", 50, 256, 3, 2, 128, {}},
      {"invalid ids", 64, 384, 16, 4, 128, {}, true},
      // 3 column blocks, the last 128 wide (a half-empty 256-wide tile).
      {"narrow last column block", 200, 1152, 4, 2, 384, {}},
      // ~512 rows per expert: whole 128-row tiles (the TMA-store epilogue).
      {"full tiles", 512, 512, 2, 2, 256, {}},
  };
  if (!quick) {
    fp8Cases.push_back({"ds-v3 dims", 96, 7168, 16, 8, 512, {5}});
    fp8Cases.push_back({"persistent, many tiles", 1024, 1024, 8, 8, 512, {}});
  }
  for (const Fp8Case &c : fp8Cases)
    addTest("RoutedFp8", c.label, [c] { testRoutedFp8(c); });
  auto sharedFp8 = [](int64_t T, int64_t H, int64_t I) {
    addTest("SharedFp8",
            "T" + std::to_string(T) + "_H" + std::to_string(H) + "_I" +
                std::to_string(I),
            [=] { testSharedFp8(T, H, I); });
  };
  sharedFp8(1, 256, 128);
  sharedFp8(77, 512, 256);
  sharedFp8(300, 1152, 384);
  if (!quick)
    sharedFp8(2048, 1024, 512);
  addTest("Fp8", "bad_config", testFp8BadConfig);
}

} // namespace moek::test
