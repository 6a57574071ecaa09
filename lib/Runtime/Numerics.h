//===- Numerics.h - bf16/f16 conversions and fixed-order reductions -*- C++
//-*-===//
//
// The CPU backend is the numerics oracle, so every rounding is spelled out
// here: float -> bf16/f16 rounds to nearest, ties to even (NaN stays NaN,
// overflow gives infinity); bf16/f16 -> float is exact. float -> e4m3 (the
// format of fp8 expert weights and quantized activations) rounds to nearest
// even and saturates to +-448; e4m3 -> float is exact. Header-only so the
// unit tests check exactly these functions.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_LIB_RUNTIME_NUMERICS_H
#define MOE_LIB_RUNTIME_NUMERICS_H

#include "moe-runtime/moe_runtime.h"

#include <cstdint>
#include <cstring>

namespace moert {

inline uint32_t floatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

inline float bitsToFloat(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

inline float bf16ToFloat(uint16_t v) { return bitsToFloat(uint32_t(v) << 16); }

inline uint16_t floatToBf16(float f) {
  uint32_t b = floatBits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) // NaN: keep the sign, make it quiet
    return uint16_t((b >> 16) | 0x0040u);
  // Round to nearest even; a carry out of the mantissa bumps the exponent,
  // which is exactly right (up to infinity).
  b += 0x7fffu + ((b >> 16) & 1u);
  return uint16_t(b >> 16);
}

inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    float magnitude = float(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) // infinity or NaN (payload kept)
    return bitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  return bitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline uint16_t floatToF16(float f) {
  uint32_t b = floatBits(f);
  uint16_t sign = uint16_t((b >> 16) & 0x8000u);
  uint32_t magnitude = b & 0x7fffffffu;
  if (magnitude > 0x7f800000u) // NaN
    return uint16_t(sign | 0x7e00u);
  if (magnitude == 0x7f800000u) // infinity
    return uint16_t(sign | 0x7c00u);
  int32_t exponent = int32_t(magnitude >> 23) - 127;
  if (exponent > 15) // >= 2^16: beyond the largest finite f16 after rounding
    return uint16_t(sign | 0x7c00u);
  uint32_t mantissa = magnitude & 0x7fffffu;
  if (exponent >= -14) {
    // Normal in f16: keep 10 of 23 mantissa bits, round the other 13.
    uint32_t h = (uint32_t(exponent + 15) << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
      ++h; // may carry into the exponent, up to infinity: correct
    return uint16_t(sign | h);
  }
  // Subnormal (or zero) in f16: units of 2^-24. The value is
  // (mantissa | 2^23) * 2^(exponent - 23), so shift right by -exponent - 1.
  int32_t shift = -exponent - 1;
  if (shift > 24) // below 2^-25: rounds to zero (also float zero/subnormals)
    return sign;
  uint32_t full = mantissa | 0x800000u;
  uint32_t h = full >> shift;
  uint32_t rest = full & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1u)))
    ++h; // may become the smallest normal (0x400): correct encoding
  return uint16_t(sign | h);
}

/// float -> e4m3 (f8E4M3FN: 1 sign, 4 exponent bits with bias 7, 3 mantissa
/// bits; no infinities; 0x7f / 0xff are NaN; largest finite 448 = 0x7e;
/// subnormals are m * 2^-9). Rounds to nearest even and saturates to +-448,
/// like PTX cvt.rn.satfinite.e4m3x2.f32: every magnitude >= 448, infinity
/// included, gives +-448; NaN gives 0x7f.
inline uint8_t floatToE4m3(float f) {
  uint32_t b = floatBits(f);
  uint8_t sign = uint8_t((b >> 24) & 0x80u);
  uint32_t magnitude = b & 0x7fffffffu;
  if (magnitude > 0x7f800000u) // NaN
    return 0x7f;
  if (magnitude >= 0x43e00000u) // >= 448 = 1.75 * 2^8, infinity included
    return uint8_t(sign | 0x7eu);
  int32_t exponent = int32_t(magnitude >> 23) - 127;
  uint32_t mantissa = magnitude & 0x7fffffu;
  if (exponent >= -6) {
    // Normal in e4m3: keep 3 of 23 mantissa bits, round the other 20. A
    // carry bumps the exponent, which is right; below 448 the result is at
    // most 0x7e.
    uint32_t q = (uint32_t(exponent + 7) << 3) | (mantissa >> 20);
    uint32_t rest = mantissa & 0xfffffu;
    if (rest > 0x80000u || (rest == 0x80000u && (q & 1u)))
      ++q;
    return uint8_t(sign | q);
  }
  // Subnormal (or zero) in e4m3: units of 2^-9. Below 2^-10 (half a unit),
  // float zeros and subnormals included, the value rounds to zero.
  if (exponent < -10)
    return sign;
  // The value is full * 2^(exponent - 23), i.e. full >> (14 - exponent)
  // units; the shift is 21..24.
  uint32_t full = mantissa | 0x800000u;
  int32_t shift = 14 - exponent;
  uint32_t q = full >> shift;
  uint32_t rest = full & ((1u << shift) - 1u);
  uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1u)))
    ++q; // may become the smallest normal (0x08): the right encoding
  return uint8_t(sign | q);
}

