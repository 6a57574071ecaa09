//===- Data.cpp - Element types, conversions, seeded data, checksums ------===//

#include "Data.h"

#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

using namespace moerun;

bool moerun::parseDType(std::string_view name, DType &out) {
  std::optional<DType> dtype = moert::contract::parseDType(name);
  if (dtype)
    out = *dtype;
  return dtype.has_value();
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

double moerun::bf16ToDouble(uint16_t bits) {
  uint32_t word = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &word, 4);
  return f;
}

namespace {
double f16ToDoubleSlow(uint16_t bits) {
  int sign = bits >> 15;
  int exponent = (bits >> 10) & 0x1f;
  int mantissa = bits & 0x3ff;
  double value;
  if (exponent == 0)
    value = std::ldexp(double(mantissa), -24);
  else if (exponent == 31)
    value = mantissa ? std::numeric_limits<double>::quiet_NaN()
                     : std::numeric_limits<double>::infinity();
  else
    value = std::ldexp(double(mantissa | 0x400), exponent - 25);
  return sign ? -value : value;
}

struct F16Table {
  double values[65536];
  F16Table() {
    for (uint32_t b = 0; b < 65536; ++b)
      values[b] = f16ToDoubleSlow(uint16_t(b));
  }
};
} // namespace

double moerun::f16ToDouble(uint16_t bits) {
  static const F16Table table; // thread-safe initialization
  return table.values[bits];
}

namespace {
/// Rounds finite nonzero `x` to `bits` significant bits, nearest-even, with
/// `minExponent` the exponent (frexp convention) of the smallest normal.
double roundSignificand(double x, int bits, int minExponent) {
  int exponent;
  std::frexp(x, &exponent);
  int quantum = std::max(exponent, minExponent) - bits;
  return std::ldexp(std::nearbyint(std::ldexp(x, -quantum)), quantum);
}
} // namespace

uint16_t moerun::doubleToBF16(double value) {
  if (std::isnan(value))
    return std::signbit(value) ? 0xffc0 : 0x7fc0;
  double r = value == 0 || std::isinf(value) ? value
                                             : roundSignificand(value, 8, -125);
  if (std::fabs(r) > 0x1.fep127)
    r = std::copysign(std::numeric_limits<double>::infinity(), value);
  float f = float(r); // exact: r has at most 8 significant bits
  uint32_t word;
  std::memcpy(&word, &f, 4);
  return uint16_t(word >> 16);
}

uint16_t moerun::doubleToF16(double value) {
  uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  if (std::isnan(value))
    return uint16_t(sign | 0x7e00);
  double a = std::fabs(value);
  if (std::isinf(a))
    return uint16_t(sign | 0x7c00);
  if (a == 0)
    return sign;
  double r = roundSignificand(a, 11, -13);
  if (r == 0) // below half the smallest subnormal
    return sign;
  if (r > 65504.0)
    return uint16_t(sign | 0x7c00);
  int exponent;
  std::frexp(r, &exponent); // r = m * 2^exponent, m in [0.5, 1)
  if (exponent < -13) {     // subnormal: r = mantissa * 2^-24
    return uint16_t(sign | uint16_t(std::ldexp(r, 24)));
  }
  // Normal: biased exponent e = exponent + 14, mantissa 10 bits.
  uint32_t mantissa = uint32_t(std::ldexp(r, 11 - exponent)) - 0x400;
  return uint16_t(sign | uint16_t((exponent + 14) << 10) | uint16_t(mantissa));
}

namespace {
double e4m3ToDoubleSlow(uint8_t bits) {
  int exponent = (bits >> 3) & 0xf, mantissa = bits & 7;
  double value;
  if (exponent == 15 && mantissa == 7)
    value = std::numeric_limits<double>::quiet_NaN();
  else if (exponent == 0)
    value = std::ldexp(double(mantissa), -9); // subnormal
  else
    value = std::ldexp(double(8 + mantissa), exponent - 10);
  return bits & 0x80 ? -value : value;
}

struct E4M3Table {
  double values[256];
  E4M3Table() {
    for (uint32_t b = 0; b < 256; ++b)
      values[b] = e4m3ToDoubleSlow(uint8_t(b));
  }
};
} // namespace

