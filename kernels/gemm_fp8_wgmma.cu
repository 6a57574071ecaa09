//===- gemm_fp8_wgmma.cu - fp8 block-scaled grouped expert GEMMs (sm_90a) -===//
//
// Persistent, warp-specialised kernel, 3 warpgroups per block and one block
// per SM: warpgroup 0 loads, warpgroups 1 and 2 compute 64 rows each of a
// 128-row tile. Every K step is one 128-wide scale block (128 e4m3 = one
// 128-byte swizzled row per operand row), so a stage holds A 128x128, B
// tileN x 128 and the scales that go with them: the A scales of the 128 rows
// and one B scale per 128-column half of the tile.
//
// Promotion (DeepSeek-V3's fine-grained accumulation): per K block and per
// 128-column half, the consumer issues 4 wgmma m64n128k32 e4m3 into a
// temporary fp32 accumulator (scaleD = 0 on the first), waits for them, then
// adds temp * (s_a[row] * s_b[half]) into the main fp32 accumulator on the
// CUDA cores. The tensor cores' fp8 sum thus never runs over more than 128
// products, and while one warpgroup promotes the other one's wgmma keep the
// tensor cores busy. Registers: main 64 per half + temp 64 (192 at tileN 256).
//
// GateUp (GEMM1): a tile is 128 gate + 128 up columns of the same act
//   columns j..j+127 (two 128-row TMA boxes of w13), so each row's 128 act
//   values -- one quantization group -- sit in 4 threads of one quad. The
//   epilogue computes act = silu(g) * u, the group amax (2 shuffles), the
//   scale and the e4m3 bytes (contract rule 1 through fp8.cuh, the quantize
//   kernel's code), stages them in shared memory and writes whole 16-byte
//   chunks. A = quantized hidden rows gathered through the sorted pair list:
//   TMA cannot gather rows, so the 128 producer threads copy them with
//   cp.async (16 B each, in the TMA swizzle pattern) along with their scales
//   (4 B each) and signal full[s] with cp.async.mbarrier.arrive.noinc.
// Down (GEMM2): A = contiguous act rows and B = w2 rows through TMA, the
//   scales through cp.async; the epilogue rounds to bf16 and stores through
//   shared memory (stmatrix + TMA store for whole tiles, 16-byte stores for
//   an expert's last rows).
//
// Tiles are scheduled group-major (expert), then N, then M (routing.cuh), so
// blocks in flight share an expert's weights and gathered rows through L2.
//
// Work at DeepSeek-V3 TP=4 (H 7168, I 512, E 256, K 8), T = 16384 tokens,
// T*K = 131072 pairs (ideal: every weight read once from DRAM):
//   gate-up: 2*TK*2I*H = 1.92 TFLOP; w13 E*2I*H = 1.88 GB, gathered A TK*H =
//            0.94 GB (each token row is read by K experts' tiles; the 117 MB
//            quantized hidden does not stay in L2), act TK*I = 67 MB out.
//   down:    2*TK*H*I = 0.96 TFLOP over 14 column blocks of 512; w2 0.94 GB,
//            act 14 x 67 MB = 0.94 GB, bf16 partials TK*H*2 = 1.88 GB out.
//   (+ quantize 0.36 GB and combine 2.1 GB of traffic, outside this file.)
// 2.89 TFLOP and ~7.2 GB here: about 1.5 ms of DRAM time at H200's
// 4.8 TB/s next to ~2.2 ms of fp8 tensor time at 1.3 PFLOP/s.
//
// Measured on an H100 (tools/bench_fp8.cu, 2026-12-05), T = 16384: gate-up
// 3.44 ms (560 TFLOP/s), the 14 down launches 1.61 ms (600), the whole op
// 5.96 ms (484; the bf16 path: 6.32 ms). The same kernel on one dense group
// of 131072 rows: 683 TFLOP/s for both GEMMs. At T = 4096 the gate-up is
// DRAM-bound (ncu: 2.67 TB/s, ~1.6x the w13 bytes). So far from the fp8
// peak; leads: TMA multicast of B across a 2-CTA cluster (halves L2->SM
// traffic), deeper overlap of the promotion with the other warpgroup.
//===----------------------------------------------------------------------===//
#include "fp8.cuh"
#include "wgmma_ops.cuh"

#include <cudaTypedefs.h>

#include <cstring>
#include <mutex>
#include <string>

