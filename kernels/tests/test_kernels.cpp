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
//
// Usage: moe-kernels-test [--quick] [--seed N] [--skip-code N] [--impls a,b]
//   --impls: GEMM paths to test among wgmma, mma, simt (default all); the
//   wgmma path runs twice: 128x256 tiles, and 128x128 tiles with the
//   decode-size launch policy (idle-half skip, programmatic launch).
// Without a CUDA device it prints "SKIP: no CUDA device" and exits 0 (or the
// --skip-code value, which ctest maps to "skipped").
//===----------------------------------------------------------------------===//
#include "moe_kernels.h"
#include "reference.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace moek;

namespace {

int gPass = 0, gFail = 0, gSkip = 0;

// Expert outputs: a bf16 rounding flip of one act or partial element (the GPU
// accumulates in a different order than the double reference) moves an output
// element by up to ~2^-7 of a partial, i.e. a few percent of the output rms
// where the weighted sum cancels. Per element: |d| <= 1e-2 |ref| +
// kRmsTol rms(ref); overall: relL2 <= kRelL2Tol (seen: <= 6e-4). A wrong or
// missing partial moves elements by ~rms and relL2 by >= 1e-1.
constexpr double kRmsTol = 4e-2;
constexpr double kRelL2Tol = 3e-3;
std::mt19937_64 gRng;

void report(bool ok, const std::string &name, const std::string &detail) {
  std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
  (ok ? gPass : gFail)++;
}

void skip(const std::string &name, const std::string &why) {
  std::printf("SKIP %s (%s)\n", name.c_str(), why.c_str());
  ++gSkip;
}

const char *dtypeName(DType t) {
  return t == DType::BF16 ? "bf16" : t == DType::F16 ? "f16" : "f32";
}

/// A GEMM path under test: implementation plus launch-policy overrides
/// (moek::setTuningFlags bits).
struct Variant {
  GemmImpl impl;
  int tuning;
  const char *name;
};
const Variant kWgmmaWide = {GemmImpl::Wgmma, 32 | 4 | 16, "wgmma-n256"};
const Variant kWgmmaNarrow = {GemmImpl::Wgmma, 64 | 1 | 8, "wgmma-n128+skip+pdl"};
// The down GEMM's full tiles staged with 32-bit stores instead of stmatrix,
// and its partial tiles stored straight from registers instead of staged:
// bit-identical by construction (same values, same places).
const Variant kWgmmaWideScalar = {GemmImpl::Wgmma, 32 | 4 | 16 | 256 | 512,
                                  "wgmma-n256+scalar-epilogue"};
const Variant kMma = {GemmImpl::MmaSync, 0, "mma"};
const Variant kSimt = {GemmImpl::Simt, 0, "simt"};

void select(const Variant &v) {
  setGemmImpl(v.impl);
  setTuningFlags(v.tuning);
}
void unselect() {
  setGemmImpl(GemmImpl::Auto);
  setTuningFlags(0);
}

/// Device buffer; all failures are fatal for the test binary (not the library).
struct DevBuf {
  void *p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(n) {
    if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) {
      std::printf("FAIL cudaMalloc(%zu)\n", n);
      std::exit(1);
    }
  }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;
  template <typename T> T *as() const { return static_cast<T *>(p); }
  void upload(const void *src, size_t n) {
    if (cudaMemcpy(p, src, n, cudaMemcpyHostToDevice) != cudaSuccess) {
      std::printf("FAIL cudaMemcpy H2D\n");
      std::exit(1);
    }
  }
  std::vector<uint8_t> download(size_t n) const {
    std::vector<uint8_t> v(n);
    if (cudaMemcpy(v.data(), p, n, cudaMemcpyDeviceToHost) != cudaSuccess) {
      std::printf("FAIL cudaMemcpy D2H\n");
      std::exit(1);
    }
    return v;
  }
  void poison() {
    if (cudaMemset(p, 0xff, bytes) != cudaSuccess) {
      std::printf("FAIL cudaMemset\n");
      std::exit(1);
    }
  }
};

/// Synchronises and turns a launch status plus any asynchronous error into
/// one status.
cudaError_t finish(cudaError_t launch) {
  if (launch != cudaSuccess)
    return launch;
  return cudaDeviceSynchronize();
}

std::vector<float> randn(size_t n, float stddev, DType t) {
  std::normal_distribution<float> d(0.f, stddev);
  std::vector<float> v(n);
  for (auto &x : v)
    x = ref::roundTo(t, d(gRng));
  return v;
}

struct Cmp {
  bool ok = true;
  double maxAbs = 0, relL2 = 0;
  size_t bad = 0, nans = 0;
  std::string text() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "max|d|=%.3g relL2=%.3g bad=%zu nan=%zu",
                  maxAbs, relL2, bad, nans);
    return buf;
  }
};

