//===- NumericsTest.cpp - bf16/f16 conversions and the fixed-order dot ----===//

#include "TestUtil.h"

#include <random>

using namespace moert;
using namespace moert_test;

namespace {

double decodeF16Independently(uint16_t h) {
  int sign = (h & 0x8000) ? -1 : 1;
  int exponent = (h >> 10) & 0x1f;
  int mantissa = h & 0x3ff;
  if (exponent == 0)
    return sign * std::ldexp(double(mantissa), -24);
  if (exponent == 31)
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
}

TEST(NumericsTest, Bf16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = bf16ToFloat(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(f)))) << h;
      continue;
    }
    ASSERT_EQ(floatToBf16(f), h);
    // The decoded value is the float with these upper bits.
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    ASSERT_EQ(bits, h << 16);
  }
}

TEST(NumericsTest, F16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16ToFloat(uint16_t(h));
    double expected = decodeF16Independently(uint16_t(h));
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(f)))) << h;
      continue;
    }
    ASSERT_EQ(double(f), expected) << h;
    ASSERT_EQ(floatToF16(f), h) << h;
  }
}

TEST(NumericsTest, RoundsToNearestEven) {
  // bf16: 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6.
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 0x1p-8f)), 1.0f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(1.0f + 0x1p-8f + 0x1p-20f)),
            1.0f + 0x1p-7f);
  EXPECT_EQ(bf16ToFloat(floatToBf16(-1.0f - 0x1p-8f)), -1.0f);
  EXPECT_TRUE(std::isinf(bf16ToFloat(floatToBf16(0x1.fffffep127f))));
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(std::nanf("")))));

  // f16, likewise with 11 significant bits.
  EXPECT_EQ(f16ToFloat(floatToF16(1.0f + 0x1p-11f)), 1.0f);
  EXPECT_EQ(f16ToFloat(floatToF16(1.0f + 3 * 0x1p-11f)), 1.0f + 0x1p-9f);
  EXPECT_EQ(f16ToFloat(floatToF16(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16ToFloat(floatToF16(65520.0f))));
  EXPECT_TRUE(std::isinf(f16ToFloat(floatToF16(1e10f))));
  // Subnormals: units of 2^-24; 2^-25 is a tie between 0 and 2^-24.
  EXPECT_EQ(f16ToFloat(floatToF16(0x1p-25f)), 0.0f);
  EXPECT_EQ(f16ToFloat(floatToF16(0x1.000002p-25f)), 0x1p-24f);
  EXPECT_EQ(f16ToFloat(floatToF16(3 * 0x1p-25f)), 2 * 0x1p-24f);
  EXPECT_EQ(f16ToFloat(floatToF16(0x1p-14f - 0x1p-26f)), 0x1p-14f);
  EXPECT_EQ(floatToF16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(std::nanf("")))));
}

TEST(NumericsTest, MatchesAnIndependentRoundingOnRandomFloats) {
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<int> exponent(-30, 17);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  for (int i = 0; i < 200000; ++i) {
    float f = float(std::ldexp(mantissa(rng), exponent(rng)));
    if (i % 2)
      f = -f;
    ASSERT_EQ(double(bf16ToFloat(floatToBf16(f))), roundTo(f, MOERT_BF16)) << f;
    ASSERT_EQ(double(f16ToFloat(floatToF16(f))), roundTo(f, MOERT_F16)) << f;
  }
}

#ifdef __FLT16_MAX__
// The compiler's own _Float16 conversion, where it has one.
TEST(NumericsTest, MatchesTheCompilersFloat16) {
  std::mt19937 rng(99);
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f))
      continue;
    _Float16 h = static_cast<_Float16>(f);
    uint16_t expected;
    std::memcpy(&expected, &h, 2);
    ASSERT_EQ(floatToF16(f), expected) << f;
  }
}
#endif

TEST(NumericsTest, DotProductIsAccurateAndOrderFixed) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t n : {0, 1, 15, 16, 17, 100, 4096}) {
    std::vector<float> a(size_t(n) + 1), b(size_t(n) + 1);
    double exact = 0, magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      a[size_t(i)] = dist(rng);
      b[size_t(i)] = dist(rng);
      exact += double(a[size_t(i)]) * b[size_t(i)];
      magnitude += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
    }
    float got = dotProduct(a.data(), b.data(), n);
    EXPECT_LE(std::fabs(got - exact), 1e-6 * magnitude + 1e-30) << n;
    // The same inputs give the same bits.
    float again = dotProduct(a.data(), b.data(), n);
    EXPECT_EQ(std::memcmp(&got, &again, 4), 0);
  }
  // The documented order: 16 lanes, a tree at the end. 2^24 + 1 - 2^24
  // distinguishes orders: with lane 0 holding 2^24 and 1 (lost: rounding) ...
  std::vector<float> a(32, 0.0f), b(32, 1.0f);
  a[0] = 16777216.0f; // lane 0
  a[16] = 1.0f;       // lane 0 again: 2^24 + 1 rounds to 2^24
  a[1] = 1.0f;        // lane 1: survives until the tree adds it to lane 0
  a[2] = -16777216.0f;
  // Lane 0 = 2^24, lane 1 = 1, lane 2 = -2^24: (l0 + l1) + (l2 + l3) =
  // 2^24 + (-2^24) = 0 (the 1 is lost in l0 + l1).
  EXPECT_EQ(dotProduct(a.data(), b.data(), 32), 0.0f);
}

} // namespace
