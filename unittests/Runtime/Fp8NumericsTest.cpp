//===- Fp8NumericsTest.cpp - The runtime's e4m3 encoding ------------------===//
//
// Numerics.h's floatToE4m3 / e4m3ToFloat against the table model of
// Fp8Model.h: hand-picked values, every code, random floats and midpoints.
//
//===----------------------------------------------------------------------===//

#include "Fp8Model.h"
#include "Numerics.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>

using namespace fp8_model;
using namespace moert;

namespace {

//===----------------------------------------------------------------------===//
// e4m3 encoding
//===----------------------------------------------------------------------===//

TEST(Fp8NumericsTest, E4m3EncodesHandPickedValues) {
  using moert::floatToE4m3;
  struct Case {
    float value;
    uint8_t code;
  };
  const Case cases[] = {
      {0.0f, 0x00},
      {-0.0f, 0x80},
      {1.0f, 0x38},
      {-2.0f, 0xc0},
      {0.1f, 0x1d}, // 1.6 * 2^-4 -> 1.625 * 2^-4
      {240.0f, 0x77},
      {416.0f, 0x7d},
      {448.0f, 0x7e},
      {-448.0f, 0xfe},
      // Saturation: everything beyond 448 (no infinity in f8E4M3FN).
      {432.0f, 0x7e},  // the 416 / 448 midpoint: to even (448)
      {449.0f, 0x7e},
      {464.0f, 0x7e},  // the 448 / 480 midpoint: 480 would be NaN
      {500.0f, 0x7e},
      {1e30f, 0x7e},
      {-1e30f, 0xfe},
      {std::numeric_limits<float>::infinity(), 0x7e},
      {-std::numeric_limits<float>::infinity(), 0xfe},
      {std::numeric_limits<float>::quiet_NaN(), 0x7f},
      // Ties to even, and just past a tie.
      {1.0625f, 0x38},  // 1 / 1.125 midpoint -> 1 (mantissa 0)
      {1.1875f, 0x3a},  // 1.125 / 1.25 midpoint -> 1.25 (mantissa 2)
      {std::nextafter(1.0625f, 2.0f), 0x39},
      {std::nextafter(1.1875f, 0.0f), 0x39},
      {17.0f, 0x58},    // 16 / 18 -> 16
      {19.0f, 0x5a},    // 18 / 20 -> 20
      {-19.0f, 0xda},
      {1.9375f, 0x40},  // 1.875 / 2 midpoint: the carry into the exponent
      // Subnormals: m * 2^-9.
      {0x1p-9f, 0x01},
      {3 * 0x1p-9f, 0x03},
      {-3 * 0x1p-9f, 0x83},
      {7 * 0x1p-9f, 0x07},
      {0x1p-6f, 0x08},      // the smallest normal
      {7.5f * 0x1p-9f, 0x08}, // 7 / 8 units midpoint -> 8 (the normal)
      {0x1p-10f, 0x00},     // half a unit: to even (zero)
      {std::nextafter(0x1p-10f, 1.0f), 0x01},
      {-0x1p-10f, 0x80},
      {3 * 0x1p-10f, 0x02}, // 1.5 units -> 2
      {5 * 0x1p-10f, 0x02}, // 2.5 units -> 2
      {0x1p-11f, 0x00},
      {1e-40f, 0x00},       // a float subnormal
      {-1e-40f, 0x80},
  };
  for (const Case &c : cases) {
    EXPECT_EQ(int(floatToE4m3(c.value)), int(c.code))
        << "value " << c.value << " (" << std::hexfloat << c.value << ")";
    // The independent model agrees on every hand-picked case.
    EXPECT_EQ(int(e4m3Nearest(double(c.value))), int(c.code)) << c.value;
  }
}

TEST(Fp8NumericsTest, E4m3DecodesEveryCodeAndRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    uint8_t code = uint8_t(c);
    float f = moert::e4m3ToFloat(code);
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(f)) << c;
      EXPECT_EQ(moert::floatToE4m3(f), 0x7f) << c;
      continue;
    }
    ASSERT_EQ(double(f), e4m3Value(code)) << c;
    ASSERT_EQ(int(moert::floatToE4m3(f)), c) << c;
  }
  EXPECT_EQ(moert::e4m3ToFloat(0x7e), 448.0f);
  EXPECT_EQ(moert::e4m3ToFloat(0x01), 0x1p-9f);
  EXPECT_EQ(moert::e4m3ToFloat(0x08), 0x1p-6f);
  EXPECT_TRUE(std::signbit(moert::e4m3ToFloat(0x80)));
}

TEST(Fp8NumericsTest, E4m3MatchesTheModelOnRandomFloats) {
  // Random float bit patterns with exponents around e4m3's range (2^-12 to
  // 2^10), and every midpoint between neighbouring codes and its two float
  // neighbours.
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<uint32_t> mantissa(0, 0x7fffff),
      exponent(127 - 12, 127 + 10), sign(0, 1);
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = (sign(rng) << 31) | (exponent(rng) << 23) | mantissa(rng);
    float f;
    std::memcpy(&f, &bits, 4);
    ASSERT_EQ(int(moert::floatToE4m3(f)), int(e4m3Nearest(f))) << f;
  }
  const std::vector<double> &values = positiveValues();
  for (size_t c = 0; c + 1 < values.size(); ++c) {
    float mid = float((values[c] + values[c + 1]) / 2); // exact in float
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f),
                    -mid})
      ASSERT_EQ(int(moert::floatToE4m3(f)), int(e4m3Nearest(f))) << f;
  }
}

} // namespace