namespace moek {
namespace detail {
namespace {

using namespace sm90;

constexpr int kBM = 128;
constexpr int kBK = static_cast<int>(kFp8Block); // one scale block per stage
constexpr int kHalfN = 128;                      // columns of one B scale
constexpr int kThreads = 384;
constexpr int kConsumerThreads = 256;
constexpr int kConsumerWarps = kConsumerThreads / 32;
// Register split between the warpgroups, 64512 of the SM's 65536 either
// way: the gate-up producer keeps 4 gathered row addresses per thread live
// (56), the down consumers hold 128 + 64 accumulators next to the bf16
// epilogue's addressing (232). Both without spills.
template <GemmOp MODE> constexpr int producerRegs() {
  return MODE == GemmOp::GateUp ? 56 : 40;
}
template <GemmOp MODE> constexpr int consumerRegs() {
  return MODE == GemmOp::GateUp ? 224 : 232;
}
static_assert(128 * producerRegs<GemmOp::GateUp>() +
                          256 * consumerRegs<GemmOp::GateUp>() <=
                      65536 &&
                  128 * producerRegs<GemmOp::Down>() +
                          256 * consumerRegs<GemmOp::Down>() <=
                      65536,
              "register split over the SM's register file");
constexpr int kAStageBytes = kBM * kBK; // 16 KB
// Per stage: the A scales of 128 rows, then one B scale per half (padded to
// 16 bytes).
constexpr int kScaleStageFloats = kBM + 4;
constexpr int kScaleStageBytes = kScaleStageFloats * 4;
static_assert(kBK == 128, "a stage row is one 128-byte swizzle atom");

template <GemmOp MODE, int BN> struct Fp8Tile {
  static constexpr int kHalves = BN / kHalfN;
  static constexpr int kStages = fp8Stages(MODE, BN);
  static constexpr int kBStageBytes = BN * kBK;
  static constexpr int kPipeBytes = kStages * (kAStageBytes + kBStageBytes);
  // Output staging per consumer warpgroup: 64 rows of 128 act bytes
  // (gate-up) or of BN bf16 (down, as BN/64 TMA boxes of 64 x 64).
  static constexpr int kStagingPerWg =
      MODE == GemmOp::GateUp ? 64 * 128 : 64 * BN * 2;
  static constexpr int kStagingBytes = 2 * kStagingPerWg;
  static constexpr int kScaleBytes = kStages * kScaleStageBytes;
  // [A stages][B stages][staging][scales][full][empty][sOff][sTiles], the
  // first three 1024-aligned (128-byte swizzle atoms).
  static size_t smemBytes(int groups) {
    return 1024 + size_t(kPipeBytes) + kStagingBytes + kScaleBytes +
           2 * kStages * sizeof(uint64_t) + 2 * sizeof(int) * (groups + 1);
  }
  static_assert(MODE == GemmOp::Down || BN == 256,
                "gate-up tiles are 128 gate + 128 up columns");
  static_assert(BN == 128 || BN == 256, "tile widths 128 or 256");
};

template <GemmOp MODE, int BN>
__global__ __launch_bounds__(kThreads, 1) void fp8GemmKernel(
    const __grid_constant__ CUtensorMap tmA,
    const __grid_constant__ CUtensorMap tmB,
    const __grid_constant__ CUtensorMap tmOut, Fp8GemmProblem p, int nTilesN) {
  using Tile = Fp8Tile<MODE, BN>;
  constexpr int kStages = Tile::kStages;
  constexpr int kHalves = Tile::kHalves;
  constexpr bool kGateUp = MODE == GemmOp::GateUp;
  extern __shared__ unsigned char smemRaw[];
  unsigned char *smem = reinterpret_cast<unsigned char *>(
      (reinterpret_cast<uintptr_t>(smemRaw) + 1023) & ~uintptr_t(1023));
  unsigned char *aPipe = smem;
  unsigned char *bPipe = smem + kStages * kAStageBytes;
  unsigned char *staging = smem + Tile::kPipeBytes;
  float *scalePipe = reinterpret_cast<float *>(staging + Tile::kStagingBytes);
  uint64_t *fullBar = reinterpret_cast<uint64_t *>(
      reinterpret_cast<unsigned char *>(scalePipe) + Tile::kScaleBytes);
  uint64_t *emptyBar = fullBar + kStages;
  int *sOff = reinterpret_cast<int *>(emptyBar + kStages);
  int *sTiles = sOff + p.numGroups + 1;
  const int G = p.numGroups;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      // full: 128 producer cp.async arrivals + thread 0's expect_tx.
      mbarInit(smemAddr(&fullBar[s]), 129);
      // empty: lane 0 of every consumer warp.
      mbarInit(smemAddr(&emptyBar[s]), kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  // Nothing above touches global memory; everything below may depend on the
  // previous kernel in the stream.
  pdlWait();
  if (threadIdx.x >= 32 && threadIdx.x < 64)
    buildTilePrefix<kBM>(p.offsets, G, p.rows, sOff, sTiles);
  __syncthreads();

  // Role and loop bounds are warp-uniform through __shfl_sync, so that
  // ptxas sees the wgmma instructions on convergent paths.
  const int total = __shfl_sync(0xffffffffu, sTiles[G] * nTilesN, 0);
  const int numK = static_cast<int>(p.kDim / kBK);
  const int wg =
      __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);

  if (wg == 0) {
    //===--- producer ---===//
    asm volatile(
        "setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(producerRegs<MODE>()));
    const int ptid = threadIdx.x;
    // GateUp: thread ptid copies chunks (16 B) c and c + 4 of rows
    // i * 32 + ptid / 4 (i < 4): per instruction a warp reads 64 contiguous
    // bytes of each of 8 rows (whole sectors), and only 4 row offsets stay
    // live across the K loop (producerRegs).
    const int chunk = ptid % 4;
    const int rsub = ptid / 4; // 0..31
    int it = 0;
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
      const TileCoord tc = decodeTile<kBM>(tile, nTilesN, G, sOff, sTiles);
      const int64_t groupRow = int64_t(tc.group) * p.bGroupRows;
      // First B row of the tile's halves: gate and up rows of act columns
      // j..j+127 (GateUp), or consecutive output columns (Down).
      int bRow[kHalves];
      bool bLive[kHalves];
#pragma unroll
      for (int h = 0; h < kHalves; ++h) {
        if (kGateUp) {
          bRow[h] = static_cast<int>(groupRow + h * p.inter +
                                     int64_t(tc.nTile) * kHalfN);
          bLive[h] = true;
        } else {
          const int64_t col = int64_t(tc.nTile) * BN + h * kHalfN;
          bRow[h] = static_cast<int>(groupRow + p.bRowOffset + col);
          bLive[h] = col < p.nExtent;
        }
      }
      // The B scale of half h is copied by thread h.
      const float *bScaleSrc = p.bScale;
      bool bScaleLive = false;
#pragma unroll
      for (int h = 0; h < kHalves; ++h)
        if (ptid == h) {
          bScaleSrc = p.bScale + int64_t(bRow[h] / kHalfN) * numK;
          bScaleLive = bLive[h];
        }
      // GateUp: the tokens of rows i*32 + rsub (data) and of row ptid (its
      // scale); -1 for padding rows.
      int tok[4], scaleTok = -1;
      if (kGateUp) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int r = i * 32 + rsub;
          tok[i] = -1;
          if (r < tc.rowsHere) {
            const int row = tc.rowBase + r;
            tok[i] = p.gather ? p.gather[row] / p.topk : row;
          }
        }
        if (ptid < tc.rowsHere) {
          const int row = tc.rowBase + ptid;
          scaleTok = p.gather ? p.gather[row] / p.topk : row;
        }
      }
      for (int kb = 0; kb < numK; ++kb, ++it) {
        const int s = it % kStages;
        const uint32_t ph = (it / kStages) & 1;
        const uint32_t full = smemAddr(&fullBar[s]);
        mbarWait(smemAddr(&emptyBar[s]), ph ^ 1);
        const uint32_t bS = smemAddr(bPipe + s * Tile::kBStageBytes);
        const uint32_t aS = smemAddr(aPipe + s * kAStageBytes);
        float *sc = scalePipe + s * kScaleStageFloats;
        if (ptid == 0) {
          if (kGateUp) {
            mbarArriveExpectTx(full, Tile::kBStageBytes);
            tmaLoad2d(bS, &tmB, full, kb * kBK, bRow[0]);
            tmaLoad2d(bS + kHalfN * kBK, &tmB, full, kb * kBK, bRow[1]);
          } else {
            mbarArriveExpectTx(full, kAStageBytes + Tile::kBStageBytes);
            tmaLoad2d(aS, &tmA, full, kb * kBK, tc.rowBase);
            tmaLoad2d(bS, &tmB, full, kb * kBK, bRow[0]);
          }
        }
        if (ptid < kHalves)
          cpAsync4(smemAddr(sc + kBM + ptid), bScaleSrc + kb, bScaleLive);
        if (kGateUp) {
          const uint8_t *a = p.a + int64_t(kb) * kBK + chunk * 16;
          // Rows i*32 + rsub share their swizzle (r & 7 == rsub & 7).
          const uint32_t dst = aS + rsub * 128;
          const int swz = rsub & 7;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const bool v = tok[i] >= 0;
            const uint8_t *src = a + (v ? int64_t(tok[i]) : 0) * p.kDim;
            cpAsync16(dst + i * 32 * 128 + ((chunk ^ swz) << 4), src, v);
            cpAsync16(dst + i * 32 * 128 + (((chunk + 4) ^ swz) << 4), src + 64,
                      v);
          }
          cpAsync4(smemAddr(sc + ptid),
                   p.aScale + (scaleTok >= 0 ? int64_t(scaleTok) : 0) * numK +
                       kb,
                   scaleTok >= 0);
        } else {
          const bool v = ptid < tc.rowsHere;
          const int64_t row = v ? int64_t(tc.rowBase) + ptid : 0;
          cpAsync4(smemAddr(sc + ptid), p.aScale + row * numK + kb, v);
        }
        cpAsyncArriveNoinc(full);
      }
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
  } else {
    //===--- consumers ---===//
    asm volatile(
        "setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(consumerRegs<MODE>()));
    const int cw = wg - 1; // rows [64 cw, 64 cw + 64) of a tile
    const int ctid = threadIdx.x - 128 * wg;
    const int warpInWg = ctid / 32, lane = ctid % 32;
    const int q = lane % 4;
    const int r0 = warpInWg * 16 + lane / 4; // and r0 + 8, within the 64
    const uint32_t stage0 = smemAddr(staging + cw * Tile::kStagingPerWg);
    float acc[kHalves * 64];
    float part[64];
    int it = 0;
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
      const TileCoord tc = decodeTile<kBM>(tile, nTilesN, G, sOff, sTiles);
      const int myRows = tc.rowsHere - cw * 64;
      // A warpgroup whose 64 rows are all past the group's end only releases
      // the stages: the other one then has the tensor cores to itself.
      const bool active =
          __shfl_sync(0xffffffffu,
                      (myRows > 0 || !p.config.idleHalfSkip) ? 1 : 0, 0) != 0;
      if (!active) {
        for (int kb = 0; kb < numK; ++kb, ++it) {
          const int s = it % kStages;
          mbarWait(smemAddr(&fullBar[s]), (it / kStages) & 1);
          if (lane == 0)
            mbarArrive(smemAddr(&emptyBar[s]));
        }
        continue;
      }
#pragma unroll
      for (int i = 0; i < kHalves * 64; ++i)
        acc[i] = 0.f;
      for (int kb = 0; kb < numK; ++kb, ++it) {
        const int s = it % kStages;
        mbarWait(smemAddr(&fullBar[s]), (it / kStages) & 1);
        if (kGateUp)
          fenceProxyAsync(); // A arrived through cp.async (generic proxy)
        // The scale loads are ordered before the stage's release (the
        // empty arrive below has release semantics).
        const uint32_t sc = smemAddr(scalePipe + s * kScaleStageFloats);
        const float sa0 = ldSharedF32(sc + 4 * (cw * 64 + r0));
        const float sa1 = ldSharedF32(sc + 4 * (cw * 64 + r0 + 8));
        float scale0[kHalves], scale1[kHalves];
#pragma unroll
        for (int h = 0; h < kHalves; ++h) {
          const float sb = ldSharedF32(sc + 4 * (kBM + h));
          scale0[h] = sa0 * sb;
          scale1[h] = sa1 * sb;
        }
        const uint64_t descA =
            makeDesc(smemAddr(aPipe + s * kAStageBytes + cw * 64 * kBK));
#pragma unroll
        for (int h = 0; h < kHalves; ++h) {
          const uint64_t descB = makeDesc(
              smemAddr(bPipe + s * Tile::kBStageBytes + h * kHalfN * kBK));
          wgmmaFence();
#pragma unroll
          for (int kk = 0; kk < kBK / 32; ++kk)
            wgmma::wgmmaM64N128K32E4m3(part, descA + 2 * kk, descB + 2 * kk,
                                       kk > 0 ? 1 : 0);
          wgmmaCommit();
          wgmmaWait<0>();
          wgmma::fenceOperand(part);
          if (h == kHalves - 1 && lane == 0)
            mbarArrive(smemAddr(&emptyBar[s]));
            // part[4c + {0,1}] is row r0, part[4c + {2,3}] row r0 + 8.
#pragma unroll
          for (int i = 0; i < 64; ++i)
            acc[h * 64 + i] =
                fmaf(part[i], (i & 2) ? scale1[h] : scale0[h], acc[h * 64 + i]);
        }
      }
      if (myRows <= 0)
        continue; // only padding rows (reached without the idle skip)

      if (kGateUp) {
        //===--- act = silu(g) * u, quantized per row (rule 3) ---===//
        // acc[4i + b] (gate) and acc[64 + 4i + b] (up) are act column
        // 8i + 2q + (b & 1) of row r0 (b < 2) or r0 + 8 (b >= 2).
        float amax0 = 0.f, amax1 = 0.f;
#pragma unroll
        for (int i = 0; i < 64; ++i) {
          const float v = siluMul(acc[i], acc[64 + i]);
          acc[i] = v;
          if (i & 2)
            amax1 = fmaxf(amax1, fabsf(v));
          else
            amax0 = fmaxf(amax0, fabsf(v));
        }
        // The row's 128 columns are in the 4 threads of the quad.
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
          amax0 = fmaxf(amax0, __shfl_xor_sync(0xffffffffu, amax0, off));
          amax1 = fmaxf(amax1, __shfl_xor_sync(0xffffffffu, amax1, off));
        }
        const float s0 = fp8GroupScale(amax0), s1 = fp8GroupScale(amax1);
        // The previous tile's copy-out has read the staging.
        namedBarrier(1 + cw, 128);
        const int rb = r0 + 8;
#pragma unroll
        for (int i = 0; i < 16; ++i) {
          // Byte 8i + 2q of the row: 16-byte chunk i / 2, swizzled by row.
          const int inChunk = 8 * (i & 1) + 2 * q;
          stShared16(stage0 + r0 * 128 + (((i >> 1) ^ (r0 & 7)) << 4) + inChunk,
                     quantizePair(acc[4 * i], acc[4 * i + 1], s0));
          stShared16(stage0 + rb * 128 + (((i >> 1) ^ (rb & 7)) << 4) + inChunk,
                     quantizePair(acc[4 * i + 2], acc[4 * i + 3], s1));
        }
        const int64_t groupsI = p.inter / kHalfN;
        const int64_t rowBase = int64_t(tc.rowBase) + cw * 64;
        if (q == 0) {
          if (r0 < myRows)
            p.outScale[(rowBase + r0) * groupsI + tc.nTile] = s0;
          if (rb < myRows)
            p.outScale[(rowBase + rb) * groupsI + tc.nTile] = s1;
        }
        namedBarrier(1 + cw, 128);
        uint8_t *act = static_cast<uint8_t *>(p.out);
        for (int idx = ctid; idx < 64 * 8; idx += 128) {
          const int r = idx >> 3, c = idx & 7;
          if (r < myRows)
            *reinterpret_cast<uint4 *>(act + (rowBase + r) * p.inter +
                                       int64_t(tc.nTile) * kHalfN + c * 16) =
                ldShared128(stage0 + r * 128 + ((c ^ (r & 7)) << 4));
        }
        continue;
      }

      //===--- Down: bf16 partials through shared memory ---===//
      // Each warpgroup stages its 64 rows (128-byte swizzle, BN/64 boxes of
      // 64 x 64). Whole tiles go out through the TMA engine while the
      // warpgroup moves on; an expert's last rows and a narrow last column
      // block are copied out with 16-byte stores, row by row.
      using Tr = ElemTraits<__nv_bfloat16>;
      constexpr int kColBlocks = BN / 8;
      const bool fullN = int64_t(tc.nTile + 1) * BN <= p.nExtent;
      if (ctid == 0)
        bulkWaitRead(); // the previous tile's store has read the staging
      namedBarrier(1 + cw, 128);
      {
        // stmatrix: 8x8 blocks (column block i + g / 2, rows + 8 (g % 2))
        // for g = 0..3; acc is laid out as one m64nBN accumulator.
        const int g = lane / 8;
        const int r = warpInWg * 16 + 8 * (g % 2) + lane % 8; // 0..63
#pragma unroll
        for (int i = 0; i < kColBlocks; i += 2) {
          const int cb = i + g / 2;
          const uint32_t addr =
              stage0 + (cb / 8) * 8192 + r * 128 + (((cb % 8) ^ (r & 7)) << 4);
          stmatrixX4(addr, Tr::pack2(acc[4 * i], acc[4 * i + 1]),
                     Tr::pack2(acc[4 * i + 2], acc[4 * i + 3]),
                     Tr::pack2(acc[4 * i + 4], acc[4 * i + 5]),
                     Tr::pack2(acc[4 * i + 6], acc[4 * i + 7]));
        }
      }
      if (myRows >= 64 && fullN) {
        fenceProxyAsync(); // stmatrix writes, read next by the TMA engine
        namedBarrier(1 + cw, 128);
        if (ctid == 0) {
#pragma unroll
          for (int b = 0; b < BN / 64; ++b)
            tmaStore2d(&tmOut, stage0 + b * 8192, tc.nTile * BN + b * 64,
                       tc.rowBase + cw * 64);
          bulkCommit();
        }
        continue;
      }
      // The next tile's epilogue starts with a barrier, so the staging is
      // not overwritten while read here.
      namedBarrier(1 + cw, 128);
      const int rows = myRows < 64 ? myRows : 64;
      const int chunks =
          (fullN ? BN : static_cast<int>(p.nExtent - int64_t(tc.nTile) * BN)) /
          8;
      __nv_bfloat16 *base = static_cast<__nv_bfloat16 *>(p.out) +
                            (int64_t(tc.rowBase) + cw * 64) * p.ldo +
                            int64_t(tc.nTile) * BN;
      for (int idx = ctid; idx < rows * kColBlocks; idx += 128) {
        const int r = idx / kColBlocks, c = idx - r * kColBlocks;
        if (c < chunks)
          *reinterpret_cast<uint4 *>(base + int64_t(r) * p.ldo + c * 8) =
              ldShared128(stage0 + (c / 8) * 8192 + r * 128 +
                          (((c % 8) ^ (r & 7)) << 4));
      }
    }
    if (!kGateUp && ctid == 0)
      bulkWaitAll(); // staged stores complete before the block exits
  }
  pdlTrigger();
}

