//===- DataTest.cpp - Conversions, the generator, checksums ---------------===//

#include "Data.h"

#include "gtest/gtest.h"

#include <algorithm>
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

/// The nearest e4m3 value to `x` by brute force over all 254 finite codes
/// (ties: the even code), saturating at +-448: the definition the encoder
/// must meet, independently of how it computes.
uint8_t nearestE4M3(double x) {
  if (std::fabs(x) >= 448)
    return x < 0 ? 0xfe : 0x7e;
  uint8_t best = 0;
  double bestDistance = std::numeric_limits<double>::infinity();
  for (uint32_t c = 0; c < 256; ++c) {
    double v = e4m3ToDouble(uint8_t(c));
    if (std::isnan(v) || std::signbit(v) != std::signbit(x))
      continue;
    double distance = std::fabs(v - x);
    if (distance < bestDistance ||
        (distance == bestDistance && (c & 1) == 0 && (best & 1) == 1)) {
      best = uint8_t(c);
      bestDistance = distance;
    }
  }
  return best;
}

TEST(DataTest, E4M3DecodesExactly) {
  EXPECT_EQ(e4m3ToDouble(0x00), 0.0);
  EXPECT_TRUE(std::signbit(e4m3ToDouble(0x80)));
  EXPECT_EQ(e4m3ToDouble(0x38), 1.0);         // exponent 7 = bias
  EXPECT_EQ(e4m3ToDouble(0x39), 1.125);       // 3 mantissa bits
  EXPECT_EQ(e4m3ToDouble(0xc0), -2.0);
  EXPECT_EQ(e4m3ToDouble(0x7e), 448.0);       // the largest finite
  EXPECT_EQ(e4m3ToDouble(0xfe), -448.0);
  EXPECT_EQ(e4m3ToDouble(0x77), 240.0);       // 1.875 * 2^7
  EXPECT_EQ(e4m3ToDouble(0x78), 256.0);       // exponent 15 is finite
  EXPECT_EQ(e4m3ToDouble(0x08), 0x1p-6);      // the smallest normal
  EXPECT_EQ(e4m3ToDouble(0x07), 7 * 0x1p-9);  // the largest subnormal
  EXPECT_EQ(e4m3ToDouble(0x01), 0x1p-9);      // the smallest subnormal
  EXPECT_TRUE(std::isnan(e4m3ToDouble(0x7f))); // the only NaNs, no inf
  EXPECT_TRUE(std::isnan(e4m3ToDouble(0xff)));
  int finite = 0;
  for (uint32_t c = 0; c < 256; ++c)
    finite += std::isfinite(e4m3ToDouble(uint8_t(c)));
  EXPECT_EQ(finite, 254);
}

TEST(DataTest, E4M3EncodesToNearestEvenAndSaturates) {
  // Every code round-trips (NaN to the canonical 0x7f).
  for (uint32_t c = 0; c < 256; ++c) {
    double v = e4m3ToDouble(uint8_t(c));
    EXPECT_EQ(doubleToE4M3(v), std::isnan(v) ? 0x7f : c) << std::hex << c;
  }
  // Ties to even: between 1 (0x38) and 1.125 (0x39), between 1.125 and
  // 1.25 (0x3a).
  EXPECT_EQ(doubleToE4M3(1.0625), 0x38);
  EXPECT_EQ(doubleToE4M3(1.1875), 0x3a);
  EXPECT_EQ(doubleToE4M3(1.0625 + 0x1p-40), 0x39); // one rounding
  EXPECT_EQ(doubleToE4M3(-1.0625), 0xb8);
  // Saturation: every magnitude from 448 up, infinity included (464, the
  // tie with the would-be 480, too).
  EXPECT_EQ(doubleToE4M3(447.0), 0x7e);
  EXPECT_EQ(doubleToE4M3(464.0), 0x7e);
  EXPECT_EQ(doubleToE4M3(1e30), 0x7e);
  EXPECT_EQ(doubleToE4M3(std::numeric_limits<double>::infinity()), 0x7e);
  EXPECT_EQ(doubleToE4M3(-std::numeric_limits<double>::infinity()), 0xfe);
  EXPECT_EQ(doubleToE4M3(std::nan("")), 0x7f);
  EXPECT_EQ(doubleToE4M3(-std::nan("")), 0x7f);
  // Subnormals (units of 2^-9): half the smallest is a tie to 0; the tie
  // between the largest subnormal and the smallest normal goes to 0x08.
  EXPECT_EQ(doubleToE4M3(0x1p-10), 0x00);
  EXPECT_EQ(doubleToE4M3(-0x1p-10), 0x80);
  EXPECT_EQ(doubleToE4M3(0x1.8p-10), 0x01);
  EXPECT_EQ(doubleToE4M3(2.5 * 0x1p-9), 0x02);
  EXPECT_EQ(doubleToE4M3(7.5 * 0x1p-9), 0x08);
  EXPECT_EQ(doubleToE4M3(1e-30), 0x00);
  // Against the brute-force nearest code, on a dense sweep of magnitudes
  // (every binade, midpoints and their neighbours included).
  for (int e = -12; e <= 9; ++e)
    for (int m = 0; m < 64; ++m)
      for (double nudge : {-0x1p-30, 0.0, 0x1p-30}) {
        double x = std::ldexp(1 + m / 64.0, e) * (1 + nudge);
        EXPECT_EQ(doubleToE4M3(x), nearestE4M3(x)) << x;
        EXPECT_EQ(doubleToE4M3(-x), nearestE4M3(-x)) << -x;
      }
  // Through the element functions.
  std::vector<uint8_t> buf(3);
  storeElement(buf.data(), DType::F8E4M3, 1, 3.3);
  EXPECT_EQ(buf[1], 0x45); // 3.25 = 1.625 * 2^1
  EXPECT_EQ(loadElement(buf.data(), DType::F8E4M3, 1), 3.25);
  EXPECT_EQ(roundToDType(500.0, DType::F8E4M3), 448.0);
  EXPECT_EQ(roundToDType(0.3, DType::F8E4M3), 0.3125);
  EXPECT_EQ(dtypeBytes(DType::F8E4M3), 1);
}

