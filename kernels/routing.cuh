//===- routing.cuh - Internal interfaces between the expert kernels -*- CUDA -*-===//
//
// The routed and shared experts run as: routing (permutation by expert),
// GEMM1 (gather + gate/up + SiLU*up epilogue, "gate-up"), then per column
// block GEMM2 ("down", bf16 partials) and the combine. The GEMMs are grouped:
// group g owns rows [offsets[g], offsets[g+1]) of the (sorted) pair space.
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_ROUTING_CUH
#define MOE_KERNELS_ROUTING_CUH

#include "common.cuh"

namespace moek {
namespace detail {

/// Stable counting sort of the T*K (token, slot) pairs by expert id.
/// offsets: E+1 ints; sorted/inverse: numPairs ints each.
cudaError_t launchRouting(const int32_t *ids, int64_t numPairs, int64_t E,
                          int32_t *offsets, int32_t *sorted, int32_t *inverse,
                          const LaunchConfig &config, cudaStream_t stream);

using GemmMode = GemmOp;

/// One grouped GEMM launch. Row r of group g is global row offsets[g] + r.
struct GemmProblem {
  GemmMode mode = GemmMode::GateUp;
  // Groups: offsets has numGroups+1 entries (device); null = one group of
  // `rows` rows.
  const int32_t *offsets = nullptr;
  int numGroups = 1;
  int64_t rows = 0; // rows of the pair space (T*K, or T for shared experts)
  // A operand, K-major. GateUp: hidden [T, kDim] read through `gather`
  // (row -> pair index; token = pair / topk), null gather = identity.
  // Down: the activations [rows, kDim], contiguous.
  const void *a = nullptr;
  const int32_t *gather = nullptr;
  int topk = 1;
  int64_t kDim = 0;
  // B operand, K-major rows. GateUp: w13 [G, 2*inter, kDim]; Down: w2 [G,
  // bGroupRows, kDim] of which rows [bRowOffset, bRowOffset + nExtent) are
  // used.
  const void *b = nullptr;
  int64_t bGroupRows = 0;
  int64_t inter = 0;      // GateUp: I
  int64_t nExtent = 0;    // Down: output columns of this launch
  int64_t bRowOffset = 0; // Down: first B row (column block start)
  // Output. GateUp: act [rows, inter]; Down: out[row * ldo + col].
  void *out = nullptr;
  int64_t ldo = 0;
  // How to launch it (resolved: impl is never Auto; halfA only with
  // idleHalfSkip). The kernels read the switches from here.
  GemmConfig config;
};

/// Kernel implementations; each checks its own shape/alignment needs and
/// returns cudaErrorNotSupported when it cannot run the problem.
cudaError_t launchGemmWgmma(const GemmProblem &p, DType dtype,
                            cudaStream_t stream);
cudaError_t launchGemmMma(const GemmProblem &p, DType dtype,
                          cudaStream_t stream);
cudaError_t launchGemmSimt(const GemmProblem &p, DType dtype,
                           cudaStream_t stream);

/// out[t, c0 + c] = round(sum_j w[t, j] * partial[inverse[t*K + j], c]) for
/// c < ncols; partial has leading dimension ldp.
cudaError_t launchCombine(const void *partial, int64_t ldp,
                          const int32_t *inverse, const float *weights,
                          void *out, int64_t T, int64_t K, int64_t H,
                          int64_t c0, int64_t ncols, DType dtype,
                          const LaunchConfig &config, cudaStream_t stream);

//===--- Tile scheduling shared by the GEMM kernels -----------------------===//

/// Warp 0 of the block loads the group offsets into sOff[0..G] and writes
/// sTiles[g] = number of BM-row tiles of groups < g (sTiles[G] = total).
/// The caller synchronises the block afterwards.
template <int BM>
__device__ __forceinline__ void buildTilePrefix(const int32_t *offsets, int G,
                                                int64_t rows, int *sOff,
                                                int *sTiles) {
  const int lane = threadIdx.x % 32;
  if (!offsets) {
    if (lane == 0) {
      sOff[0] = 0;
      sOff[1] = static_cast<int>(rows);
      sTiles[0] = 0;
      sTiles[1] = static_cast<int>((rows + BM - 1) / BM);
    }
    return;
  }
  int carry = 0;
  if (lane == 0) {
    sTiles[0] = 0;
    sOff[0] = offsets[0];
  }
  for (int base = 0; base < G; base += 32) {
    int g = base + lane;
    int tiles = 0;
    if (g < G) {
      int hi = offsets[g + 1];
      int lo = offsets[g];
      sOff[g + 1] = hi;
      tiles = (hi - lo + BM - 1) / BM;
    }
    int x = tiles;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      int y = __shfl_up_sync(0xffffffffu, x, off);
      if (lane >= off)
        x += y;
    }
    if (g < G)
      sTiles[g + 1] = carry + x;
    carry += __shfl_sync(0xffffffffu, x, 31);
  }
}

struct TileCoord {
  int group;
  int mTile;
  int nTile;
  int rowBase;  // first global row of the tile
  int rowsHere; // valid rows in the tile (<= BM)
};

/// Tiles are ordered group-major, then N tile, then M tile, so the blocks
/// running at one time share the group's weights (B) and gathered rows (A)
/// through L2.
template <int BM>
__device__ __forceinline__ TileCoord decodeTile(int tile, int nTilesN, int G,
                                                const int *sOff,
                                                const int *sTiles) {
  int lo = 0, hi = G - 1; // largest g with sTiles[g] * nTilesN <= tile
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (sTiles[mid] * nTilesN <= tile)
      lo = mid;
    else
      hi = mid - 1;
  }
  TileCoord c;
  c.group = lo;
  int mt = sTiles[lo + 1] - sTiles[lo];
  int local = tile - sTiles[lo] * nTilesN;
  c.nTile = local / mt;
  c.mTile = local - c.nTile * mt;
  c.rowBase = sOff[lo] + c.mTile * BM;
  int left = sOff[lo + 1] - c.rowBase;
  c.rowsHere = left < BM ? left : BM;
  return c;
}

} // namespace detail
} // namespace moek

#endif // MOE_KERNELS_ROUTING_CUH