//===--- Host side
//----------------------------------------------------------===//

cudaError_t encodeFn(PFN_cuTensorMapEncodeTiled_v12000 &fn) {
  static PFN_cuTensorMapEncodeTiled_v12000 cached = nullptr;
  static std::once_flag once;
  static cudaError_t status = cudaSuccess;
  std::call_once(once, [] {
    void *ptr = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    status = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr,
                                              12000, cudaEnableDefault, &q);
    if (status == cudaSuccess && (q != cudaDriverEntryPointSuccess || !ptr))
      status = cudaErrorNotSupported;
    cached = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  });
  if (status != cudaSuccess)
    return setError(status,
                    "cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)");
  fn = cached;
  return cudaSuccess;
}

/// 2-D map over a row-major [rows, inner] matrix of 1- or 2-byte elements
/// (row stride ld elements), boxes of boxInner x boxRows, 128-byte swizzle.
cudaError_t makeMap(CUtensorMap &map, const void *base, bool bf16,
                    int64_t inner, int64_t rows, int boxInner, int boxRows,
                    int64_t ld) {
  PFN_cuTensorMapEncodeTiled_v12000 fn;
  cudaError_t err = encodeFn(fn);
  if (err != cudaSuccess)
    return err;
  const int elem = bf16 ? 2 : 1;
  cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner),
                        static_cast<cuuint64_t>(rows)};
  cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * elem};
  cuuint32_t box[2] = {static_cast<cuuint32_t>(boxInner),
                       static_cast<cuuint32_t>(boxRows)};
  cuuint32_t elemStrides[2] = {1, 1};
  CUresult r = fn(
      &map,
      bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8,
      2, const_cast<void *>(base), dims, strides, box, elemStrides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return setError(cudaErrorInvalidValue, "cuTensorMapEncodeTiled (CUresult " +
                                               std::to_string(int(r)) + ")");
  return cudaSuccess;
}