double moerun::e4m3ToDouble(uint8_t bits) {
  static const E4M3Table table; // thread-safe initialization
  return table.values[bits];
}

uint8_t moerun::doubleToE4M3(double value) {
  if (std::isnan(value))
    return 0x7f;
  uint8_t sign = std::signbit(value) ? 0x80 : 0;
  double a = std::fabs(value);
  if (a >= kE4M3Max) // saturate (no infinities; 480 would be the NaN code)
    return uint8_t(sign | 0x7e);
  if (a == 0)
    return sign;
  // 4 significant bits; the smallest normal 2^-6 has frexp exponent -5, so
  // below it the spacing stays 2^-9 (subnormals).
  double r = roundSignificand(a, 4, -5);
  if (r == 0)
    return sign;
  int exponent;
  std::frexp(r, &exponent); // r = m * 2^exponent, m in [0.5, 1); r <= 448
  if (exponent < -5)        // subnormal: r = mantissa * 2^-9
    return uint8_t(sign | uint8_t(std::ldexp(r, 9)));
  // Normal: biased exponent exponent + 6, mantissa r * 2^(4 - exponent) - 8.
  int mantissa = int(std::ldexp(r, 4 - exponent)) - 8;
  return uint8_t(sign | uint8_t((exponent + 6) << 3) | uint8_t(mantissa));
}

double moerun::loadElement(const void *data, DType dtype, int64_t index) {
  switch (dtype) {
  case DType::F8E4M3:
    return e4m3ToDouble(static_cast<const uint8_t *>(data)[index]);
  case DType::BF16:
    return bf16ToDouble(static_cast<const uint16_t *>(data)[index]);
  case DType::F16:
    return f16ToDouble(static_cast<const uint16_t *>(data)[index]);
  case DType::F32:
    return static_cast<const float *>(data)[index];
  case DType::I32:
    return static_cast<const int32_t *>(data)[index];
  }
  return 0;
}

void moerun::storeElement(void *data, DType dtype, int64_t index,
                          double value) {
  switch (dtype) {
  case DType::F8E4M3:
    static_cast<uint8_t *>(data)[index] = doubleToE4M3(value);
    return;
  case DType::BF16:
    static_cast<uint16_t *>(data)[index] = doubleToBF16(value);
    return;
  case DType::F16:
    static_cast<uint16_t *>(data)[index] = doubleToF16(value);
    return;
  case DType::F32:
    static_cast<float *>(data)[index] = float(value);
    return;
  case DType::I32: {
    int32_t v = 0;
    if (!std::isnan(value))
      v = value >= 2147483647.0    ? INT32_MAX
          : value <= -2147483648.0 ? INT32_MIN
                                   : int32_t(std::nearbyint(value));
    static_cast<int32_t *>(data)[index] = v;
    return;
  }
  }
}

double moerun::roundToDType(double value, DType dtype) {
  unsigned char buf[4];
  storeElement(buf, dtype, 0, value);
  return loadElement(buf, dtype, 0);
}

//===----------------------------------------------------------------------===//
// Generator and checksums
//===----------------------------------------------------------------------===//

