//===- CPUFp8.cpp - The CPU backend's fp8 (e4m3, block-scaled) experts ----===//
//
// kernels/moe_kernels.h's fp8 numerics contract, rules 1-6, on the CPU:
//  1. activations are quantized per row per 128 columns:
//     s = fmaxf(amax, 1e-10f) / 448.0f, q = e4m3(a / s), both fp32 IEEE
//     divisions (the runtime is built without -ffast-math: no reciprocal
//     multiplies), e4m3 rounding to nearest even with saturation
//     (Numerics.h's floatToE4m3). This is bit for bit the GPU's quantization.
//  2./4. every GEMM output is sum over 128-wide K blocks b, in block order,
//     in fp32 (no FMA: -ffp-contract=off), of P_b * (s_a[b] * s_w[b]).
//
// P_b, the sum of the 128 products q_a * q_w of a block, is computed exactly
// and rounded once to fp32. Both factors are e4m3 values m * 2^k (m <= 15,
// -9 <= k <= 5), so every product is a multiple of 2^-18 below
// 448^2 < 2^18 with at most 8 significant bits, and any partial sum of 128
// of them is a multiple of 2^-18 below 2^25: it needs at most 43 bits, so
// double arithmetic (53 bits) adds them without any rounding, in whatever
// order. fp32 would not do: its sums round as soon as they span more than
// 24 bits (e.g. 448^2 + 2^-18). So P_b is the correctly rounded exact block
// sum, independent of the summation order (the loop below may be vectorized
// freely), and closer to the exact result than the tensor cores' ~14-bit
// sums, which the contract leaves open.
//
// Data flow (the routed op; shared is the same with E = 1, no routing and
// no combine):
//   quantize hidden [T, H] -> workspace (before anything is written, so in
//   place is safe) -> stable counting sort of the (token, slot) pairs by
//   expert -> per expert: gate/up on its gathered quantized rows, act =
//   silu(g) * u in fp32, quantized per row into the workspace (sorted order)
//   -> per column block of C = min(H, 512) columns: the down GEMM per expert
//   into bf16 partials, then the combine in slot order (as the bf16 path).
// Operand rows are decoded from e4m3 to double once per tile of kRowTile
// rows (the bf16 path's tiling), so the inner loop is a plain double dot
// product of 128 elements.
//
//===----------------------------------------------------------------------===//

#include "CPUFp8.h"
#include "Numerics.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace moert;

void moert::sortPairsByExpert(const int32_t *ids, int64_t pairs, int64_t E,
                              int32_t *offsets, int32_t *sortedPairs,
                              int32_t *pairPositions) {
  std::fill(offsets, offsets + E + 1, 0);
  for (int64_t p = 0; p < pairs; ++p)
    ++offsets[ids[p] + 1];
  for (int64_t e = 0; e < E; ++e)
    offsets[e + 1] += offsets[e];
  for (int64_t p = 0; p < pairs; ++p) { // offsets[e] serves as e's cursor
    int32_t position = offsets[ids[p]]++;
    sortedPairs[position] = int32_t(p);
    pairPositions[p] = position;
  }
  for (int64_t e = E; e > 0; --e) // the cursors ended one expert late
    offsets[e] = offsets[e - 1];
  offsets[0] = 0;
}