TEST(DataTest, Fp8WeightsAndTheirScalesAreConsistent) {
  // Six 256 x 384 matrices in 128 x 128 blocks (2 x 3 per matrix).
  Distribution weight;
  weight.kind = Distribution::Kind::Fp8Weight;
  weight.rows = 256;
  weight.cols = 384;
  weight.block = 128;
  weight.stddev = 1 / std::sqrt(384.0);
  Distribution scales = weight;
  scales.kind = Distribution::Kind::Fp8Scale;
  const int64_t n = 6 * 256 * 384, nb = 6 * 2 * 3;
  const uint64_t key = streamKey(5, "layers.0.experts.w13");
  std::vector<uint8_t> codes(n), codes4(n);
  std::vector<float> s(nb), s4(nb);
  fill(codes.data(), DType::F8E4M3, n, weight, key, 1);
  fill(s.data(), DType::F32, nb, scales, key, 1);
  // The same bytes on several threads and however the range is split (here
  // through row bands).
  fill(codes4.data(), DType::F8E4M3, n, weight, key, 4);
  EXPECT_EQ(codes, codes4);
  std::fill(codes4.begin(), codes4.end(), 0);
  std::vector<int64_t> cut = {0, 1000, 50000, 50001, n};
  for (size_t c = 0; c + 1 < cut.size(); ++c)
    fillRange(codes4.data(), DType::F8E4M3, cut[c], cut[c + 1], weight, key);
  fillRange(s4.data(), DType::F32, 0, 5, scales, key);
  fillRange(s4.data(), DType::F32, 5, nb, scales, key);
  EXPECT_EQ(codes, codes4);
  EXPECT_EQ(s, s4);

  std::vector<double> blockMax(size_t(nb), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t m = i / (256 * 384), r = i / 384 % 256, col = i % 384;
    int64_t b = (m * 2 + r / 128) * 3 + col / 128;
    double scale = s[size_t(b)];
    ASSERT_GT(scale, 0);
    double w = fp8WouldBeWeight(weight, key, i);
    // The would-be weight is a bf16 value.
    ASSERT_EQ(w, bf16ToDouble(doubleToBF16(w)));
    double code = e4m3ToDouble(codes[size_t(i)]);
    ASSERT_TRUE(std::isfinite(code));
    // code * scale reproduces w within half an e4m3 step of w / scale
    // (2^-4 relative to its binade, 2^-10 among the subnormals).
    double q = w / scale;
    double halfStep =
        std::fabs(q) < 0x1p-6 ? 0x1p-10
                              : std::ldexp(1.0, std::ilogb(std::fabs(q)) - 4);
    ASSERT_LE(std::fabs(code - q), halfStep * (1 + 1e-6)) << i;
    blockMax[size_t(b)] = std::max(blockMax[size_t(b)], std::fabs(code));
  }
  // Each block's largest magnitude is its amax: code 448 exactly, and the
  // scale is amax / 448 in fp32.
  double smallest = 1e30, largest = 0;
  for (int64_t b = 0; b < nb; ++b) {
    EXPECT_EQ(blockMax[size_t(b)], 448.0) << b;
    EXPECT_EQ(s[size_t(b)],
              fp8BlockScale(weight, key, b / 6, b / 3 % 2, b % 3));
    smallest = std::min(smallest, double(s[size_t(b)]));
    largest = std::max(largest, double(s[size_t(b)]));
  }
  // Scales differ between blocks (as in a real checkpoint).
  EXPECT_GT(largest / smallest, 1.3);
  // Another key gives other weights.
  std::vector<uint8_t> other(n);
  fill(other.data(), DType::F8E4M3, n, weight, key + 1);
  EXPECT_NE(codes, other);
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
