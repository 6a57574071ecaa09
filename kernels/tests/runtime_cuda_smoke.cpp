//===- runtime_cuda_smoke.cpp - The CUDA backend against the CPU backend ---===//
//
// Runs every moe op through the runtime's C ABI on a CPU and a CUDA context
// with the same inputs and compares (the CPU backend is the numerics oracle):
//   gate      : |d| <= 1e-3 |ref| + 1e-3 rms
//   topk      : ids equal except near-ties (<= 2% of tokens), weights 1e-5
//   routed    : same ids/weights on both; |d| <= 1e-2 |ref| + 4e-2 rms,
//               relL2 <= 3e-3; CUDA in place == CUDA out of place (bytes)
//   shared/add: same tolerance / bit-exact add
// plus: an id outside [0, E) is reported by moert_context_synchronize, and
// the allocator's peak includes the op-allocated workspace.
// Built only in a top-level build with MOE_ENABLE_CUDA (target moe_runtime);
// prints "SKIP: ..." and exits 0 without a device.
//===----------------------------------------------------------------------===//
#include "moe-runtime/moe_runtime.h"
#include "reference.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

int gFail = 0, gPass = 0;

void report(bool ok, const std::string &name, const std::string &detail) {
  std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  (ok ? gPass : gFail)++;
}

struct Ctx {
  moert_context *ctx = nullptr;
  const char *name;
  std::vector<void *> live;
  explicit Ctx(moert_backend b, const char *n) : name(n) {
    if (moert_context_create(b, 0, &ctx) != MOERT_SUCCESS) {
      std::printf("FAIL create %s context: %s\n", n, moert_last_error());
      std::exit(1);
    }
  }
  ~Ctx() { moert_context_destroy(ctx); }
  void *upload(const void *host, int64_t bytes) {
    void *p = nullptr;
    if (moert_alloc_ctx(ctx, bytes, &p) != MOERT_SUCCESS ||
        moert_copy_to_device(ctx, p, host, bytes) != MOERT_SUCCESS) {
      std::printf("FAIL %s upload: %s\n", name, moert_context_error(ctx));
      std::exit(1);
    }
    return p;
  }
  void *alloc(int64_t bytes) {
    void *p = nullptr;
    if (moert_alloc_ctx(ctx, bytes, &p) != MOERT_SUCCESS) {
      std::printf("FAIL %s alloc: %s\n", name, moert_context_error(ctx));
      std::exit(1);
    }
    return p;
  }
  std::vector<uint8_t> download(const void *p, int64_t bytes) {
    std::vector<uint8_t> v(bytes);
    if (moert_copy_to_host(ctx, v.data(), p, bytes) != MOERT_SUCCESS) {
      std::printf("FAIL %s download: %s\n", name, moert_context_error(ctx));
      std::exit(1);
    }
    return v;
  }
  bool sync(const char *what) {
    moert_status s = moert_context_synchronize(ctx);
    if (s != MOERT_SUCCESS) {
      std::printf("FAIL %s %s: %s\n", name, what, moert_context_error(ctx));
      ++gFail;
      moert_context_clear_error(ctx);
      return false;
    }
    return true;
  }
};

std::string compare(const std::vector<float> &got,
                    const std::vector<float> &want, double relTol,
                    double rmsTol, double relL2Tol, bool &ok) {
  double ss = 0, sd = 0, maxd = 0;
  for (float w : want)
    ss += double(w) * w;
  double rms = std::sqrt(ss / want.size());
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double d = std::fabs(double(got[i]) - want[i]);
    if (!(d <= relTol * std::fabs(want[i]) + rmsTol * rms))
      ++bad;
    sd += d * d;
    maxd = std::max(maxd, d);
  }
  double rel = std::sqrt(sd / ss);
  ok = bad == 0 && rel <= relL2Tol;
  char buf[128];
  std::snprintf(buf, sizeof buf, "max|d|=%.3g relL2=%.3g bad=%zu", maxd, rel,
                bad);
  return buf;
}

} // namespace