namespace {

constexpr int64_t kBlock = MOERT_FP8_BLOCK;
constexpr int64_t kRowTile = 32;
constexpr float kE4m3Max = 448.0f;
constexpr float kFp8AmaxFloor = 1e-10f;

float silu(float x) { return x / (1.0f + std::exp(-x)); }

/// The value of every e4m3 byte as a double (exact; NaN for 0x7f / 0xff).
struct E4m3Values {
  double value[256];
  E4m3Values() {
    for (int i = 0; i < 256; ++i)
      value[i] = double(e4m3ToFloat(uint8_t(i)));
  }
};

const double *e4m3Values() {
  static const E4m3Values table;
  return table.value;
}

/// n e4m3 bytes to their (exact) double values.
void decodeRow(const uint8_t *q, int64_t n, double *out) {
  const double *values = e4m3Values();
  for (int64_t i = 0; i < n; ++i)
    out[i] = values[q[i]];
}

/// P_b: the sum of the kBlock products a[i] * w[i] of e4m3 values, exact in
/// double whatever the order of the additions (see the file comment), so the
/// lanes (which vectorize) change nothing; rounded once to fp32.
float blockSum(const double *a, const double *w) {
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  for (int64_t i = 0; i < kBlock; i += kLanes)
    for (int l = 0; l < kLanes; ++l)
      lanes[l] += a[i + l] * w[i + l];
  double sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
               ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  return float(sum);
}

/// Rules 2 and 4: sum over the `blocks` K blocks b, in order, in fp32, of
/// P_b * (aScales[b] * wScales[b]) (the scale product one fp32 multiply; no
/// FMA: the runtime is built with -ffp-contract=off).
float blockScaledDot(const double *a, const float *aScales, const double *w,
                     const float *wScales, int64_t blocks) {
  float acc = 0.0f;
  for (int64_t b = 0; b < blocks; ++b)
    acc += blockSum(a + b * kBlock, w + b * kBlock) * (aScales[b] * wScales[b]);
  return acc;
}

/// Rule 1 on one row of n floats (n a multiple of kBlock): e4m3 bytes
/// q[0, n) and one scale per kBlock columns.
void quantizeRow(const float *a, int64_t n, uint8_t *q, float *scales) {
  for (int64_t g = 0; g < n / kBlock; ++g) {
    const float *x = a + g * kBlock;
    float amax = 0.0f;
    for (int64_t i = 0; i < kBlock; ++i)
      amax = std::fmax(amax, std::fabs(x[i]));
    // Both divisions are IEEE fp32 divisions.
    const float s = std::fmax(amax, kFp8AmaxFloor) / kE4m3Max;
    scales[g] = s;
    for (int64_t i = 0; i < kBlock; ++i)
      q[g * kBlock + i] = floatToE4m3(x[i] / s);
  }
}

/// Rule 1 on the whole bf16 hidden [T, H]: q [T, H], scales [T, H/128].
void quantizeHidden(const void *hidden, int64_t T, int64_t H, uint8_t *q,
                    float *scales) {
  std::vector<float> row(static_cast<size_t>(H));
  for (int64_t t = 0; t < T; ++t) {
    loadRow(hidden, MOERT_BF16, t * H, H, row.data());
    quantizeRow(row.data(), H, q + t * H, scales + t * (H / kBlock));
  }
}

/// Scratch rows, sized once per op.
struct Scratch {
  std::vector<double> tile, rowA, rowB;
  std::vector<float> act;
  std::vector<int64_t> tokens;
  Scratch(int64_t H, int64_t I)
      : tile(size_t(kRowTile * std::max(H, I))),
        rowA(size_t(std::max(H, I))), rowB(static_cast<size_t>(H)),
        act(size_t(kRowTile * I)), tokens(size_t(kRowTile)) {}
};

/// Rules 2 and 3 for one expert on `rows` gathered rows: row r is the
/// quantized hidden row rowToken(r) (hiddenQ [*, H], hiddenScales
/// [*, H/128]); w13 is 2I x H e4m3 (gate rows, then up rows) with scales
/// [2I/128, H/128]. Writes act = silu(g) * u, quantized per row per 128
/// columns, to actQ [rows, I] and actScales [rows, I/128].
template <typename RowToken>
void gateUpFp8(const uint8_t *hiddenQ, const float *hiddenScales,
               const uint8_t *w13, const float *w13Scale, uint8_t *actQ,
               float *actScales, int64_t rows, int64_t H, int64_t I,
               RowToken rowToken, Scratch &s) {
  const int64_t hBlocks = H / kBlock, iBlocks = I / kBlock;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
    const int64_t n = std::min(kRowTile, rows - r0);
    for (int64_t r = 0; r < n; ++r) {
      s.tokens[size_t(r)] = rowToken(r0 + r);
      decodeRow(hiddenQ + s.tokens[size_t(r)] * H, H, s.tile.data() + r * H);
    }
    for (int64_t i = 0; i < I; ++i) {
      decodeRow(w13 + i * H, H, s.rowA.data());
      decodeRow(w13 + (I + i) * H, H, s.rowB.data());
      const float *gateScales = w13Scale + (i / kBlock) * hBlocks;
      const float *upScales = w13Scale + ((I + i) / kBlock) * hBlocks;
      for (int64_t r = 0; r < n; ++r) {
        const double *x = s.tile.data() + r * H;
        const float *xScales = hiddenScales + s.tokens[size_t(r)] * hBlocks;
        float g = blockScaledDot(x, xScales, s.rowA.data(), gateScales,
                                 hBlocks);
        float u =
            blockScaledDot(x, xScales, s.rowB.data(), upScales, hBlocks);
        s.act[size_t(r * I + i)] = silu(g) * u;
      }
    }
    for (int64_t r = 0; r < n; ++r)
      quantizeRow(s.act.data() + r * I, I, actQ + (r0 + r) * I,
                  actScales + (r0 + r) * iBlocks);
  }
}

