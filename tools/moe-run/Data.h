//===- Data.h - Element types, conversions, seeded data, checksums -*- C++ -*-//
//
// Everything moe-run does with raw element bytes, independent of the
// runtime (so the reference checker does not share code with what it
// checks):
//   - element types and their sizes;
//   - conversions: bits -> double (exact), double -> bits rounded to nearest
//     even (overflow -> inf, NaN stays NaN, subnormals exact; e4m3 saturates
//     to +-448 instead, having no infinities);
//   - the seeded generator (splitmix64, counter-based, so every element is a
//     pure function of (seed, argument name, index)), including fp8 weights
//     block-quantized from would-be bf16 weights, with their block scales;
//   - FNV-1a 64-bit checksums.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_DATA_H
#define MOE_TOOLS_MOE_RUN_DATA_H

#include "moe-runtime/OpContract.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

/// e4m3 (the IR's f8E4M3FN): 1 sign, 4 exponent bits (bias 7), 3 mantissa
/// bits; subnormals m * 2^-9; no infinities; 0x7f and 0xff are NaN; the
/// largest finite magnitude is 448 (0x7e). Decoding is exact (NaN for the
/// two NaN codes). Encoding rounds to nearest even, once, from the double,
/// and saturates: every magnitude >= 448, infinity included, gives +-448 (as
/// PTX cvt.rn.satfinite.e4m3x2.f32 does); NaN gives 0x7f.
constexpr double kE4M3Max = 448.0;
double e4m3ToDouble(uint8_t bits);
uint8_t doubleToE4M3(double value);

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
    /// A block-quantized weight (its e4m3 codes) and its block scales (f32),
    /// as a checkpoint quantized from bf16 has them. Both come from the
    /// would-be weight on the *weight's* stream: a stack of matrices of
    /// `rows` x `cols` (the weight's last two dimensions) cut into `block` x
    /// `block` blocks (the last ones partial when `block` does not divide);
    /// element i of block b is Normal(stddev * m_b) (counters 4i + j, as
    /// Normal) rounded to bf16, with a multiplier m_b = 0.4 + 1.2 u_b per
    /// block (u_b = the uniform of counter b on the key xor a constant), so
    /// that, as in a real checkpoint, block scales differ (by up to 4x) and
    /// a scale applied to the wrong block shows. Per block: amax = max |w|,
    /// scale = max(amax, 1e-10f) / 448.0f, code = e4m3(w / scale) (fp32
    /// divisions, then one rounding). The scales' elements are [matrix, row
    /// block, column block], row-major.
    Fp8Weight,
    Fp8Scale,
  };
  Kind kind = Kind::Normal;
  double stddev = 1, low = 0, high = 1;
  int64_t rowLength = 1, idRange = 1;
  int64_t rows = 0, cols = 0, block = 128; // Fp8Weight, Fp8Scale
};

/// The scale of block (matrix, rowBlock, colBlock) of the fp8 weight drawn by
/// `dist` (Fp8Weight or Fp8Scale) on the weight's stream `key`: what
/// fillRange writes into its scale argument.
float fp8BlockScale(const Distribution &dist, uint64_t key, int64_t matrix,
                    int64_t rowBlock, int64_t colBlock);
/// The would-be (bf16-rounded) value of element `index` of that weight.
double fp8WouldBeWeight(const Distribution &dist, uint64_t key, int64_t index);

/// Where the elements of one rank's shard lie in the whole tensor (tensor
/// parallelism): dimension `dim` of the shard's `shape` is `segments` equal
/// segments (w13's gate and up rows: 2), each the `index`-th of `parts` equal
/// parts of the whole tensor's segment. The default maps i to i.
struct ShardMap {
  std::vector<int64_t> shape;
  int dim = -1;
  int64_t segments = 1, parts = 1, index = 0;

  bool identity() const { return dim < 0 || parts == 1; }
  /// The whole tensor's flat index of the shard's element `i`.
  int64_t operator()(int64_t i) const;
};

/// The key of an argument's stream: splitmix64 of the seed, xor the FNV-1a
/// hash of its name.
uint64_t streamKey(uint64_t seed, std::string_view name);

/// Fills elements [begin, end) of `data` (`dtype`) from `dist` on stream
/// `key`. Element i depends only on (key, i), so the result does not depend
/// on how the range is split (fill() uses several threads). Fp8Weight and
/// Fp8Scale take the weight's key (the scales are a function of it).
/// With a `shard`, element i gets the value of element shard(i) of the
/// whole tensor (`dist` describes the whole: its fp8 rows and columns).
void fillRange(void *data, DType dtype, int64_t begin, int64_t end,
               const Distribution &dist, uint64_t key,
               const ShardMap &shard = ShardMap());
/// fillRange over [0, count) on up to `threads` threads (0: hardware).
void fill(void *data, DType dtype, int64_t count, const Distribution &dist,
          uint64_t key, unsigned threads = 0,
          const ShardMap &shard = ShardMap());

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_DATA_H
