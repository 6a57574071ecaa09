//===- harness.h - Shared pieces of the kernel numerics tests ----*- C++ -*-===//
//
// Device buffers, random data, the element-wise comparison, and the test
// registration of moe-kernels-test (test_kernels.cpp: the bf16/f16/f32 ops;
// test_fp8.cpp: the fp8 ops). GPU tests skip without a CUDA device.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_TESTS_HARNESS_H
#define MOE_KERNELS_TESTS_HARNESS_H

#include "moe_kernels.h"
#include "reference.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace moek::test {

/// --quick (what ctest runs), the run's seed, and each test's generator
/// (seeded from the seed and the test's name before the test runs).
extern bool gQuick;
extern uint64_t gSeed;
extern std::mt19937_64 gRng;

// Expert outputs: a bf16 rounding flip of one act or partial element (the GPU
// accumulates in a different order than the double reference) moves an output
// element by up to ~2^-7 of a partial, i.e. a few percent of the output rms
// where the weighted sum cancels. Per element: |d| <= 1e-2 |ref| +
// kRmsTol rms(ref); overall: relL2 <= kRelL2Tol (seen: <= 6e-4). A wrong or
// missing partial moves elements by ~rms and relL2 by >= 1e-1.
constexpr double kRmsTol = 4e-2;
constexpr double kRelL2Tol = 3e-3;

/// PASS/FAIL line on stdout, and a gtest failure when not ok.
void report(bool ok, const std::string &name, const std::string &detail);
/// One GEMM path of a multi-path test that cannot run here (the others do).
void skip(const std::string &name, const std::string &why) ;

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
inline cudaError_t finish(cudaError_t launch) {
  if (launch != cudaSuccess)
    return launch;
  return cudaDeviceSynchronize();
}

/// n values of N(0, stddev), rounded to `t`.
std::vector<float> randn(size_t n, float stddev, DType t);

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

/// Per element: |got - want| <= relTol |want| + rmsTol rms(want).
Cmp compare(const std::vector<float> &got, const std::vector<float> &want,
            double relTol, double rmsTol);

bool hasDevice();
/// Registers SUITE.NAME (NAME made an identifier); its data depends only on
/// the seed and the name.
void addTest(const char *suite, const std::string &name,
             std::function<void()> body, bool needsDevice = true);

/// test_fp8.cpp's tests.
void registerFp8Tests(bool quick);

} // namespace moek::test

#endif // MOE_KERNELS_TESTS_HARNESS_H
