//===- DataTest.cpp - Conversions, the generator, checksums ---------------===//

#include "Data.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

using namespace moerun;

namespace {

TEST(DataTest, ConversionsRoundTripEveryValue) {
  for (uint32_t b = 0; b < 65536; ++b) {
    double bf = bf16ToDouble(uint16_t(b));
    double h = f16ToDouble(uint16_t(b));
    if (!std::isnan(bf))
      EXPECT_EQ(doubleToBF16(bf), b) << std::hex << b;
    else
      EXPECT_TRUE(std::isnan(bf16ToDouble(doubleToBF16(bf))));
    if (!std::isnan(h))
      EXPECT_EQ(doubleToF16(h), b) << std::hex << b;
    else
      EXPECT_TRUE(std::isnan(f16ToDouble(doubleToF16(h))));
  }
}

TEST(DataTest, RoundsToNearestEven) {
  // bf16 has 8 significant bits: the spacing at 1 is 2^-7.
  EXPECT_EQ(bf16ToDouble(doubleToBF16(1 + 0x1p-8)), 1.0); // tie, even
  EXPECT_EQ(bf16ToDouble(doubleToBF16(1 + 3 * 0x1p-8)),
            1 + 0x1p-6); // tie, even
  EXPECT_EQ(bf16ToDouble(doubleToBF16(1 + 0x1p-8 + 0x1p-30)), 1 + 0x1p-7);
  // A double just above a bf16 tie rounds up even though float(x) would be
  // the tie itself: one rounding, from the double.
  EXPECT_EQ(bf16ToDouble(doubleToBF16(1 + 0x1p-8 + 0x1p-40)), 1 + 0x1p-7);
  // f16: 11 significant bits, max 65504, subnormals down to 2^-24.
  EXPECT_EQ(f16ToDouble(doubleToF16(1 + 0x1p-11)), 1.0);
  EXPECT_EQ(f16ToDouble(doubleToF16(65519.0)), 65504.0);
  EXPECT_TRUE(std::isinf(f16ToDouble(doubleToF16(65520.0))));
  EXPECT_EQ(f16ToDouble(doubleToF16(0x1p-24)), 0x1p-24);
  EXPECT_EQ(f16ToDouble(doubleToF16(0x1p-25)), 0.0); // tie to even 0
  EXPECT_EQ(f16ToDouble(doubleToF16(0x1.8p-25)), 0x1p-24);
  // Far below the smallest subnormal: a signed zero, not garbage.
  EXPECT_EQ(doubleToF16(-2.44e-8), 0x8000);
  EXPECT_EQ(doubleToF16(1e-30), 0x0000);
  EXPECT_EQ(doubleToBF16(-1e-60), 0x8000);
  EXPECT_TRUE(std::isinf(bf16ToDouble(doubleToBF16(1e39))));
  EXPECT_EQ(bf16ToDouble(doubleToBF16(0x1.fep127)), 0x1.fep127);
  EXPECT_TRUE(std::isnan(bf16ToDouble(doubleToBF16(std::nan("")))));
  // roundToDType agrees with store + load, i32 saturates.
  EXPECT_EQ(roundToDType(1 + 0x1p-30, DType::F32), 1.0);
  EXPECT_EQ(roundToDType(3.7, DType::I32), 4.0);
  EXPECT_EQ(roundToDType(1e20, DType::I32), double(INT32_MAX));
  EXPECT_EQ(roundToDType(std::nan(""), DType::I32), 0.0);
}

TEST(DataTest, GeneratorIsDeterministicAndThreadIndependent) {
  const int64_t n = (1 << 21) + 17;
  Distribution d;
  d.stddev = 0.5;
  std::vector<uint16_t> a(n), b(n), c(n);
  fill(a.data(), DType::BF16, n, d, 7, 1);
  fill(b.data(), DType::BF16, n, d, 7, 4);
  fill(c.data(), DType::BF16, n, d, 8, 4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double sum = 0, sq = 0, mx = 0;
  for (uint16_t v : a) {
    double x = bf16ToDouble(v);
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sq += x * x;
    mx = std::max(mx, std::fabs(x));
  }
  EXPECT_NEAR(sum / n, 0.0, 1e-3);
  EXPECT_NEAR(std::sqrt(sq / n), 0.5, 2e-3);
  EXPECT_LE(mx, 0.5 * 2 * std::sqrt(3.0) + 1e-2); // Irwin-Hall is bounded
  // A pinned value: the generator must not change silently (checksums of
  // runs depend on it).
  EXPECT_EQ(splitmix64(0, 0), 0xe220a8397b1dcdafULL);
  EXPECT_NE(streamKey(0, "a"), streamKey(0, "b"));
  EXPECT_NE(streamKey(0, "a"), streamKey(1, "a"));
}

TEST(DataTest, OtherDistributions) {
  Distribution ids;
  ids.kind = Distribution::Kind::DistinctIds;
  ids.rowLength = 8;
  ids.idRange = 12;
  std::vector<int32_t> v(8 * 100);
  fill(v.data(), DType::I32, int64_t(v.size()), ids, 3);
  for (int row = 0; row < 100; ++row) {
    std::set<int32_t> seen(v.begin() + row * 8, v.begin() + row * 8 + 8);
    EXPECT_EQ(seen.size(), 8u);
    EXPECT_GE(*seen.begin(), 0);
    EXPECT_LT(*seen.rbegin(), 12);
  }
  Distribution uniform;
  uniform.kind = Distribution::Kind::Uniform;
  uniform.low = 2;
  uniform.high = 3;
  std::vector<float> u(1000);
  fill(u.data(), DType::F32, 1000, uniform, 3);
  for (float x : u) {
    EXPECT_GE(x, 2.0f);
    EXPECT_LE(x, 3.0f);
  }
  Distribution poison;
  poison.kind = Distribution::Kind::Poison;
  std::vector<uint16_t> p(10);
  fill(p.data(), DType::F16, 10, poison, 0);
  for (uint16_t x : p)
    EXPECT_TRUE(std::isnan(f16ToDouble(x)));
}

TEST(DataTest, Fnv1a) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ULL);
  // Continuation: hashing in two parts equals hashing at once.
  EXPECT_EQ(fnv1a64("bar", 3, fnv1a64("foo", 3)), fnv1a64("foobar", 6));
  EXPECT_EQ(hex64(0xabcULL), "0000000000000abc");
}

} // namespace