template <GemmOp MODE, int BN>
cudaError_t launchTile(const Fp8GemmProblem &p, const DeviceInfo &info,
                       cudaStream_t stream) {
  using Tile = Fp8Tile<MODE, BN>;
  const bool down = MODE == GemmOp::Down;
  const int nTilesN =
      static_cast<int>(down ? ceilDiv(p.nExtent, BN) : p.inter / kHalfN);
  const int64_t tiles =
      mTilesUpperBound(p.rows, p.numGroups, kBM) * int64_t(nTilesN);
  if (tiles == 0)
    return cudaSuccess;
  if (tiles > INT32_MAX)
    return unsupported("fp8 GEMM: too many tiles");
  const size_t smem = Tile::smemBytes(p.numGroups);
  if (smem > info.maxSmemOptin)
    return unsupported("fp8 GEMM: too many groups for shared memory");

  CUtensorMap mapA, mapB, mapOut;
  std::memset(&mapA, 0, sizeof(mapA));
  std::memset(&mapOut, 0, sizeof(mapOut));
  const int64_t bRows = p.numGroups * p.bGroupRows;
  cudaError_t err =
      makeMap(mapB, p.b, false, p.kDim, bRows, kBK, down ? BN : kHalfN, p.kDim);
  if (err == cudaSuccess && down)
    err = makeMap(mapA, p.a, false, p.kDim, p.rows, kBK, kBM, p.kDim);
  // The output: [rows, nExtent] columns of a bf16 matrix with leading
  // dimension ldo, 64 x 64 boxes (whole tiles only).
  if (err == cudaSuccess && down)
    err = makeMap(mapOut, p.out, true, p.nExtent, p.rows, 64, 64, p.ldo);
  if (err != cudaSuccess)
    return err;

  const unsigned grid =
      static_cast<unsigned>(tiles < info.smCount ? tiles : info.smCount);
  auto kernel = fp8GemmKernel<MODE, BN>;
  MOEK_CHECK_CUDA(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem)));
  MOEK_CHECK_CUDA(launchKernel(p.config.pdl, kernel, dim3(grid), dim3(kThreads),
                               smem, stream, mapA, mapB, mapOut, p, nTilesN));
  MOEK_CHECK_LAUNCH("fp8GemmKernel");
  return cudaSuccess;
}

