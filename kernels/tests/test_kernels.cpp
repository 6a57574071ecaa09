//===- test_kernels.cpp - Numerics tests of the moe CUDA kernels ----------===//
//
// Every launcher against the CPU reference (reference.cpp, double
// accumulation) on fresh random data, with outputs and workspaces poisoned
// (all bits set: NaN for every float type) before each run. Per op:
//   gate   : |d| <= 1e-3 |ref| + 1e-3 rms(ref)        (fp32 out, fp32 accum.)
//   topk   : ids equal except near-ties (<= 1% of tokens), weights 1e-5
//   routed : |d| <= 1e-2 |ref| + 4e-2 rms(ref) per element and relL2 <= 3e-3
//   shared : same as routed;  add: bit-exact against the reference
// plus: determinism (two runs, identical bytes), routed in place == out of
// place (identical bytes), odd sizes (T = 1, T and H not multiples of the
// tiles, experts with no tokens, invalid ids), every GEMM implementation.
// The fp8 ops (routedExpertsFp8, sharedExpertsFp8, quantizeTokenGroupsFp8)
// have their own section below, with its error model.
//
// GoogleTest, one test per op and case (GPU tests skip without a CUDA
// device; the argument checks need none). Besides the gtest flags:
//   moe-kernels-test [--quick] [--seed N] [--impls a,b]
//   --impls: GEMM paths to test among wgmma, mma, simt (default all); the
//   wgmma path runs three times, each with a tuning table over the default
//   configs: 128x256 tiles, the same with the scalar down epilogue, and
//   128x128 tiles with the decode-size switches (idle-half skip, PDL).
// Each test seeds its generator from the seed and its name, so a test run
// alone (--gtest_filter) sees the same data.
//===----------------------------------------------------------------------===//
#include "harness.h"

#include "moe-runtime/WorkspaceLayout.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace moek;
using namespace moek::test;