uint64_t moerun::splitmix64(uint64_t key, uint64_t counter) {
  uint64_t z = key + (counter + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t moerun::fnv1a64(const void *data, size_t bytes, uint64_t hash) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::string moerun::hex64(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(value));
  return buf;
}

uint64_t moerun::streamKey(uint64_t seed, std::string_view name) {
  return splitmix64(seed, 0) ^ fnv1a64(name.data(), name.size());
}

namespace {
/// Element i of Normal(stddev) on stream `key`. Irwin-Hall: the sum of 4
/// uniforms has mean 2 and variance 1/3. Plain arithmetic (no libm), so the
/// bits are the same everywhere.
double normalValue(uint64_t key, int64_t i, double stddev) {
  double sum = 0;
  for (uint64_t j = 0; j < 4; ++j)
    sum += uniformOf(splitmix64(key, uint64_t(i) * 4 + j));
  return (sum - 2.0) * 1.7320508075688772 * stddev;
}

int64_t blocksOf(int64_t n, int64_t block) {
  return block > 0 ? (n + block - 1) / block : 0;
}

/// Xored into a weight's key for the stream of its fp8 block multipliers.
constexpr uint64_t kFp8BlockStream = 0x6670386d756c7469ULL; // "fp8multi"

} // namespace

double moerun::fp8WouldBeWeight(const Distribution &dist, uint64_t key,
                                int64_t index) {
  // The block's multiplier, uniform in [0.4, 1.6], on a stream of its own.
  const int64_t RB = blocksOf(dist.rows, dist.block);
  const int64_t CB = blocksOf(dist.cols, dist.block);
  int64_t matrix = index / (dist.rows * dist.cols);
  int64_t r = index / dist.cols % dist.rows, c = index % dist.cols;
  int64_t blockIndex = (matrix * RB + r / dist.block) * CB + c / dist.block;
  double multiplier =
      0.4 + 1.2 * uniformOf(splitmix64(key ^ kFp8BlockStream,
                                       uint64_t(blockIndex)));
  return bf16ToDouble(
      doubleToBF16(normalValue(key, index, dist.stddev * multiplier)));
}

float moerun::fp8BlockScale(const Distribution &dist, uint64_t key,
                            int64_t matrix, int64_t rowBlock,
                            int64_t colBlock) {
  int64_t r0 = rowBlock * dist.block, c0 = colBlock * dist.block;
  int64_t r1 = std::min(dist.rows, r0 + dist.block);
  int64_t c1 = std::min(dist.cols, c0 + dist.block);
  float amax = 0; // bf16 values: exact in float
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) {
      int64_t index = (matrix * dist.rows + r) * dist.cols + c;
      amax = std::max(amax,
                      float(std::fabs(fp8WouldBeWeight(dist, key, index))));
    }
  // fp32 division, as the checkpoint's quantizer (and fp8 rule 1) has it.
  return std::max(amax, 1e-10f) / float(kE4M3Max);
}

int64_t moerun::ShardMap::operator()(int64_t i) const {
  if (identity())
    return i;
  int64_t inner = 1;
  for (size_t d = size_t(dim) + 1; d < shape.size(); ++d)
    inner *= shape[d];
  const int64_t local = shape[size_t(dim)], segment = local / segments;
  const int64_t outer = i / (local * inner), c = i / inner % local;
  const int64_t whole = c / segment * segment * parts + index * segment +
                        c % segment;
  return (outer * local * parts + whole) * inner + i % inner;
}

