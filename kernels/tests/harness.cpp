//===- harness.cpp - Shared pieces of the kernel numerics tests -----------===//
#include "harness.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>

namespace moek::test {

bool gQuick = false;
uint64_t gSeed = 0;
std::mt19937_64 gRng;

void report(bool ok, const std::string &name, const std::string &detail) {
  std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
  EXPECT_TRUE(ok) << name << " " << detail;
}

/// One GEMM path of a multi-path test that cannot run here (the others do).
void skip(const std::string &name, const std::string &why) {
  std::printf("SKIP %s (%s)\n", name.c_str(), why.c_str());
}

std::vector<float> randn(size_t n, float stddev, DType t) {
  std::normal_distribution<float> d(0.f, stddev);
  std::vector<float> v(n);
  for (auto &x : v)
    x = ref::roundTo(t, d(gRng));
  return v;
}

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

namespace {

/// A test whose body is a closure; GPU tests skip without a device.
class KernelTest : public ::testing::Test {
public:
  KernelTest(std::function<void()> body, bool needsDevice)
      : body_(std::move(body)), needsDevice_(needsDevice) {}

protected:
  void SetUp() override {
    if (needsDevice_ && !hasDevice())
      GTEST_SKIP() << "no CUDA device";
  }
  void TestBody() override { body_(); }

private:
  std::function<void()> body_;
  bool needsDevice_;
};

/// "odd H, 3 column blocks" -> "odd_H_3_column_blocks".
std::string testName(const std::string &text) {
  std::string out;
  for (char c : text) {
    bool word = std::isalnum(static_cast<unsigned char>(c));
    if (word)
      out += c;
    else if (!out.empty() && out.back() != '_')
      out += '_';
  }
  while (!out.empty() && out.back() == '_')
    out.pop_back();
  return out;
}

} // namespace

bool hasDevice() {
  static const bool has = [] {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  }();
  return has;
}

void addTest(const char *suite, const std::string &name,
             std::function<void()> body, bool needsDevice) {
  const std::string test = testName(name);
  // The data of a test depends only on the seed and the test's name.
  const uint64_t seed = gSeed ^ std::hash<std::string>()(test);
  ::testing::RegisterTest(
      suite, test.c_str(), nullptr, nullptr, __FILE__, __LINE__,
      [=]() -> ::testing::Test * {
        return new KernelTest(
            [=] {
              gRng.seed(seed);
              body();
            },
            needsDevice);
      });
}


} // namespace moek::test