namespace {

using moert::contract::dtypeName;

/// A GEMM path under test: a tuning table over the default configs (the
/// format of docs/kernels.md), passed to the launchers per call.
struct Variant {
  const char *name;
  const char *tuning;
};
const Variant kWgmmaWide = {"wgmma-n256",
                            "[gemm]\nimpl = wgmma\ntile_n = 256\n"
                            "idle_half_skip = off\nhalf_a = off\npdl = off\n"
                            "[launch]\npdl = off\n"};
const Variant kWgmmaNarrow = {"wgmma-n128+skip+pdl",
                              "[gemm]\nimpl = wgmma\ntile_n = 128\n"
                              "idle_half_skip = on\nhalf_a = on\npdl = on\n"
                              "[launch routed shared]\npdl = on\n"};
// The down GEMM's full tiles staged with 32-bit stores instead of stmatrix,
// and its partial tiles stored straight from registers instead of staged:
// bit-identical by construction (same values, same places).
const Variant kWgmmaWideScalar = {
    "wgmma-n256+scalar-epilogue",
    "[gemm]\nimpl = wgmma\ntile_n = 256\nidle_half_skip = off\n"
    "half_a = off\npdl = off\n[gemm down]\nscalar_epilogue = on\n"
    "direct_partial_stores = on\n[launch]\npdl = off\n"};
const Variant kMma = {"mma", "[gemm]\nimpl = mma\n"};
const Variant kSimt = {"simt", "[gemm]\nimpl = simt\n"};

/// The per-call configs of a variant (tables parsed once, kept for the run).
const KernelConfigs *configsOf(const Variant &v) {
  static std::map<std::string, std::pair<TuningTable, KernelConfigs>> cache;
  auto it = cache.find(v.name);
  if (it == cache.end()) {
    TuningTable table;
    std::string error;
    if (!table.parse(v.tuning, error, v.name)) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    it = cache.emplace(v.name, std::make_pair(table, KernelConfigs())).first;
    it->second.second.tuning = &it->second.first;
  }
  return &it->second.second;
}

//===--- gate ----------------------------------------------------------------===//

void testGate(int64_t T, int64_t H, int64_t E, DType t, DType tw) {
  char name[96];
  std::snprintf(name, sizeof name, "gate[T=%lld H=%lld E=%lld %s x %s]",
                (long long)T, (long long)H, (long long)E, dtypeName(t),
                dtypeName(tw));
  auto x = randn(T * H, 1.f, t);
  auto w = randn(E * H, 0.02f, tw);
  auto want = ref::gate(x, w, T, H, E);
  DevBuf dx(x.size() * dtypeBytes(t)), dw(w.size() * dtypeBytes(tw)),
      dl(T * E * 4);
  auto bx = ref::encode(x, t), bw = ref::encode(w, tw);
  dx.upload(bx.data(), bx.size());
  dw.upload(bw.data(), bw.size());
  dl.poison();
  cudaError_t err =
      finish(gate(dx.p, t, dw.p, tw, dl.as<float>(), T, H, E, 0));
  if (err != cudaSuccess) {
    report(false, name, std::string("error: ") + lastErrorMessage());
    return;
  }
  auto got = ref::decode(dl.download(T * E * 4), DType::F32);
  Cmp c = compare(got, want, 1e-3, 1e-3);
  auto first = dl.download(T * E * 4);
  dl.poison();
  err = finish(gate(dx.p, t, dw.p, tw, dl.as<float>(), T, H, E, 0));
  bool same = err == cudaSuccess && dl.download(T * E * 4) == first;
  report(c.ok && same, name, c.text() + (same ? " deterministic" : " NONDETERMINISTIC"));
}

//===--- topk ----------------------------------------------------------------===//

void testTopk(const char *label, int64_t T, int64_t E, TopKParams p, bool bias,
              float shift) {
  std::string name = std::string("topk[") + label + "]";
  std::normal_distribution<float> d(shift, 2.f), db(0.f, 0.1f);
  std::vector<float> logits(T * E), b(E);
  for (auto &v : logits)
    v = d(gRng);
  for (auto &v : b)
    v = db(gRng);
  std::vector<int32_t> wantIds;
  std::vector<float> wantW;
  ref::topk(logits, bias ? &b : nullptr, T, E, p, wantIds, wantW);
  DevBuf dl(T * E * 4), db_(E * 4), di(T * p.k * 4), dw(T * p.k * 4);
  dl.upload(logits.data(), T * E * 4);
  db_.upload(b.data(), E * 4);
  di.poison();
  dw.poison();
  cudaError_t err = finish(topk(dl.as<float>(), bias ? db_.as<float>() : nullptr,
                                di.as<int32_t>(), dw.as<float>(), T, E, p, 0));
  if (err != cudaSuccess) {
    report(false, name, std::string("error: ") + lastErrorMessage());
    return;
  }
  auto rawIds = di.download(T * p.k * 4), rawW = dw.download(T * p.k * 4);
  std::vector<int32_t> ids(T * p.k);
  std::vector<float> w(T * p.k);
  std::memcpy(ids.data(), rawIds.data(), rawIds.size());
  std::memcpy(w.data(), rawW.data(), rawW.size());
  int64_t mismatched = 0, badW = 0;
  for (int64_t t = 0; t < T; ++t) {
    bool same = std::equal(ids.begin() + t * p.k, ids.begin() + (t + 1) * p.k,
                           wantIds.begin() + t * p.k);
    if (!same) {
      ++mismatched;
      continue;
    }
    for (int j = 0; j < p.k; ++j) {
      float g = w[t * p.k + j], r = wantW[t * p.k + j];
      if (!(std::fabs(g - r) <= 1e-5f * std::fabs(r) + 1e-6f))
        ++badW;
    }
  }
  di.poison();
  dw.poison();
  err = finish(topk(dl.as<float>(), bias ? db_.as<float>() : nullptr,
                    di.as<int32_t>(), dw.as<float>(), T, E, p, 0));
  bool det = err == cudaSuccess && di.download(T * p.k * 4) == rawIds &&
             dw.download(T * p.k * 4) == rawW;
  bool ok = mismatched <= T / 100 + 1 && badW == 0 && det;
  char buf[160];
  std::snprintf(buf, sizeof buf, "near-tie id mismatches=%lld/%lld bad weights=%lld %s",
                (long long)mismatched, (long long)T, (long long)badW,
                det ? "deterministic" : "NONDETERMINISTIC");
  report(ok, name, buf);
}

//===--- routed experts ---------------------------------------------------===//

struct RoutedCase {
  const char *label;
  int64_t T, H, E, K, I;
  std::vector<int> emptyExperts; // experts that receive no token
  bool invalidIds = false;       // some ids are -1 (ignored pairs)
  bool skewed = false;           // slot 0 of most tokens goes to expert 0
};

void testRouted(const RoutedCase &rc, DType t,
                const std::vector<Variant> &impls) {
  const int64_t T = rc.T, H = rc.H, E = rc.E, K = rc.K, I = rc.I;
  const int B = dtypeBytes(t);
  auto x = randn(T * H, 1.f, t);
  auto w13 = randn(E * 2 * I * H, 1.f / std::sqrt(float(H)), t);
  auto w2 = randn(E * H * I, 1.f / std::sqrt(float(I)), t);
  std::vector<int> allowed;
  for (int e = 0; e < E; ++e)
    if (std::find(rc.emptyExperts.begin(), rc.emptyExperts.end(), e) ==
        rc.emptyExperts.end())
      allowed.push_back(e);
  std::vector<int32_t> ids(T * K);
  std::vector<float> wts(T * K);
  std::uniform_real_distribution<float> uw(0.05f, 1.f);
  std::uniform_int_distribution<int> coin(0, 99);
  for (int64_t tok = 0; tok < T; ++tok) {
    std::vector<int> pool = allowed;
    std::shuffle(pool.begin(), pool.end(), gRng);
    if (rc.skewed && coin(gRng) < 80) {
      auto it = std::find(pool.begin(), pool.end(), 0);
      if (it != pool.end())
        std::swap(*it, pool[0]);
    }
    for (int64_t j = 0; j < K; ++j) {
      ids[tok * K + j] = pool[j];
      wts[tok * K + j] = uw(gRng);
      if (rc.invalidIds && coin(gRng) < 10)
        ids[tok * K + j] = -1;
    }
  }
  auto want = ref::routedExperts(x, ids, wts, w13, w2, T, H, E, K, I, t);

  auto bx = ref::encode(x, t), b13 = ref::encode(w13, t), b2 = ref::encode(w2, t);
  DevBuf dx(bx.size()), d13(b13.size()), d2(b2.size()), di(T * K * 4),
      dw(T * K * 4), dout(T * H * B), dinplace(T * H * B);
  dx.upload(bx.data(), bx.size());
  d13.upload(b13.data(), b13.size());
  d2.upload(b2.data(), b2.size());
  di.upload(ids.data(), ids.size() * 4);
  dw.upload(wts.data(), wts.size() * 4);
  const size_t wsBytes = routedExpertsWorkspaceBytes(T, H, E, K, I, t);
  DevBuf ws(wsBytes);
  std::map<std::string, std::vector<uint8_t>> outputs; // by variant

  for (const Variant &impl : impls) {
    char name[160];
    std::snprintf(name, sizeof name,
                  "routed[%s T=%lld H=%lld E=%lld K=%lld I=%lld %s %s]",
                  rc.label, (long long)T, (long long)H, (long long)E,
                  (long long)K, (long long)I, dtypeName(t), impl.name);
    const KernelConfigs *configs = configsOf(impl);
    auto run = [&](const void *in, void *out) {
      ws.poison();
      return finish(routedExperts(in, di.as<int32_t>(), dw.as<float>(), d13.p,
                                  d2.p, out, T, H, E, K, I, t, ws.p, wsBytes, 0,
                                  configs));
    };
    dout.poison();
    cudaError_t err = run(dx.p, dout.p);
    if (err == cudaErrorNotSupported) {
      skip(name, lastErrorMessage());
      continue;
    }
    if (err != cudaSuccess) {
      report(false, name, std::string("error: ") + lastErrorMessage());
      std::exit(1); // a sticky device error makes every later test meaningless
    }
    auto first = dout.download(T * H * B);
    outputs[impl.name] = first;
    Cmp c = compare(ref::decode(first, t), want, 1e-2, kRmsTol);
    c.ok = c.ok && c.relL2 <= kRelL2Tol;
    report(c.ok, name, c.text());

    dout.poison();
    err = run(dx.p, dout.p);
    report(err == cudaSuccess && dout.download(T * H * B) == first,
           std::string(name) + " deterministic", "");

    dinplace.upload(bx.data(), bx.size());
    err = run(dinplace.p, dinplace.p);
    report(err == cudaSuccess && dinplace.download(T * H * B) == first,
           std::string(name) + " in-place==out-of-place", "");
  }
  if (outputs.count(kWgmmaWide.name) && outputs.count(kWgmmaWideScalar.name))
    report(outputs[kWgmmaWide.name] == outputs[kWgmmaWideScalar.name],
           std::string("routed[") + rc.label + " " + dtypeName(t) + "] " +
               kWgmmaWideScalar.name + " == " + kWgmmaWide.name + " (bits)",
           "");
}

//===--- shared experts ---------------------------------------------------===//

void testShared(int64_t T, int64_t H, int64_t I, DType t,
                const std::vector<Variant> &impls) {
  const int B = dtypeBytes(t);
  auto x = randn(T * H, 1.f, t);
  auto w13 = randn(2 * I * H, 1.f / std::sqrt(float(H)), t);
  auto w2 = randn(H * I, 1.f / std::sqrt(float(I)), t);
  auto want = ref::sharedExperts(x, w13, w2, T, H, I, t);
  auto bx = ref::encode(x, t), b13 = ref::encode(w13, t), b2 = ref::encode(w2, t);
  DevBuf dx(bx.size()), d13(b13.size()), d2(b2.size()), dout(T * H * B);
  dx.upload(bx.data(), bx.size());
  d13.upload(b13.data(), b13.size());
  d2.upload(b2.data(), b2.size());
  const size_t wsBytes = sharedExpertsWorkspaceBytes(T, I, t);
  DevBuf ws(wsBytes);
  for (const Variant &impl : impls) {
    char name[128];
    std::snprintf(name, sizeof name, "shared[T=%lld H=%lld I=%lld %s %s]",
                  (long long)T, (long long)H, (long long)I, dtypeName(t),
                  impl.name);
    const KernelConfigs *configs = configsOf(impl);
    auto run = [&]() {
      ws.poison();
      dout.poison();
      return finish(sharedExperts(dx.p, d13.p, d2.p, dout.p, T, H, I, t, ws.p,
                                  wsBytes, 0, configs));
    };
    cudaError_t err = run();
    if (err == cudaErrorNotSupported) {
      skip(name, lastErrorMessage());
      continue;
    }
    if (err != cudaSuccess) {
      report(false, name, std::string("error: ") + lastErrorMessage());
      std::exit(1);
    }
    auto first = dout.download(T * H * B);
    Cmp c = compare(ref::decode(first, t), want, 1e-2, kRmsTol);
    c.ok = c.ok && c.relL2 <= kRelL2Tol;
    err = run();
    bool det = err == cudaSuccess && dout.download(T * H * B) == first;
    report(c.ok && det, name, c.text() + (det ? " deterministic" : " NONDETERMINISTIC"));
  }
}

//===--- add ----------------------------------------------------------------===//

void testAdd(int64_t n, float scale, DType t, bool inPlace) {
  char name[96];
  std::snprintf(name, sizeof name, "add[n=%lld scale=%g %s%s]", (long long)n,
                scale, dtypeName(t), inPlace ? " in-place" : "");
  const int B = dtypeBytes(t);
  auto a = randn(n, 1.f, t), b = randn(n, 1.f, t);
  auto want = ref::add(a, b, scale, t);
  auto ba = ref::encode(a, t), bb = ref::encode(b, t);
  DevBuf da(n * B), db(n * B), dout(n * B);
  da.upload(ba.data(), ba.size());
  db.upload(bb.data(), bb.size());
  dout.poison();
  void *out = inPlace ? da.p : dout.p;
  cudaError_t err = finish(add(da.p, db.p, out, n, scale, t, 0));
  if (err != cudaSuccess) {
    report(false, name, std::string("error: ") + lastErrorMessage());
    return;
  }
  auto got = ref::decode(inPlace ? da.download(n * B) : dout.download(n * B), t);
  Cmp c = compare(got, want, 1e-2, 0);
  report(c.ok && c.maxAbs == 0, name, c.text());
}

//===--- argument checks (no device work) ----------------------------------===//

void testArgumentChecks() {
  float *p = nullptr;
  cudaError_t e1 = routedExperts(p, nullptr, nullptr, p, p, p, 4, 64, 8, 2, 64,
                                 DType::BF16, nullptr, 0, 0);
  cudaError_t e2 = routedExperts(reinterpret_cast<void *>(256), reinterpret_cast<int32_t *>(256),
                                 reinterpret_cast<float *>(256), reinterpret_cast<void *>(256),
                                 reinterpret_cast<void *>(256), reinterpret_cast<void *>(256), 4, 64,
                                 8, 2, 64, DType::BF16, reinterpret_cast<void *>(256), 16, 0);
  cudaError_t e3 = routedExperts(nullptr, nullptr, nullptr, nullptr, nullptr,
                                 nullptr, 0, 64, 8, 2, 64, DType::BF16, nullptr, 0, 0);
  TopKParams tp;
  tp.k = 9;
  cudaError_t e4 = topk(nullptr, nullptr, nullptr, nullptr, 4, 8, tp, 0);
  bool ok = e1 == cudaErrorInvalidValue && e2 == cudaErrorInvalidValue &&
            e3 == cudaSuccess && e4 == cudaErrorInvalidValue;
  report(ok, "argument-checks", "null pointers, small workspace, T=0, k > E");
}

void registerTests(const std::vector<Variant> &all,
                   const std::vector<Variant> &fast) {
  const bool quick = gQuick;
  addTest("ArgumentChecks", "no_device_work", testArgumentChecks,
          /*needsDevice=*/false);

  struct GateCase {
    int64_t T, H, E;
    DType t, tw;
  };
  std::vector<GateCase> gates = {{37, 200, 64, DType::BF16, DType::BF16},
                                 // mixed: tiled kernel
                                 {37, 200, 64, DType::BF16, DType::F32}};
  if (!quick) {
    gates.push_back({512, 7168, 256, DType::BF16, DType::BF16});
    gates.push_back({100, 512, 128, DType::F16, DType::F16});
    gates.push_back({100, 512, 128, DType::F32, DType::F32});
    gates.push_back({300, 1000, 96, DType::F16, DType::BF16});
  }
  for (const GateCase &g : gates)
    addTest("Gate",
            "T" + std::to_string(g.T) + "_H" + std::to_string(g.H) + "_E" +
                std::to_string(g.E) + "_" + dtypeName(g.t) + "_x_" +
                dtypeName(g.tw),
            [g] { testGate(g.T, g.H, g.E, g.t, g.tw); });

  TopKParams dsv3;
  dsv3.k = 8;
  dsv3.scoring = Scoring::Sigmoid;
  dsv3.nGroup = 8;
  dsv3.topkGroup = 4;
  dsv3.renormalize = true;
  dsv3.routedScalingFactor = 2.5f;
  TopKParams kimi = dsv3;
  kimi.nGroup = 1;
  kimi.topkGroup = 1;
  kimi.routedScalingFactor = 2.827f;
  TopKParams qwen;
  qwen.k = 8;
  qwen.scoring = Scoring::Softmax;
  qwen.renormalize = true;
  TopKParams softGrouped;
  softGrouped.k = 4;
  softGrouped.scoring = Scoring::Softmax;
  softGrouped.nGroup = 4;
  softGrouped.topkGroup = 2;
  softGrouped.renormalize = false;
  softGrouped.routedScalingFactor = 1.5f;
  const int64_t topkT = quick ? 33 : 2000;
  struct TopkCase {
    const char *label;
    int64_t E;
    TopKParams p;
    bool bias;
    float shift; // the logits' mean
  };
  const TopkCase topks[] = {
      {"deepseek-v3 sigmoid+bias grouped E=256", 256, dsv3, true, 0.f},
      {"kimi-k2 sigmoid+bias E=384", 384, kimi, true, 0.f},
      // Every sigmoid score underflows fp32: renormalized by exp(l - max l).
      {"kimi-k2 sigmoid+bias E=384 logits near -100", 384, kimi, true, -100.f},
      {"qwen3 softmax renorm E=128", 128, qwen, false, 0.f},
      {"softmax grouped no-renorm E=64", 64, softGrouped, false, 0.f}};
  for (const TopkCase &c : topks)
    addTest("TopK", c.label,
            [c, topkT] { testTopk(c.label, topkT, c.E, c.p, c.bias, c.shift); });

  std::vector<RoutedCase> cases = {
      {"T=1", 1, 256, 8, 2, 64, {}, false, false},
      {"odd+empty experts", 100, 200, 16, 4, 96, {3, 7, 8, 15}, false, false},
      {"odd H, 3 column blocks", 257, 1096, 8, 3, 136, {}, false, false},
      {"invalid ids", 64, 512, 32, 8, 128, {}, true, false},
      // Full 128-row, full-width down tiles (the staged TMA-store epilogue).
      {"full tiles", 256, 512, 2, 2, 128, {}, false, false},
  };
  if (!quick) {
    cases.push_back({"persistent, many tiles", 2048, 1024, 8, 8, 512, {}, false, false});
    cases.push_back({"skewed", 300, 768, 64, 6, 256, {5}, false, true});
    cases.push_back({"H % 8 != 0 (SIMT)", 33, 1100, 8, 2, 72, {}, false, false});
  }
  auto routed = [](const RoutedCase &c, DType t, std::vector<Variant> v) {
    addTest("Routed", std::string(c.label) + " " + dtypeName(t),
            [c, t, v] { testRouted(c, t, v); });
  };
  for (const auto &c : cases)
    routed(c, DType::BF16, quick ? fast : all);
  if (!quick) {
    routed(cases[1], DType::F16, all);
    routed(cases[2], DType::F16, fast);
    routed(cases[0], DType::F32, all);
    routed(cases[1], DType::F32, all);
  }

  auto shared = [](int64_t T, int64_t H, int64_t I, DType t,
                   std::vector<Variant> v) {
    addTest("Shared",
            "T" + std::to_string(T) + "_H" + std::to_string(H) + "_I" +
                std::to_string(I) + "_" + dtypeName(t),
            [=] { testShared(T, H, I, t, v); });
  };
  shared(1, 256, 64, DType::BF16, quick ? fast : all);
  shared(77, 200, 96, DType::BF16, quick ? fast : all);
  if (!quick) {
    shared(300, 1096, 136, DType::BF16, all);
    shared(20, 1100, 72, DType::BF16, all); // H % 8 != 0: SIMT only
    shared(2048, 1024, 512, DType::BF16, all);
    shared(77, 200, 96, DType::F16, all);
    shared(77, 200, 96, DType::F32, all);
  }

  auto add = [](int64_t n, float scale, DType t, bool inPlace) {
    char name[64];
    std::snprintf(name, sizeof name, "n%lld_scale%g_%s%s", (long long)n,
                  scale, dtypeName(t), inPlace ? "_in_place" : "");
    addTest("Add", name, [=] { testAdd(n, scale, t, inPlace); });
  };
  add(1001, 0.5f, DType::BF16, false);
  add(4096, 1.0f, DType::BF16, true);
  if (!quick) {
    add(1001, 2.5f, DType::F16, false);
    add(1003, 0.25f, DType::F32, true);
  }

  registerFp8Tests(quick);
}

} // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::string implFilter; // e.g. "mma,simt": run only these GEMM paths
  gSeed = std::chrono::steady_clock::now().time_since_epoch().count();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick")
      gQuick = true;
    else if (a == "--seed" && i + 1 < argc)
      gSeed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--impls" && i + 1 < argc)
      implFilter = argv[++i];
  }
  if (hasDevice()) {
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    std::printf("device: %s (sm_%d%d, %d SMs), seed %llu, %s\n", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount,
                (unsigned long long)gSeed, gQuick ? "quick" : "full");
  } else {
    // ctest reports the run as skipped on this line (kernels/CMakeLists.txt).
    std::printf("SKIP: no CUDA device\n");
  }
  auto keep = [&](std::vector<Variant> v) {
    if (implFilter.empty())
      return v;
    std::vector<Variant> out;
    for (const Variant &i : v)
      if (implFilter.find(std::string(i.name).substr(0, 4)) != std::string::npos)
        out.push_back(i);
    return out;
  };
  registerTests(keep({kWgmmaWide, kWgmmaWideScalar, kWgmmaNarrow, kMma, kSimt}),
                keep({kWgmmaWide, kWgmmaWideScalar, kWgmmaNarrow, kMma}));
  return RUN_ALL_TESTS();
}
