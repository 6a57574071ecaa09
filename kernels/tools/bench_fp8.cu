//===- bench_fp8.cu - Timings of routedExpertsFp8 against the bf16 path
//----===//
//
// moe-kernels-bench-fp8 [--tokens 4096,16384] [--iters 20] [--warmup 3]
//                       [--no-bf16] [--variants]
// DeepSeek-V3 TP=4 routed experts (H 7168, I 512, E 256, K 8) on random data
// with uniform routing (K distinct experts per token, ~T*K/E pairs each).
// Per token count, one JSON line for the fp8 op (the whole op, then each of
// its stages run alone: routing + quantization, gate-up GEMM, the down GEMMs
// of all column blocks, the combines) and one for the bf16 routedExperts.
// --variants adds the fp8 op under other configs (128-wide down tiles; PDL
// between all kernels). Times are medians of --iters runs after --warmup,
// from CUDA events around
// each run on one stream. The weights (2.8 GB fp8, 5.6 GB bf16) are far
// larger than L2, so no flush is needed between runs.
//===----------------------------------------------------------------------===//
#include "fp8.cuh"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int64_t kH = 7168, kI = 512, kE = 256, kK = 8;

#define CHECK(expr)                                                            \
  do {                                                                         \
    cudaError_t err_ = (expr);                                                 \
    if (err_ != cudaSuccess) {                                                 \
      std::printf("{\"error\": \"%s: %s (%s)\"}\n", #expr,                     \
                  cudaGetErrorString(err_), moek::lastErrorMessage());         \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + seed;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<uint32_t>(x >> 16);
}

/// bf16 values roughly uniform in [-scale, scale).
__global__ void fillBf16(__nv_bfloat16 *p, int64_t n, float scale,
                         uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16((hash32(i, seed) * 0x1p-32f * 2.f - 1.f) * scale);
}

/// Random e4m3 bytes without the NaN codes (0x7f, 0xff).
__global__ void fillE4m3(uint8_t *p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint8_t b = hash32(i, seed) & 0xff;
    p[i] = (b & 0x7f) == 0x7f ? b - 1 : b;
  }
}

__global__ void fillF32(float *p, int64_t n, float lo, float hi,
                        uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * (hash32(i, seed) * 0x1p-32f);
}

template <typename T> T *devAlloc(int64_t n) {
  void *p = nullptr;
  CHECK(cudaMalloc(&p, std::max<int64_t>(n, 1) * sizeof(T)));
  return static_cast<T *>(p);
}