/// e4m3 (f8E4M3FN) -> float, exact; 0x7f / 0xff give a quiet NaN.
inline float e4m3ToFloat(uint8_t v) {
  uint32_t sign = uint32_t(v & 0x80u) << 24;
  uint32_t exponent = (v >> 3) & 0xfu, mantissa = v & 7u;
  if (exponent == 15 && mantissa == 7)
    return bitsToFloat(sign | 0x7fc00000u);
  if (exponent == 0) { // mantissa * 2^-9, exact
    float magnitude = float(mantissa) * 0x1p-9f;
    return sign ? -magnitude : magnitude;
  }
  return bitsToFloat(sign | ((exponent + 120) << 23) | (mantissa << 20));
}

/// Rounds a float to `dtype` and back (the value a store then load gives).
inline float roundToDtype(float v, moert_dtype dtype) {
  switch (dtype) {
  case MOERT_BF16:
    return bf16ToFloat(floatToBf16(v));
  case MOERT_F16:
    return f16ToFloat(floatToF16(v));
  default:
    return v;
  }
}

/// Element `index` of a float buffer of `dtype`, as float.
inline float loadElement(const void *base, moert_dtype dtype, int64_t index) {
  switch (dtype) {
  case MOERT_BF16:
    return bf16ToFloat(static_cast<const uint16_t *>(base)[index]);
  case MOERT_F16:
    return f16ToFloat(static_cast<const uint16_t *>(base)[index]);
  default:
    return static_cast<const float *>(base)[index];
  }
}

/// Stores `v` rounded to `dtype` as element `index` of a float buffer.
inline void storeElement(void *base, moert_dtype dtype, int64_t index,
                         float v) {
  switch (dtype) {
  case MOERT_BF16:
    static_cast<uint16_t *>(base)[index] = floatToBf16(v);
    break;
  case MOERT_F16:
    static_cast<uint16_t *>(base)[index] = floatToF16(v);
    break;
  default:
    static_cast<float *>(base)[index] = v;
    break;
  }
}

/// Converts `n` elements starting at element `start` to float.
inline void loadRow(const void *base, moert_dtype dtype, int64_t start,
                    int64_t n, float *out) {
  if (n <= 0)
    return;
  switch (dtype) {
  case MOERT_BF16: {
    const uint16_t *src = static_cast<const uint16_t *>(base) + start;
    for (int64_t i = 0; i < n; ++i)
      out[i] = bf16ToFloat(src[i]);
    break;
  }
  case MOERT_F16: {
    const uint16_t *src = static_cast<const uint16_t *>(base) + start;
    for (int64_t i = 0; i < n; ++i)
      out[i] = f16ToFloat(src[i]);
    break;
  }
  default:
    std::memcpy(out, static_cast<const float *>(base) + start,
                size_t(n) * sizeof(float));
    break;
  }
}

/// A row as float: the buffer itself for F32, else converted into `scratch`.
inline const float *rowAsFloat(const void *base, moert_dtype dtype,
                               int64_t start, int64_t n, float *scratch) {
  if (dtype == MOERT_F32)
    return static_cast<const float *>(base) + start;
  loadRow(base, dtype, start, n, scratch);
  return scratch;
}

/// The number of independent partial sums of dotProduct.
constexpr int kDotLanes = 16;

/// sum_i a[i] * b[i] in fp32, in a fixed order that vectorizes: lane l
/// accumulates the products i = l, l + 16, l + 32, ... of the first
/// n - n % 16 elements in increasing i; the tail element n - n % 16 + l is then
/// added to lane l; the lanes are summed as a balanced binary tree
/// ((l0 + l1) + (l2 + l3)) + ... Every product and sum is rounded to fp32
/// (the runtime is compiled with -ffp-contract=off: no fused multiply-adds).
inline float dotProduct(const float *a, const float *b, int64_t n) {
  float lanes[kDotLanes] = {};
  int64_t body = n - n % kDotLanes;
  for (int64_t i = 0; i < body; i += kDotLanes)
    for (int l = 0; l < kDotLanes; ++l)
      lanes[l] += a[i + l] * b[i + l];
  for (int64_t i = body; i < n; ++i)
    lanes[i - body] += a[i] * b[i];
  for (int width = kDotLanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; ++l)
      lanes[l] = lanes[2 * l] + lanes[2 * l + 1];
  return lanes[0];
}

} // namespace moert

#endif // MOE_LIB_RUNTIME_NUMERICS_H
