//===- TestUtil.h - Shared helpers of the runtime unit tests ----*- C++ -*-===//
//
// A CPU context fixture, typed host buffers that remember the exact values
// they hold (for the double-precision references), an independent rounding
// oracle, and NaN poisoning.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_UNITTESTS_RUNTIME_TESTUTIL_H
#define MOE_UNITTESTS_RUNTIME_TESTUTIL_H

#include "moe-runtime/moe_runtime.h"

#include "Numerics.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace moert_test {

/// Rounds `x` to nearest-even with `bits` significant bits, `minExponent`
/// the frexp exponent of the smallest normal, and overflow above
/// `maxFinite`. Written with frexp/ldexp/nearbyint, independently of the
/// runtime's bit manipulations.
inline double roundToFormat(double x, int bits, int minExponent,
                            double maxFinite) {
  if (x == 0 || !std::isfinite(x))
    return x;
  int exponent;
  std::frexp(x, &exponent);
  int quantum = std::max(exponent, minExponent) - bits;
  double y = std::ldexp(std::nearbyint(std::ldexp(x, -quantum)), quantum);
  if (std::fabs(y) > maxFinite)
    return std::copysign(std::numeric_limits<double>::infinity(), x);
  return y;
}

/// The value `x` has once rounded (once) to `dtype`.
inline double roundTo(double x, moert_dtype dtype) {
  switch (dtype) {
  case MOERT_BF16:
    return roundToFormat(x, 8, -125, 0x1.fep127);
  case MOERT_F16:
    return roundToFormat(x, 11, -13, 65504.0);
  default:
    return roundToFormat(x, 24, -125, 0x1.fffffep127);
  }
}

inline int64_t bytesOf(moert_dtype dtype) {
  return dtype == MOERT_F32 || dtype == MOERT_I32 ? 4 : 2;
}

inline const char *dtypeName(moert_dtype dtype) {
  switch (dtype) {
  case MOERT_BF16:
    return "bf16";
  case MOERT_F16:
    return "f16";
  case MOERT_F32:
    return "f32";
  default:
    return "i32";
  }
}

/// A host buffer of a float dtype.
class Buffer {
public:
  Buffer() = default;
  Buffer(moert_dtype dtype, int64_t n)
      : dtype(dtype), n(n), bytes(size_t(n * bytesOf(dtype)) + 1) {}

  void *data() { return bytes.data(); }
  const void *data() const { return bytes.data(); }
  int64_t size() const { return n; }
  moert_dtype type() const { return dtype; }
  int64_t byteSize() const { return n * bytesOf(dtype); }

  /// Stores a value exactly representable in the dtype.
  void set(int64_t i, double value) {
    float f = float(value);
    moert::storeElement(data(), dtype, i, f);
  }
  double get(int64_t i) const {
    return double(moert::loadElement(data(), dtype, i));
  }
  std::vector<double> values() const {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      v[size_t(i)] = get(i);
    return v;
  }
  void poison() {
    for (int64_t i = 0; i < n; ++i)
      moert::storeElement(data(), dtype, i,
                          std::numeric_limits<float>::quiet_NaN());
  }
  bool sameBytes(const Buffer &other) const {
    return n == other.n && dtype == other.dtype &&
           std::memcmp(data(), other.data(), size_t(byteSize())) == 0;
  }

private:
  moert_dtype dtype = MOERT_F32;
  int64_t n = 0;
  std::vector<uint8_t> bytes;
};

/// Uniform values in [-scale, scale), rounded to the buffer's dtype.
inline Buffer randomBuffer(moert_dtype dtype, int64_t n, std::mt19937_64 &rng,
                           double scale = 1.0) {
  Buffer b(dtype, n);
  std::uniform_real_distribution<double> dist(-scale, scale);
  for (int64_t i = 0; i < n; ++i)
    b.set(i, roundTo(dist(rng), dtype));
  return b;
}

inline std::vector<float> poisonedFloats(int64_t n) {
  return std::vector<float>(size_t(n), std::numeric_limits<float>::quiet_NaN());
}

/// A fresh CPU context, current on this thread for the test's duration.
class RuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &ctx), MOERT_SUCCESS)
        << moert_last_error();
    moert_set_current_context(ctx);
  }
  void TearDown() override {
    moert_context_destroy(ctx);
    EXPECT_EQ(moert_get_current_context(), nullptr);
  }
  /// The test's own status check: no sticky error was left behind.
  void expectNoError() {
    EXPECT_EQ(moert_context_status(ctx), MOERT_SUCCESS)
        << moert_context_error(ctx);
  }

  moert_context *ctx = nullptr;
};

} // namespace moert_test

#endif // MOE_UNITTESTS_RUNTIME_TESTUTIL_H