/// Median milliseconds of `iters` runs of `body` after `warmup` runs.
double timeMs(const std::function<void()> &body, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i)
    body();
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    CHECK(cudaEventRecord(a));
    body();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<int64_t> parseList(const char *s) {
  std::vector<int64_t> v;
  for (const char *p = s; *p;) {
    v.push_back(std::strtoll(p, const_cast<char **>(&p), 10));
    if (*p == ',')
      ++p;
  }
  return v;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<int64_t> tokens = {4096, 16384};
  int iters = 20, warmup = 3;
  bool bf16 = true, variants = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tokens" && i + 1 < argc)
      tokens = parseList(argv[++i]);
    else if (a == "--iters" && i + 1 < argc)
      iters = std::max(1, std::atoi(argv[++i]));
    else if (a == "--warmup" && i + 1 < argc)
      warmup = std::max(0, std::atoi(argv[++i]));
    else if (a == "--no-bf16")
      bf16 = false;
    else if (a == "--variants")
      variants = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--tokens 4096,16384] [--iters 20] "
                   "[--warmup 3] [--no-bf16] [--variants]\n",
                   argv[0]);
      return 2;
    }
  }
  const int64_t maxT = *std::max_element(tokens.begin(), tokens.end());
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));

  const int64_t n13 = kE * 2 * kI * kH, n2 = kE * kH * kI;
  const int64_t s13 = kE * (2 * kI / 128) * (kH / 128),
                s2 = kE * (kH / 128) * (kI / 128);
  auto *hidden = devAlloc<__nv_bfloat16>(maxT * kH);
  auto *out = devAlloc<__nv_bfloat16>(maxT * kH);
  auto *w13 = devAlloc<uint8_t>(n13);
  auto *w2 = devAlloc<uint8_t>(n2);
  auto *w13Scale = devAlloc<float>(s13);
  auto *w2Scale = devAlloc<float>(s2);
  auto *ids = devAlloc<int32_t>(maxT * kK);
  auto *weights = devAlloc<float>(maxT * kK);
  const dim3 grid(4 * prop.multiProcessorCount), block(256);
  fillBf16<<<grid, block>>>(hidden, maxT * kH, 2.f, 1);
  fillE4m3<<<grid, block>>>(w13, n13, 2);
  fillE4m3<<<grid, block>>>(w2, n2, 3);
  // Weight scales around 1/(100 sqrt(K)): e4m3 values reach ~448.
  fillF32<<<grid, block>>>(w13Scale, s13, 0.5f / 100 / 85, 2.f / 100 / 85, 4);
  fillF32<<<grid, block>>>(w2Scale, s2, 0.5f / 100 / 23, 2.f / 100 / 23, 5);
  fillF32<<<grid, block>>>(weights, maxT * kK, 0.05f, 0.3f, 6);
  {
    // Uniform routing: K distinct experts per token.
    std::mt19937 rng(7);
    std::vector<int32_t> h(maxT * kK);
    std::vector<int32_t> pool(kE);
    for (int e = 0; e < kE; ++e)
      pool[e] = e;
    for (int64_t t = 0; t < maxT; ++t) {
      for (int64_t j = 0; j < kK; ++j) {
        std::uniform_int_distribution<int> d(int(j), int(kE - 1));
        std::swap(pool[j], pool[d(rng)]);
        h[t * kK + j] = pool[j];
      }
    }
    CHECK(cudaMemcpy(ids, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  }
  __nv_bfloat16 *w13Bf16 = nullptr, *w2Bf16 = nullptr;
  if (bf16) {
    w13Bf16 = devAlloc<__nv_bfloat16>(n13);
    w2Bf16 = devAlloc<__nv_bfloat16>(n2);
    fillBf16<<<grid, block>>>(w13Bf16, n13, 0.02f, 8);
    fillBf16<<<grid, block>>>(w2Bf16, n2, 0.04f, 9);
  }
  CHECK(cudaDeviceSynchronize());

  for (int64_t T : tokens) {
    const double gateUpFlops = 2.0 * T * kK * (2 * kI) * kH;
    const double downFlops = 2.0 * T * kK * kH * kI;
    const double flops = gateUpFlops + downFlops;
    auto tflops = [](double f, double ms) { return f / (ms * 1e9); };

    const size_t wsBytes =
        moek::routedExpertsFp8WorkspaceBytes(T, kH, kE, kK, kI);
    void *ws = devAlloc<uint8_t>(int64_t(wsBytes));
    // The variants: the heuristic's configs, then (--variants) 128-wide down
    // tiles, and PDL between every kernel of the op.
    moek::Fp8GemmConfig down128;
    down128.tileN = 128;
    down128.stages = moek::fp8Stages(moek::GemmOp::Down, 128);
    moek::KernelConfigs narrow;
    narrow.fp8Down = &down128;
    moek::Fp8GemmConfig upPdl, downPdl;
    upPdl.pdl = downPdl.pdl = true;
    downPdl.stages = moek::fp8Stages(moek::GemmOp::Down, 256);
    moek::LaunchConfig launchPdl;
    launchPdl.pdl = true;
    moek::KernelConfigs pdl;
    pdl.fp8GateUp = &upPdl;
    pdl.fp8Down = &downPdl;
    pdl.launch = &launchPdl;
    struct Variant {
      const char *name;
      const moek::KernelConfigs *configs;
    };
    std::vector<Variant> runs = {{"default", nullptr}};
    if (variants) {
      runs.push_back({"down128", &narrow});
      runs.push_back({"pdl", &pdl});
    }
    for (const Variant &variant : runs) {
      moek::detail::RoutedFp8Plan plan;
      CHECK(moek::detail::planRoutedExpertsFp8(
          hidden, ids, weights, w13, w13Scale, w2, w2Scale, out, T, kH, kE, kK,
          kI, ws, wsBytes, variant.configs, plan));
      auto stage = [&](unsigned mask) {
        return [&plan, mask] {
          CHECK(moek::detail::runRoutedExpertsFp8(plan, mask, 0));
        };
      };
      const double all =
          timeMs(stage(moek::detail::kFp8StageAll), warmup, iters);
      const double prep =
          timeMs(stage(moek::detail::kFp8StagePrepare), warmup, iters);
      const double up =
          timeMs(stage(moek::detail::kFp8StageGateUp), warmup, iters);
      const double down =
          timeMs(stage(moek::detail::kFp8StageDown), warmup, iters);
      const double comb =
          timeMs(stage(moek::detail::kFp8StageCombine), warmup, iters);
      std::printf(
          "{\"case\": \"routed_fp8\", \"variant\": \"%s\", \"device\": \"%s\", "
          "\"T\": %lld, \"H\": "
          "%lld, \"I\": %lld, \"E\": %lld, \"K\": %lld, \"ms\": %.4f, "
          "\"tflops\": %.1f, \"prepare_ms\": %.4f, \"gate_up_ms\": %.4f, "
          "\"gate_up_tflops\": %.1f, \"down_ms\": %.4f, \"down_tflops\": %.1f, "
          "\"combine_ms\": %.4f, \"gate_up_config\": \"%s\", \"down_config\": "
          "\"%s\", \"workspace_bytes\": %zu}\n",
          variant.name, prop.name, (long long)T, (long long)kH, (long long)kI,
          (long long)kE, (long long)kK, all, tflops(flops, all), prep, up,
          tflops(gateUpFlops, up), down, tflops(downFlops, down), comb,
          moek::describe(plan.gateUp.config).c_str(),
          moek::describe(plan.downFull).c_str(), wsBytes);
      std::fflush(stdout);
    }
    CHECK(cudaFree(ws));

    if (variants) {
      // The same GEMM work as one dense problem: sharedExpertsFp8 on T*K
      // rows (one group, no gather), the kernel's rate without routing.
      const int64_t rows = T * kK;
      const size_t sBytes = moek::sharedExpertsFp8WorkspaceBytes(rows, kH, kI);
      void *sws = devAlloc<uint8_t>(int64_t(sBytes));
      auto *x = devAlloc<__nv_bfloat16>(rows * kH);
      auto *y = devAlloc<__nv_bfloat16>(rows * kH);
      fillBf16<<<grid, block>>>(x, rows * kH, 2.f, 10);
      const double ms = timeMs(
          [&] {
            CHECK(moek::sharedExpertsFp8(x, w13, w13Scale, w2, w2Scale, y, rows,
                                         kH, kI, sws, sBytes, 0));
          },
          warmup, iters);
      std::printf("{\"case\": \"dense_fp8\", \"device\": \"%s\", \"rows\": "
                  "%lld, \"ms\": %.4f, \"tflops\": %.1f}\n",
                  prop.name, (long long)rows, ms, tflops(flops, ms));
      std::fflush(stdout);
      CHECK(cudaFree(sws));
      CHECK(cudaFree(x));
      CHECK(cudaFree(y));
    }

    if (bf16) {
      const size_t bfBytes = moek::routedExpertsWorkspaceBytes(
          T, kH, kE, kK, kI, moek::DType::BF16);
      void *bws = devAlloc<uint8_t>(int64_t(bfBytes));
      const double ms = timeMs(
          [&] {
            CHECK(moek::routedExperts(hidden, ids, weights, w13Bf16, w2Bf16,
                                      out, T, kH, kE, kK, kI, moek::DType::BF16,
                                      bws, bfBytes, 0));
          },
          warmup, iters);
      std::printf("{\"case\": \"routed_bf16\", \"device\": \"%s\", \"T\": "
                  "%lld, \"ms\": %.4f, \"tflops\": %.1f, \"workspace_bytes\": "
                  "%zu}\n",
                  prop.name, (long long)T, ms, tflops(flops, ms), bfBytes);
      std::fflush(stdout);
      CHECK(cudaFree(bws));
    }
  }
  return 0;
}