bool aligned(const void *p, uintptr_t a) {
  return reinterpret_cast<uintptr_t>(p) % a == 0;
}

} // namespace

cudaError_t launchGemmFp8Wgmma(const Fp8GemmProblem &p, cudaStream_t stream) {
  DeviceInfo info;
  cudaError_t err = currentDeviceInfo(info);
  if (err != cudaSuccess)
    return err;
  const std::string problem = fp8DeviceProblem(deviceProps(info));
  if (!problem.empty())
    return unsupported("fp8 GEMM: " + problem);
  const bool down = p.mode == GemmOp::Down;
  const Fp8GemmConfig &c = p.config;
  if ((down ? (c.tileN != 128 && c.tileN != 256) : c.tileN != 256) ||
      c.stages != fp8Stages(p.mode, c.tileN))
    return unsupported("fp8 GEMM: config " + describe(c) + " (" +
                       (down ? "down tiles 128 or 256 wide"
                             : "gate-up tiles "
                               "256 wide") +
                       ", stages " +
                       std::to_string(fp8Stages(p.mode, c.tileN)) + ")");
  if (p.kDim % kBK != 0 || (!down && p.inter % kHalfN != 0) ||
      (down && (p.nExtent % 8 != 0 || p.ldo % 8 != 0)))
    return invalid("fp8 GEMM: K, I multiples of 128 and 16-byte output rows "
                   "required");
  if (!aligned(p.a, 16) || !aligned(p.b, 16) || !aligned(p.out, 16) ||
      !aligned(p.aScale, 4) || !aligned(p.bScale, 4))
    return invalid("fp8 GEMM: operands must be 16-byte aligned");
  if (p.numGroups * p.bGroupRows > INT32_MAX || p.rows > INT32_MAX)
    return unsupported("fp8 GEMM: more than 2^31 rows");
  if (!down)
    return launchTile<GemmOp::GateUp, 256>(p, info, stream);
  return c.tileN == 128 ? launchTile<GemmOp::Down, 128>(p, info, stream)
                        : launchTile<GemmOp::Down, 256>(p, info, stream);
}

} // namespace detail
} // namespace moek