Cmp compare(const std::vector<float> &got, const std::vector<float> &want,
            double relTol, double rmsTol) {
  Cmp c;
  double ss = 0, sd = 0;
  for (float w : want)
    ss += double(w) * w;
  double rms = want.empty() ? 0 : std::sqrt(ss / want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    double g = got[i], w = want[i];
    if (std::isnan(g) || std::isinf(g)) {
      ++c.nans;
      c.ok = false;
      continue;
    }
    double d = std::fabs(g - w);
    sd += d * d;
    c.maxAbs = std::max(c.maxAbs, d);
    if (d > relTol * std::fabs(w) + rmsTol * rms) {
      ++c.bad;
      c.ok = false;
    }
  }
  c.relL2 = ss > 0 ? std::sqrt(sd / ss) : std::sqrt(sd);
  return c;
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

void testTopk(const char *label, int64_t T, int64_t E, TopKParams p, bool bias) {
  std::string name = std::string("topk[") + label + "]";
  std::normal_distribution<float> d(0.f, 2.f), db(0.f, 0.1f);
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
    select(impl);
    auto run = [&](const void *in, void *out) {
      ws.poison();
      return finish(routedExperts(in, di.as<int32_t>(), dw.as<float>(), d13.p,
                                  d2.p, out, T, H, E, K, I, t, ws.p, wsBytes, 0));
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
  unselect();
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
    select(impl);
    auto run = [&]() {
      ws.poison();
      dout.poison();
      return finish(sharedExperts(dx.p, d13.p, d2.p, dout.p, T, H, I, t, ws.p,
                                  wsBytes, 0));
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
  unselect();
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

} // namespace

int main(int argc, char **argv) {
  bool quick = false;
  int skipCode = 0;
  std::string implFilter; // e.g. "mma,simt": run only these GEMM paths
  uint64_t seed = std::chrono::steady_clock::now().time_since_epoch().count();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--seed" && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--skip-code" && i + 1 < argc)
      skipCode = std::atoi(argv[++i]);
    else if (a == "--impls" && i + 1 < argc)
      implFilter = argv[++i];
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIP: no CUDA device\n");
    return skipCode;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d, %d SMs), seed %llu, %s\n", prop.name,
              prop.major, prop.minor, prop.multiProcessorCount,
              (unsigned long long)seed, quick ? "quick" : "full");
  gRng.seed(seed);
  auto keep = [&](std::vector<Variant> v) {
    if (implFilter.empty())
      return v;
    std::vector<Variant> out;
    for (const Variant &i : v)
      if (implFilter.find(std::string(i.name).substr(0, 4)) != std::string::npos)
        out.push_back(i);
    return out;
  };
  const std::vector<Variant> all =
      keep({kWgmmaWide, kWgmmaWideScalar, kWgmmaNarrow, kMma, kSimt});
  const std::vector<Variant> fast =
      keep({kWgmmaWide, kWgmmaWideScalar, kWgmmaNarrow, kMma});

  testArgumentChecks();
  testGate(37, 200, 64, DType::BF16, DType::BF16);
  testGate(37, 200, 64, DType::BF16, DType::F32); // mixed: tiled kernel
  if (!quick) {
    testGate(512, 7168, 256, DType::BF16, DType::BF16);
    testGate(100, 512, 128, DType::F16, DType::F16);
    testGate(100, 512, 128, DType::F32, DType::F32);
    testGate(300, 1000, 96, DType::F16, DType::BF16);
  }

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
  testTopk("deepseek-v3 sigmoid+bias grouped E=256", topkT, 256, dsv3, true);
  testTopk("kimi-k2 sigmoid+bias E=384", topkT, 384, kimi, true);
  testTopk("qwen3 softmax renorm E=128", topkT, 128, qwen, false);
  testTopk("softmax grouped no-renorm E=64", topkT, 64, softGrouped, false);

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
  for (const auto &c : cases)
    testRouted(c, DType::BF16, quick ? fast : all);
  if (!quick) {
    testRouted(cases[1], DType::F16, all);
    testRouted(cases[2], DType::F16, fast);
    testRouted(cases[0], DType::F32, all);
    testRouted(cases[1], DType::F32, all);
  }

  testShared(1, 256, 64, DType::BF16, quick ? fast : all);
  testShared(77, 200, 96, DType::BF16, quick ? fast : all);
  if (!quick) {
    testShared(300, 1096, 136, DType::BF16, all);
    testShared(20, 1100, 72, DType::BF16, all); // H % 8 != 0: SIMT only
    testShared(2048, 1024, 512, DType::BF16, all);
    testShared(77, 200, 96, DType::F16, all);
    testShared(77, 200, 96, DType::F32, all);
  }

  testAdd(1001, 0.5f, DType::BF16, false);
  testAdd(4096, 1.0f, DType::BF16, true);
  if (!quick) {
    testAdd(1001, 2.5f, DType::F16, false);
    testAdd(1003, 0.25f, DType::F32, true);
  }

  std::printf("SUMMARY: %d passed, %d failed, %d skipped\n", gPass, gFail, gSkip);
  return gFail == 0 ? 0 : 1;
}