/// Rule 4 for one expert: out[r * outStride + c] = bf16(sum over I blocks)
/// for the `rows` quantized act rows (actQ [rows, I], actScales
/// [rows, I/128]) and the output columns c0 + c, c < width, of w2 (H x I
/// e4m3 with scales [H/128, I/128]).
void downFp8(const uint8_t *actQ, const float *actScales, const uint8_t *w2,
             const float *w2Scale, uint16_t *out, int64_t rows, int64_t I,
             int64_t c0, int64_t width, int64_t outStride, Scratch &s) {
  const int64_t iBlocks = I / kBlock;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
    const int64_t n = std::min(kRowTile, rows - r0);
    decodeRow(actQ + r0 * I, n * I, s.tile.data());
    for (int64_t c = 0; c < width; ++c) {
      decodeRow(w2 + (c0 + c) * I, I, s.rowA.data());
      const float *wScales = w2Scale + ((c0 + c) / kBlock) * iBlocks;
      for (int64_t r = 0; r < n; ++r)
        out[(r0 + r) * outStride + c] = floatToBf16(
            blockScaledDot(s.tile.data() + r * I,
                           actScales + (r0 + r) * iBlocks, s.rowA.data(),
                           wScales, iBlocks));
    }
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// routed_experts
//===----------------------------------------------------------------------===//

moert_status moert::cpuRoutedExpertsFp8(const RoutedExpertsArgs &a,
                                        std::string &) {
  const int64_t T = a.T, H = a.H, E = a.E, K = a.K, I = a.I;
  const int64_t pairs = T * K;
  const int64_t hBlocks = H / kBlock, iBlocks = I / kBlock;
  const auto *w13 = static_cast<const uint8_t *>(a.weights.w13);
  const auto *w2 = static_cast<const uint8_t *>(a.weights.w2);
  RoutedFp8WorkspaceLayout ws =
      carveRoutedFp8Workspace(a.workspace, T, H, E, K, I);

  // 1. The hidden, quantized once: all reads of `hidden` happen here, before
  //    any write of `output`, so in place is safe.
  quantizeHidden(a.hidden, T, H, ws.hiddenQ, ws.hiddenScales);

  // 2. Routing metadata: a stable counting sort of the pairs by expert (the
  //    bf16 path's).
  int32_t *offsets = ws.expertOffsets;
  sortPairsByExpert(a.topkIds, pairs, E, offsets, ws.sortedPairs,
                    ws.pairPositions);

  Scratch scratch(H, I);

  // 3. Gate/up per expert on its gathered quantized rows; act quantized into
  //    the workspace in sorted order.
  for (int64_t e = 0; e < E; ++e) {
    const int64_t begin = offsets[e], rows = offsets[e + 1] - begin;
    if (rows == 0)
      continue;
    gateUpFp8(
        ws.hiddenQ, ws.hiddenScales, w13 + e * 2 * I * H,
        a.weights.w13Scale + e * (2 * I / kBlock) * hBlocks,
        ws.actQ + begin * I, ws.actScales + begin * iBlocks, rows, H, I,
        [&](int64_t r) { return int64_t(ws.sortedPairs[begin + r]) / K; },
        scratch);
  }

  // 4. Per column block: the down GEMM per expert into the bf16 partials,
  //    then the combine in slot order (fp32, no FMA, one rounding).
  const int64_t C = ws.combineColumns;
  auto *partials = static_cast<uint16_t *>(ws.partials);
  for (int64_t c0 = 0; c0 < H; c0 += C) {
    const int64_t width = std::min(C, H - c0);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t begin = offsets[e], rows = offsets[e + 1] - begin;
      if (rows == 0)
        continue;
      downFp8(ws.actQ + begin * I, ws.actScales + begin * iBlocks,
              w2 + e * H * I, a.weights.w2Scale + e * hBlocks * iBlocks,
              partials + begin * C, rows, I, c0, width, C, scratch);
    }
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t c = 0; c < width; ++c) {
        float sum = 0.0f;
        for (int64_t j = 0; j < K; ++j) {
          int64_t position = ws.pairPositions[t * K + j];
          sum += a.topkWeights[t * K + j] *
                 bf16ToFloat(partials[position * C + c]);
        }
        storeElement(a.output, MOERT_BF16, t * H + c0 + c, sum);
      }
    }
  }
  return MOERT_SUCCESS;
}

//===----------------------------------------------------------------------===//
// shared_experts
//===----------------------------------------------------------------------===//

moert_status moert::cpuSharedExpertsFp8(const SharedExpertsArgs &a,
                                        std::string &) {
  const int64_t T = a.T, H = a.H, I = a.I;
  SharedFp8WorkspaceLayout ws = carveSharedFp8Workspace(a.workspace, T, H, I);
  // All of `hidden` is read (quantized) before `output` is written.
  quantizeHidden(a.hidden, T, H, ws.hiddenQ, ws.hiddenScales);
  Scratch scratch(H, I);
  gateUpFp8(ws.hiddenQ, ws.hiddenScales,
            static_cast<const uint8_t *>(a.weights.w13), a.weights.w13Scale,
            ws.actQ, ws.actScales, T, H, I, [](int64_t r) { return r; },
            scratch);
  downFp8(ws.actQ, ws.actScales, static_cast<const uint8_t *>(a.weights.w2),
          a.weights.w2Scale, static_cast<uint16_t *>(a.output), T, I, 0, H, H,
          scratch);
  return MOERT_SUCCESS;
}