void moerun::fillRange(void *data, DType dtype, int64_t begin, int64_t end,
                       const Distribution &dist, uint64_t key,
                       const ShardMap &shard) {
  using Kind = Distribution::Kind;
  if (end <= begin)
    return; // Nothing to fill; `data` may be null (an empty buffer).
  if (dist.kind == Kind::Poison) {
    int64_t b = dtypeBytes(dtype);
    std::memset(static_cast<char *>(data) + begin * b, 0xff,
                size_t((end - begin) * b));
    return;
  }
  if (dist.kind == Kind::DistinctIds) {
    // Row r (rowLength ids): a partial Fisher-Yates shuffle of [0, idRange)
    // driven by counters r*rowLength + j. Rows are generated whole.
    int64_t n = dist.rowLength;
    std::vector<int64_t> pool;
    for (int64_t row = begin / n; row * n < end; ++row) {
      pool.resize(static_cast<size_t>(dist.idRange));
      for (int64_t i = 0; i < dist.idRange; ++i)
        pool[size_t(i)] = i;
      for (int64_t j = 0; j < n; ++j) {
        int64_t index = row * n + j;
        int64_t remaining = dist.idRange - j;
        int64_t pick = j;
        if (remaining > 0)
          pick +=
              int64_t(splitmix64(key, uint64_t(index)) % uint64_t(remaining));
        if (pick < dist.idRange)
          std::swap(pool[size_t(j)], pool[size_t(pick)]);
        if (index >= begin && index < end)
          storeElement(data, dtype, index,
                       j < dist.idRange ? double(pool[size_t(j)]) : 0.0);
      }
    }
    return;
  }
  if (dist.kind == Kind::Fp8Weight) {
    // Row band by row band: the scales of a band's blocks first.
    const int64_t RB = blocksOf(dist.rows, dist.block);
    const int64_t CB = blocksOf(dist.cols, dist.block);
    std::vector<float> scales(static_cast<size_t>(CB));
    int64_t cachedBand = -1;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t g = shard(i);
      int64_t m = g / (dist.rows * dist.cols);
      int64_t r = g / dist.cols % dist.rows, c = g % dist.cols;
      int64_t band = m * RB + r / dist.block;
      if (band != cachedBand) {
        for (int64_t b = 0; b < CB; ++b)
          scales[size_t(b)] = fp8BlockScale(dist, key, m, r / dist.block, b);
        cachedBand = band;
      }
      // fp32 division, then one rounding to e4m3 (storeElement).
      float q = float(fp8WouldBeWeight(dist, key, g)) /
                scales[size_t(c / dist.block)];
      storeElement(data, dtype, i, double(q));
    }
    return;
  }
  if (dist.kind == Kind::Fp8Scale) {
    const int64_t RB = blocksOf(dist.rows, dist.block);
    const int64_t CB = blocksOf(dist.cols, dist.block);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t g = shard(i);
      storeElement(data, dtype, i,
                   double(fp8BlockScale(dist, key, g / (RB * CB),
                                        g / CB % RB, g % CB)));
    }
    return;
  }
  for (int64_t i = begin; i < end; ++i) {
    const int64_t g = shard(i);
    double value = 0;
    switch (dist.kind) {
    case Kind::Normal:
      value = normalValue(key, g, dist.stddev);
      break;
    case Kind::Uniform:
      value = dist.low +
              (dist.high - dist.low) * uniformOf(splitmix64(key, uint64_t(g)));
      break;
    default:
      value = 0;
    }
    storeElement(data, dtype, i, value);
  }
}

void moerun::fill(void *data, DType dtype, int64_t count,
                  const Distribution &dist, uint64_t key, unsigned threads,
                  const ShardMap &shard) {
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  // Below ~1M draws threads cost more than they save. An fp8 weight draws
  // each element twice (its block's scale, then its code); a block scale a
  // whole block.
  int64_t work = count;
  if (dist.kind == Distribution::Kind::Fp8Weight)
    work = count * 2;
  else if (dist.kind == Distribution::Kind::Fp8Scale)
    work = count * dist.block * dist.block;
  int64_t chunks =
      std::min<int64_t>({int64_t(threads), work / (1 << 20) + 1, count});
  if (dist.kind == Distribution::Kind::DistinctIds)
    chunks = 1; // rows are shuffled whole
  if (chunks <= 1) {
    fillRange(data, dtype, 0, count, dist, key, shard);
    return;
  }
  std::vector<std::thread> workers;
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t begin = count * c / chunks, end = count * (c + 1) / chunks;
    workers.emplace_back(
        [=, &shard] { fillRange(data, dtype, begin, end, dist, key, shard); });
  }
  for (auto &w : workers)
    w.join();
}