int main() {
  using moek::DType;
  if (!moert_backend_available(MOERT_BACKEND_CUDA)) {
    std::printf("SKIP: runtime built without CUDA\n");
    return 0;
  }
  moert_context *probe = nullptr;
  if (moert_context_create(MOERT_BACKEND_CUDA, 0, &probe) != MOERT_SUCCESS) {
    std::printf("SKIP: no CUDA device (%s)\n", moert_last_error());
    return 0;
  }
  moert_context_destroy(probe);

  const int64_t T = 67, H = 256, E = 16, K = 4, I = 128, IS = 64;
  const DType t = DType::BF16;
  std::mt19937_64 rng(12345);
  auto randn = [&](size_t n, float sd) {
    std::normal_distribution<float> d(0.f, sd);
    std::vector<float> v(n);
    for (auto &x : v)
      x = moek::ref::roundTo(t, d(rng));
    return v;
  };
  auto x = randn(T * H, 1.f), wg = randn(E * H, 0.05f);
  auto w13 = randn(E * 2 * I * H, 1.f / 16), w2 = randn(E * H * I, 1.f / 11);
  auto sw13 = randn(2 * IS * H, 1.f / 16), sw2 = randn(H * IS, 1.f / 8);
  std::vector<float> bias(E);
  for (auto &b : bias)
    b = std::normal_distribution<float>(0.f, 0.05f)(rng);
  auto bx = moek::ref::encode(x, t), bwg = moek::ref::encode(wg, t),
       b13 = moek::ref::encode(w13, t), b2 = moek::ref::encode(w2, t),
       bs13 = moek::ref::encode(sw13, t), bs2 = moek::ref::encode(sw2, t);

  Ctx cpu(MOERT_BACKEND_CPU, "cpu"), gpu(MOERT_BACKEND_CUDA, "cuda");
  struct Outs {
    std::vector<float> logits, w, routed, shared, sum;
    std::vector<int32_t> ids;
    std::vector<uint8_t> routedBytes, inplaceBytes;
  } out[2];
  // Shared routing for the routed-experts comparison: fixed distinct ids.
  std::vector<int32_t> ids(T * K);
  std::vector<float> wts(T * K);
  for (int64_t tok = 0; tok < T; ++tok)
    for (int64_t j = 0; j < K; ++j) {
      ids[tok * K + j] = int32_t((tok * 5 + j * 3) % E);
      wts[tok * K + j] = 0.1f + 0.2f * float(j);
    }

  Ctx *ctxs[2] = {&cpu, &gpu};
  for (int c = 0; c < 2; ++c) {
    Ctx &C = *ctxs[c];
    moert_set_current_context(C.ctx);
    void *dx = C.upload(bx.data(), bx.size());
    void *dwg = C.upload(bwg.data(), bwg.size());
    void *d13 = C.upload(b13.data(), b13.size());
    void *d2 = C.upload(b2.data(), b2.size());
    void *ds13 = C.upload(bs13.data(), bs13.size());
    void *ds2 = C.upload(bs2.data(), bs2.size());
    void *dbias = C.upload(bias.data(), E * 4);
    void *dids = C.upload(ids.data(), T * K * 4);
    void *dw = C.upload(wts.data(), T * K * 4);
    float *logits = static_cast<float *>(C.alloc(T * E * 4));
    int32_t *tids = static_cast<int32_t *>(C.alloc(T * K * 4));
    float *tw = static_cast<float *>(C.alloc(T * K * 4));
    void *routed = C.alloc(T * H * 2), *shared = C.alloc(T * H * 2),
         *sum = C.alloc(T * H * 2), *inplace = C.upload(bx.data(), bx.size());
    moert_gate(dx, MOERT_BF16, dwg, MOERT_BF16, logits, T, H, E);
    moert_topk(logits, static_cast<float *>(dbias), tids, tw, T, E, K,
               MOERT_SCORING_SIGMOID, 4, 2, 1, 2.5f);
    moert_reset_peak(C.ctx);
    int64_t before = moert_current_bytes(C.ctx);
    moert_routed_experts(dx, static_cast<int32_t *>(dids),
                         static_cast<float *>(dw), d13, d2, nullptr, nullptr, routed, nullptr,
                         MOERT_BF16,
                         MOERT_BF16, T, H, E, K, I);
    int64_t peak = moert_peak_bytes(C.ctx) - before;
    moert_routed_experts(inplace, static_cast<int32_t *>(dids),
                         static_cast<float *>(dw), d13, d2, nullptr, nullptr, inplace, nullptr,
                         MOERT_BF16,
                         MOERT_BF16, T, H, E, K, I);
    moert_shared_experts(dx, ds13, ds2, nullptr, nullptr, shared, nullptr, MOERT_BF16, MOERT_BF16, T, H, IS);
    moert_add(routed, shared, sum, MOERT_BF16, T, H, 1.0f);
    if (!C.sync("ops"))
      continue;
    const int64_t wsBytes =
        moert_routed_experts_workspace_bytes(T, H, E, K, I, MOERT_BF16, MOERT_BF16);
    report(peak == wsBytes, std::string(C.name) + " routed workspace in peak",
           std::to_string(peak) + " == " + std::to_string(wsBytes));
    Outs &o = out[c];
    o.logits = moek::ref::decode(C.download(logits, T * E * 4), DType::F32);
    auto rid = C.download(tids, T * K * 4);
    o.ids.resize(T * K);
    std::memcpy(o.ids.data(), rid.data(), rid.size());
    o.w = moek::ref::decode(C.download(tw, T * K * 4), DType::F32);
    o.routedBytes = C.download(routed, T * H * 2);
    o.inplaceBytes = C.download(inplace, T * H * 2);
    o.routed = moek::ref::decode(o.routedBytes, t);
    o.shared = moek::ref::decode(C.download(shared, T * H * 2), t);
    o.sum = moek::ref::decode(C.download(sum, T * H * 2), t);
  }
  moert_set_current_context(nullptr);

  bool ok;
  std::string d = compare(out[1].logits, out[0].logits, 1e-3, 1e-3, 1e-3, ok);
  report(ok, "gate cuda vs cpu", d);
  int mismatched = 0;
  double maxw = 0;
  for (int64_t tok = 0; tok < T; ++tok) {
    bool same = std::equal(out[0].ids.begin() + tok * K,
                           out[0].ids.begin() + (tok + 1) * K,
                           out[1].ids.begin() + tok * K);
    if (!same) {
      ++mismatched;
      continue;
    }
    for (int64_t j = 0; j < K; ++j)
      maxw = std::max(maxw, double(std::fabs(out[1].w[tok * K + j] -
                                             out[0].w[tok * K + j])));
  }
  report(mismatched <= T / 50 + 1 && maxw <= 1e-5, "topk cuda vs cpu",
         "id mismatches " + std::to_string(mismatched) + ", max weight diff " +
             std::to_string(maxw));
  d = compare(out[1].routed, out[0].routed, 1e-2, 4e-2, 3e-3, ok);
  report(ok, "routed_experts cuda vs cpu", d);
  report(out[1].inplaceBytes == out[1].routedBytes,
         "routed_experts cuda in place == out of place", "");
  d = compare(out[1].shared, out[0].shared, 1e-2, 4e-2, 3e-3, ok);
  report(ok, "shared_experts cuda vs cpu", d);
  // add is bit-exact given equal inputs; inputs differ by rounding, so
  // compare CUDA add against CPU add of the CUDA inputs.
  auto want = moek::ref::add(out[1].routed, out[1].shared, 1.0f, t);
  report(std::memcmp(want.data(), out[1].sum.data(), want.size() * 4) == 0,
         "add cuda bit-exact", "");

  // An id outside [0, E): reported at synchronize, as on the CPU backend.
  {
    moert_set_current_context(gpu.ctx);
    std::vector<int32_t> bad = ids;
    bad[5] = int32_t(E);
    void *dx = gpu.upload(bx.data(), bx.size());
    void *d13 = gpu.upload(b13.data(), b13.size());
    void *d2 = gpu.upload(b2.data(), b2.size());
    void *dids = gpu.upload(bad.data(), T * K * 4);
    void *dw = gpu.upload(wts.data(), T * K * 4);
    void *o = gpu.alloc(T * H * 2);
    moert_routed_experts(dx, static_cast<int32_t *>(dids),
                         static_cast<float *>(dw), d13, d2, nullptr, nullptr, o, nullptr,
                         MOERT_BF16,
                         MOERT_BF16, T, H, E, K, I);
    moert_status s = moert_context_synchronize(gpu.ctx);
    std::string msg = moert_context_error(gpu.ctx);
    report(s == MOERT_ERROR_INVALID_ARGUMENT &&
               msg.find("out of range") != std::string::npos,
           "cuda routed_experts reports an id outside [0, E)", msg);
    moert_context_clear_error(gpu.ctx);
    moert_set_current_context(nullptr);
  }

  // A device fault: a kernel that touches unmapped addresses. The error comes
  // back as MOERT_ERROR_DEVICE with CUDA's message at synchronize, stays
  // sticky for the next op, and nothing aborts (destroying the context
  // included). Last, because CUDA's context is unusable after a fault.
  {
    moert_set_current_context(gpu.ctx);
    void *dev = gpu.alloc(256);
    moert_add(reinterpret_cast<void *>(uintptr_t(0x1000)),
              reinterpret_cast<void *>(uintptr_t(0x2000)),
              reinterpret_cast<void *>(uintptr_t(0x3000)), MOERT_BF16, 1, 8,
              1.0f);
    moert_status s = moert_context_synchronize(gpu.ctx);
    std::string msg = moert_context_error(gpu.ctx);
    report(s == MOERT_ERROR_DEVICE &&
               msg.find("illegal memory access") != std::string::npos,
           "cuda device fault reported as MOERT_ERROR_DEVICE", msg);
    // Sticky: the next op returns the fault at once (not its own argument
    // error), and a copy that needs the faulted context fails cleanly.
    moert_status s2 = moert_add(nullptr, nullptr, nullptr, MOERT_BF16, 1, 8,
                                1.0f);
    std::vector<uint8_t> host(256);
    moert_status s3 = moert_copy_to_host(gpu.ctx, host.data(), dev, 2);
    report(s2 == MOERT_ERROR_DEVICE && s3 != MOERT_SUCCESS,
           "cuda device fault is sticky",
           std::string(moert_status_string(s2)) + ", copy " +
               moert_status_string(s3));
    moert_set_current_context(nullptr);
  }

  std::printf("SUMMARY: %d passed, %d failed\n", gPass, gFail);
  return gFail == 0 ? 0 : 1;
}
