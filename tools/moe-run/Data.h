//===- Data.h - Element types, conversions, seeded data, checksums -*- C++ -*-//
//
// Everything moe-run does with raw element bytes, independent of the
// runtime (so the reference checker does not share code with what it
// checks):
//   - element types and their sizes;
//   - conversions: bits -> double (exact), double -> bits rounded to nearest
//     even (overflow -> inf, NaN stays NaN, subnormals exact);
//   - the seeded generator (splitmix64, counter-based, so every element is a
//     pure function of (seed, argument name, index));
//   - FNV-1a 64-bit checksums.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_DATA_H
#define MOE_TOOLS_MOE_RUN_DATA_H

#include "moe-runtime/OpContract.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace moerun {

/// The element types: the op contract's (one dtype enum for the project).
using DType = moert::contract::DType;
using moert::contract::dtypeBytes;
using moert::contract::dtypeName;
using moert::contract::isFloat;
/// Parses a dtype name; false if unknown.
bool parseDType(std::string_view name, DType &out);

/// Conversions between element bits and double. Float types: exact one way,
/// round-to-nearest-even (one rounding, directly from the double) the other.
/// I32: the integer, saturating (NaN -> 0) on the way in.
double bf16ToDouble(uint16_t bits);
double f16ToDouble(uint16_t bits);
uint16_t doubleToBF16(double value);
uint16_t doubleToF16(double value);

/// The value at `data[index]` of `dtype`, as a double.
double loadElement(const void *data, DType dtype, int64_t index);
/// Stores `value` rounded to `dtype` at `data[index]`.
void storeElement(void *data, DType dtype, int64_t index, double value);
/// `value` rounded to `dtype` (what storeElement then loadElement gives).
double roundToDType(double value, DType dtype);

/// One step of splitmix64 on a counter: mix(key + (counter+1) * golden).
uint64_t splitmix64(uint64_t key, uint64_t counter);
/// The 53-bit uniform in [0, 1) of a 64-bit word.
inline double uniformOf(uint64_t bits) {
  return double(bits >> 11) * 0x1.0p-53;
}

/// FNV-1a 64-bit, continuing from `hash` (start with kFnvOffset).
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
uint64_t fnv1a64(const void *data, size_t bytes, uint64_t hash = kFnvOffset);
/// 16 lowercase hex digits.
std::string hex64(uint64_t value);

/// How an argument's elements are drawn (docs/moe-run.md, "Data").
struct Distribution {
  enum class Kind {
    Normal,      ///< approx. N(0, stddev^2) (Irwin-Hall of 4 uniforms)
    Uniform,     ///< U(low, high)
    DistinctIds, ///< per row of `rowLength`: distinct ints in [0, idRange)
    Zero,
    Poison, ///< all bits set (NaN for floats, -1 for i32)
  };
  Kind kind = Kind::Normal;
  double stddev = 1, low = 0, high = 1;
  int64_t rowLength = 1, idRange = 1;
};

/// The key of an argument's stream: splitmix64 of the seed, xor the FNV-1a
/// hash of its name.
uint64_t streamKey(uint64_t seed, std::string_view name);

/// Fills elements [begin, end) of `data` (`dtype`) from `dist` on stream
/// `key`. Element i depends only on (key, i), so the result does not depend
/// on how the range is split (fill() uses several threads).
void fillRange(void *data, DType dtype, int64_t begin, int64_t end,
               const Distribution &dist, uint64_t key);
/// fillRange over [0, count) on up to `threads` threads (0: hardware).
void fill(void *data, DType dtype, int64_t count, const Distribution &dist,
          uint64_t key, unsigned threads = 0);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_DATA_H
