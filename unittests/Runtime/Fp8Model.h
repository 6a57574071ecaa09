//===- Fp8Model.h - An independent model of e4m3 for tests -----*- C++ -*-===//
//
// e4m3 (f8E4M3FN) as a table of the 127 non-negative finite values: a value's
// code is the nearest entry, ties to the even code, saturating at 448. The
// runtime's tests compare Numerics.h's bit-level encoder against it
// (Fp8NumericsTest.cpp) and build their fp8 references on it (Fp8Test.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_UNITTESTS_RUNTIME_FP8MODEL_H
#define MOE_UNITTESTS_RUNTIME_FP8MODEL_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace fp8_model {


/// The value of a finite code: exponent field 0 is m * 2^-9, else
/// (8 + m) * 2^(e - 10).
inline double e4m3Value(uint8_t code) {
  int e = (code >> 3) & 15, m = code & 7;
  double v = e == 0 ? std::ldexp(double(m), -9) : std::ldexp(8.0 + m, e - 10);
  return (code & 0x80) ? -v : v;
}

/// The values of codes 0x00 .. 0x7e, increasing.
inline const std::vector<double> &positiveValues() {
  static const std::vector<double> values = [] {
    std::vector<double> v;
    for (int c = 0; c <= 0x7e; ++c)
      v.push_back(e4m3Value(uint8_t(c)));
    return v;
  }();
  return values;
}

/// The code nearest to v, ties to the even code, saturating to +-448; NaN
/// gives 0x7f.
inline uint8_t e4m3Nearest(double v) {
  if (std::isnan(v))
    return 0x7f;
  uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  double a = std::fabs(v);
  if (a >= 448.0)
    return uint8_t(sign | 0x7e);
  const std::vector<double> &values = positiveValues();
  // The largest code whose value is <= a (a < 448: never the last).
  int lo = int(std::upper_bound(values.begin(), values.end(), a) -
               values.begin()) -
           1;
  double below = a - values[size_t(lo)], above = values[size_t(lo + 1)] - a;
  int code = below < above ? lo : above < below ? lo + 1 : (lo % 2 ? lo + 1 : lo);
  return uint8_t(sign | code);
}

} // namespace fp8_model

#endif // MOE_UNITTESTS_RUNTIME_FP8MODEL_H
