//===- gemm_wgmma.cu - Grouped expert GEMMs for Hopper (TMA + wgmma) ------===//
//
// Persistent, warp-specialised kernel: 3 warpgroups per block, one block per
// SM. Warpgroup 0 produces (loads), warpgroups 1 and 2 consume (wgmma
// m64n256k16, 64 rows each, so a block tile is 128 x 256 with fp32
// accumulators in registers). A 4-stage ring of 48 KB stages (A 128x64,
// B 256x64, both K-major with the 128-byte swizzle) is guarded by mbarriers:
// full[s] (loads landed) and empty[s] (both consumers done reading).
//
// GateUp (GEMM1): B = w13 rows of one expert through TMA, two 128-row boxes
//   per stage (gate rows n0.., up rows I+n0..), so accumulator column c
//   (gate) and c+128 (up) sit in the same thread and the epilogue writes
//   round(silu(g)*u) straight from registers. A = rows of hidden gathered
//   through the sorted pair list: TMA cannot gather rows on sm_90, so the
//   128 producer threads copy them with cp.async (16 B each, written in the
//   TMA swizzle pattern) and signal full[s] with cp.async.mbarrier.arrive.
// Down (GEMM2): A = contiguous activation rows and B = w2 rows of the column
//   block, both through TMA; the epilogue writes rounded partials.
//
// Tiles are scheduled group-major (expert), then N, then M, so the blocks in
// flight share each expert's weights through L2; each block walks tiles
// blockIdx.x, blockIdx.x + gridDim.x, ... and the producer runs ahead into
// the next tile while the consumers store the previous one.
//===----------------------------------------------------------------------===//
#include "routing.cuh"
#include "sm90.cuh"
#include "wgmma_ops.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstring>
#include <mutex>
#include <string>

namespace moek {
namespace detail {
namespace {

using namespace sm90;

// Block tile 128 x BN x 64; BN = 256 for large problems, 128 when there are
// too few tiles to fill the machine evenly (decode: every expert has one
// mostly empty M tile, and the weights stream through twice as many blocks).
constexpr int kBM = 128, kBK = 64;
constexpr int kThreads = 384;
constexpr int kAStageBytes = kBM * kBK * 2; // 16 KB
constexpr int kProducerRegs = 56;
constexpr int kConsumerRegs = 224;
constexpr int kConsumerThreads = 256;
template <int BN> __host__ __device__ constexpr int bStageBytesOf() {
  return BN * kBK * 2;
}
/// GateUp streams K = H (thousands) through a 4-stage ring. Down has K = I
/// (hundreds) and 2 x (64 x BN) of staging for the TMA-store epilogue: 3
/// stages at BN = 256, 4 at BN = 128.
template <GemmMode MODE, int BN> __host__ __device__ constexpr int stagesOf() {
  return wgmmaStages(MODE, BN);
}
template <int BN> __host__ __device__ constexpr int stagingBytesPerWg() {
  return 64 * BN * 2;
}
template <GemmMode MODE, int BN>
__host__ __device__ constexpr size_t pipeBytesOf() {
  return size_t(stagesOf<MODE, BN>()) * (kAStageBytes + bStageBytesOf<BN>());
}
template <GemmMode MODE, int BN>
__host__ __device__ constexpr size_t stagingBytesOf() {
  return MODE == GemmMode::Down ? 2 * size_t(stagingBytesPerWg<BN>()) : 0;
}

template <typename Elem, int BN> struct Wgmma;
template <> struct Wgmma<__nv_bfloat16, 256> {
  __device__ __forceinline__ static void run(float (&d)[128], uint64_t a,
                                             uint64_t b, int scaleD) {
    wgmma::wgmmaM64N256K16Bf16(d, a, b, scaleD);
  }
};
template <> struct Wgmma<__half, 256> {
  __device__ __forceinline__ static void run(float (&d)[128], uint64_t a,
                                             uint64_t b, int scaleD) {
    wgmma::wgmmaM64N256K16F16(d, a, b, scaleD);
  }
};
template <> struct Wgmma<__nv_bfloat16, 128> {
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a,
                                             uint64_t b, int scaleD) {
    wgmma::wgmmaM64N128K16Bf16(d, a, b, scaleD);
  }
};
template <> struct Wgmma<__half, 128> {
  __device__ __forceinline__ static void run(float (&d)[64], uint64_t a,
                                             uint64_t b, int scaleD) {
    wgmma::wgmmaM64N128K16F16(d, a, b, scaleD);
  }
};

__device__ __forceinline__ void stShared32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

template <typename Elem, GemmMode MODE, int BN>
__global__ __launch_bounds__(kThreads, 1) void wgmmaGemmKernel(
    const __grid_constant__ CUtensorMap tmA,
    const __grid_constant__ CUtensorMap tmAHalf,
    const __grid_constant__ CUtensorMap tmB,
    const __grid_constant__ CUtensorMap tmOut, GemmProblem p, int nTilesN) {
  constexpr int kBN = BN;
  constexpr int kStages = stagesOf<MODE, BN>();
  constexpr size_t kPipeBytes = pipeBytesOf<MODE, BN>();
  constexpr int kBStageBytes = bStageBytesOf<BN>();
  constexpr int kAcc = BN / 2;          // fp32 accumulators per thread
  constexpr int kColBlocks = BN / 8;    // 8-column blocks per accumulator row
  constexpr int kStagingBytes = stagingBytesPerWg<BN>();
  extern __shared__ unsigned char smemRaw[];
  unsigned char *smem = reinterpret_cast<unsigned char *>(
      (reinterpret_cast<uintptr_t>(smemRaw) + 1023) & ~uintptr_t(1023));
  unsigned char *aPipe = smem;
  unsigned char *bPipe = smem + kStages * kAStageBytes;
  unsigned char *staging = smem + kPipeBytes; // Down only, 1024-aligned
  uint64_t *fullBar =
      reinterpret_cast<uint64_t *>(staging + stagingBytesOf<MODE, BN>());
  uint64_t *emptyBar = fullBar + kStages;
  int *sOff = reinterpret_cast<int *>(emptyBar + kStages);
  int *sTiles = sOff + p.numGroups + 1;
  const int G = p.numGroups;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarInit(smemAddr(&fullBar[s]), MODE == GemmMode::GateUp ? 129 : 1);
      mbarInit(smemAddr(&emptyBar[s]), kConsumerThreads);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  // Nothing above touches global memory; everything below may depend on the
  // previous kernel in the stream. The next kernel is released after this
  // block's last tile (its blocks could not share the SM anyway), unless
  // earlyTrigger asks for it now.
  pdlWait();
  if (p.config.earlyTrigger)
    pdlTrigger();
  if (threadIdx.x >= 32 && threadIdx.x < 64)
    buildTilePrefix<kBM>(p.offsets, G, p.rows, sOff, sTiles);
  __syncthreads();

  // Role and loop bounds are made warp-uniform through __shfl_sync, so that
  // ptxas sees the wgmma instructions on convergent paths.
  const int total = __shfl_sync(0xffffffffu, sTiles[G] * nTilesN, 0);
  const int numK = static_cast<int>((p.kDim + kBK - 1) / kBK);
  const int wg = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);

  if (wg == 0) {
    //===--- producer ---===//
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegs));
    const int ptid = threadIdx.x;
    if (MODE == GemmMode::GateUp) {
      const Elem *A = static_cast<const Elem *>(p.a);
      const int64_t K = p.kDim;
      const int chunk = ptid % 8;
      const int rsub = (ptid / 32) * 4 + (ptid % 32) / 8; // 0..15
      int it = 0;
      for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        const TileCoord tc = decodeTile<kBM>(tile, nTilesN, G, sOff, sTiles);
        int tok[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          int r = i * 16 + rsub;
          tok[i] = -1;
          if (r < tc.rowsHere) {
            int row = tc.rowBase + r;
            tok[i] = p.gather ? p.gather[row] / p.topk : row;
          }
        }
        const int bRowGate =
            static_cast<int>(tc.group * p.bGroupRows) + tc.nTile * (kBN / 2);
        const int bRowUp = bRowGate + static_cast<int>(p.inter);
        for (int kb = 0; kb < numK; ++kb, ++it) {
          const int s = it % kStages;
          const uint32_t ph = (it / kStages) & 1;
          const uint32_t full = smemAddr(&fullBar[s]);
          mbarWait(smemAddr(&emptyBar[s]), ph ^ 1);
          if (ptid == 0) {
            mbarArriveExpectTx(full, kBStageBytes);
            uint32_t bS = smemAddr(bPipe + s * kBStageBytes);
            tmaLoad2d(bS, &tmB, full, kb * kBK, bRowGate);
            tmaLoad2d(bS + kBStageBytes / 2, &tmB, full, kb * kBK, bRowUp);
          }
          const int64_t col = int64_t(kb) * kBK + chunk * 8;
          const bool colOk = col < K;
          const uint32_t aS = smemAddr(aPipe + s * kAStageBytes);
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const int r = i * 16 + rsub;
            const bool v = colOk && tok[i] >= 0;
            const Elem *src = v ? A + int64_t(tok[i]) * K + col : A;
            cpAsync16(aS + r * 128 + ((chunk ^ (r & 7)) << 4), src, v);
          }
          cpAsyncArriveNoinc(full);
        }
      }
      asm volatile("cp.async.wait_all;\n" ::: "memory");
    } else if (ptid == 0) {
      const bool halfTiles = p.config.halfA;
      int it = 0;
      for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        const TileCoord tc = decodeTile<kBM>(tile, nTilesN, G, sOff, sTiles);
        const int bRow = static_cast<int>(tc.group * p.bGroupRows +
                                          p.bRowOffset) +
                         tc.nTile * kBN;
        for (int kb = 0; kb < numK; ++kb, ++it) {
          const int s = it % kStages;
          const uint32_t ph = (it / kStages) & 1;
          const uint32_t full = smemAddr(&fullBar[s]);
          mbarWait(smemAddr(&emptyBar[s]), ph ^ 1);
          // With the idle-half skip (halfA is set only with it), a tile of
          // at most 64 rows is computed by the first consumer alone: load
          // only its 64 rows of A (the same bytes in the same swizzled place
          // as the first half of a 128-row box). At decode sizes most tiles
          // are such tiles, and A would otherwise be half of the traffic.
          const bool halfA = halfTiles && tc.rowsHere <= 64;
          mbarArriveExpectTx(full, (halfA ? kAStageBytes / 2 : kAStageBytes) +
                                       kBStageBytes);
          tmaLoad2d(smemAddr(aPipe + s * kAStageBytes),
                    halfA ? &tmAHalf : &tmA, full, kb * kBK, tc.rowBase);
          tmaLoad2d(smemAddr(bPipe + s * kBStageBytes), &tmB, full, kb * kBK,
                    bRow);
        }
      }
    }
  } else {
    //===--- consumers ---===//
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegs));
    const int cw = wg - 1;                 // rows [64 cw, 64 cw + 64) of a tile
    const int ctid = threadIdx.x - 128 * wg;
    const int warpInWg = ctid / 32, lane = ctid % 32;
    const int q = lane % 4;
    const int rowA = cw * 64 + warpInWg * 16 + lane / 4; // and rowA + 8
    float d[kAcc];
#pragma unroll
    for (int i = 0; i < kAcc; ++i)
      d[i] = 0.f;
    using Tr = ElemTraits<Elem>;
    Elem *out = static_cast<Elem *>(p.out);
    const uint32_t stage0 = smemAddr(staging + cw * kStagingBytes);
    int it = 0;
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
      const TileCoord tc = decodeTile<kBM>(tile, nTilesN, G, sOff, sTiles);
      // A warpgroup whose 64 rows are all past the group's end only releases
      // the stages: the other one then has the tensor cores to itself.
      const bool active =
          __shfl_sync(0xffffffffu,
                      (cw * 64 < tc.rowsHere || !p.config.idleHalfSkip) ? 1 : 0,
                      0) != 0;
      if (!active) {
        for (int kb = 0; kb < numK; ++kb, ++it) {
          const int s = it % kStages;
          mbarWait(smemAddr(&fullBar[s]), (it / kStages) & 1);
          mbarArrive(smemAddr(&emptyBar[s]));
        }
        continue;
      }
      int prevS = 0;
      for (int kb = 0; kb < numK; ++kb, ++it) {
        const int s = it % kStages;
        const uint32_t ph = (it / kStages) & 1;
        mbarWait(smemAddr(&fullBar[s]), ph);
        if (MODE == GemmMode::GateUp)
          fenceProxyAsync(); // A arrived through cp.async (generic proxy)
        wgmmaFence();
        const uint64_t descA =
            makeDesc(smemAddr(aPipe + s * kAStageBytes + cw * 64 * 128));
        const uint64_t descB = makeDesc(smemAddr(bPipe + s * kBStageBytes));
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk)
          Wgmma<Elem, BN>::run(d, descA + 2 * kk, descB + 2 * kk,
                           (kb > 0 || kk > 0) ? 1 : 0);
        wgmmaCommit();
        if (kb > 0) {
          wgmmaWait<1>();
          mbarArrive(smemAddr(&emptyBar[prevS]));
        }
        prevS = s;
      }
      wgmmaWait<0>();
      wgmma::fenceOperand(d);
      mbarArrive(smemAddr(&emptyBar[prevS]));

      // Down: each warpgroup stages its 64 rows in shared memory (128-byte
      // swizzle, BN/64 boxes of 64x64). When all 64 rows and all BN columns
      // are valid the TMA engine stores them while the warpgroup goes on with
      // the next tile; otherwise (an expert's last tile, the last column
      // block) the warpgroup copies the valid part out with 16-byte stores,
      // row by row (the registers' layout allows only 4-byte stores, half a
      // sector each: measured as half of the kernel's global store sectors).
      const int myRows = tc.rowsHere - cw * 64;
      const bool fullN = (tc.nTile + 1) * kBN <= p.nExtent;
      const bool staged =
          MODE == GemmMode::Down &&
          ((myRows >= 64 && fullN) || !p.config.directPartialStores);
      if (staged && myRows <= 0)
        continue; // only padding rows (reached without the idle skip)
      if (staged) {
        if (ctid == 0)
          bulkWaitRead(); // the previous tile's store has read the staging
        namedBarrier(1 + cw, 128);
        if (!p.config.scalarEpilogue) {
          // stmatrix: per instruction, 8x8 blocks (column block i + g / 2,
          // rows + 8 (g % 2)) for g = 0..3; a quarter of the instructions of
          // 32-bit stores.
          const int g = lane / 8;
          const int r = warpInWg * 16 + 8 * (g % 2) + lane % 8; // 0..63
#pragma unroll
          for (int i = 0; i < kColBlocks; i += 2) {
            const int cb = i + g / 2;
            const uint32_t addr = stage0 + (cb / 8) * 8192 + r * 128 +
                                  (((cb % 8) ^ (r & 7)) << 4);
            stmatrixX4(addr, Tr::pack2(d[4 * i], d[4 * i + 1]),
                       Tr::pack2(d[4 * i + 2], d[4 * i + 3]),
                       Tr::pack2(d[4 * i + 4], d[4 * i + 5]),
                       Tr::pack2(d[4 * i + 6], d[4 * i + 7]));
          }
        } else {
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int r = warpInWg * 16 + lane / 4 + 8 * half; // 0..63
#pragma unroll
            for (int i = 0; i < kColBlocks; ++i) {
              const uint32_t addr = stage0 + (i / 8) * 8192 + r * 128 +
                                    (((i % 8) ^ (r & 7)) << 4) + q * 4;
              stShared32(addr, Tr::pack2(d[4 * i + 2 * half],
                                         d[4 * i + 2 * half + 1]));
            }
          }
        }
        if (myRows >= 64 && fullN) {
          fenceProxyAsync();
          namedBarrier(1 + cw, 128);
          if (ctid == 0) {
#pragma unroll
            for (int b = 0; b < BN / 64; ++b)
              tmaStore2d(&tmOut, stage0 + b * 8192, tc.nTile * kBN + b * 64,
                         tc.rowBase + cw * 64);
            bulkCommit();
          }
          continue;
        }
        // Partial: consecutive threads take consecutive 16-byte chunks of a
        // row. The next tile's epilogue starts with a barrier, so the
        // staging is not overwritten while read here.
        namedBarrier(1 + cw, 128);
        const int rows = myRows < 64 ? myRows : 64;
        const int chunks =
            (fullN ? kBN
                   : static_cast<int>(p.nExtent - int64_t(tc.nTile) * kBN)) /
            8;
        Elem *base = out + (int64_t(tc.rowBase) + cw * 64) * p.ldo +
                     int64_t(tc.nTile) * kBN;
        for (int idx = ctid; idx < rows * kColBlocks; idx += 128) {
          const int r = idx / kColBlocks, c = idx - r * kColBlocks;
          if (c < chunks)
            *reinterpret_cast<uint4 *>(base + int64_t(r) * p.ldo + c * 8) =
                ldShared128(stage0 + (c / 8) * 8192 + r * 128 +
                            (((c % 8) ^ (r & 7)) << 4));
        }
        continue;
      }

      // Epilogue straight from registers: (row, 2 adjacent columns) pairs.
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = rowA + 8 * half;
        if (r >= tc.rowsHere)
          continue;
        const int64_t row = tc.rowBase + r;
        if (MODE == GemmMode::GateUp) {
          Elem *dst = out + row * p.inter;
          constexpr int kUp = kColBlocks / 2; // up columns start here
#pragma unroll
          for (int i = 0; i < kUp; ++i) {
            const int col = tc.nTile * (kBN / 2) + 8 * i + 2 * q;
            if (col < p.inter) {
              float v0 = siluMul(d[4 * i + 2 * half], d[4 * (i + kUp) + 2 * half]);
              float v1 = siluMul(d[4 * i + 2 * half + 1],
                                 d[4 * (i + kUp) + 2 * half + 1]);
              *reinterpret_cast<uint32_t *>(dst + col) = Tr::pack2(v0, v1);
            }
          }
        } else {
          Elem *dst = out + row * p.ldo;
#pragma unroll
          for (int i = 0; i < kColBlocks; ++i) {
            const int col = tc.nTile * kBN + 8 * i + 2 * q;
            if (col < p.nExtent)
              *reinterpret_cast<uint32_t *>(dst + col) =
                  Tr::pack2(d[4 * i + 2 * half], d[4 * i + 2 * half + 1]);
          }
        }
      }
    }
    if (MODE == GemmMode::Down && ctid == 0)
      bulkWaitAll(); // staged stores complete before the block exits
  }
  pdlTrigger(); // a no-op when already triggered
}

//===--- Host side ----------------------------------------------------------===//

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
    return setError(status, "cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)");
  fn = cached;
  return cudaSuccess;
}

/// 2-D map over a row-major [rows, inner] matrix (row stride ld elements)
/// with 64 x boxRows boxes.
cudaError_t makeMap(CUtensorMap &map, const void *base, DType dtype,
                    int64_t inner, int64_t rows, int boxRows, int64_t ld = 0) {
  PFN_cuTensorMapEncodeTiled_v12000 fn;
  cudaError_t err = encodeFn(fn);
  if (err != cudaSuccess)
    return err;
  cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner),
                        static_cast<cuuint64_t>(rows)};
  cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld ? ld : inner) * 2};
  cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK),
                       static_cast<cuuint32_t>(boxRows)};
  cuuint32_t elemStrides[2] = {1, 1};
  CUresult r = fn(&map,
                  dtype == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                       : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                  2, const_cast<void *>(base), dims, strides, box, elemStrides,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return setError(cudaErrorInvalidValue,
                    "cuTensorMapEncodeTiled (CUresult " + std::to_string(int(r)) + ")");
  return cudaSuccess;
}

template <int BN> int nTilesFor(const GemmProblem &p) {
  return static_cast<int>(p.mode == GemmMode::GateUp ? ceilDiv(p.inter, BN / 2)
                                                     : ceilDiv(p.nExtent, BN));
}

template <typename Elem, int BN>
cudaError_t launchWithN(const GemmProblem &p, DType dtype,
                        const DeviceInfo &info, cudaStream_t stream) {
  const int nTilesN = nTilesFor<BN>(p);
  const int64_t tiles =
      mTilesUpperBound(p.rows, p.numGroups, kBM) * int64_t(nTilesN);
  if (tiles == 0)
    return cudaSuccess;
  if (tiles > INT32_MAX)
    return unsupported("wgmma GEMM: too many tiles");
  const bool down = p.mode == GemmMode::Down;
  const int stages = down ? stagesOf<GemmMode::Down, BN>()
                          : stagesOf<GemmMode::GateUp, BN>();
  if (p.config.stages != stages)
    return unsupported("wgmma GEMM: config " + describe(p.config) + " (" +
                       (down ? "down" : "gate-up") + " tiles of width " +
                       std::to_string(BN) + " have " + std::to_string(stages) +
                       " stages)");
  GemmProblem q = p;
  // The second consumer computes on A rows 64..127 unless it skips idle
  // halves, so 64-row A boxes go only with the skip.
  q.config.halfA = p.config.halfA && p.config.idleHalfSkip;
  const size_t smem = 1024 +
                      (down ? pipeBytesOf<GemmMode::Down, BN>() +
                                  stagingBytesOf<GemmMode::Down, BN>()
                            : pipeBytesOf<GemmMode::GateUp, BN>()) +
                      2 * 4 * sizeof(uint64_t) +
                      2 * sizeof(int) * (p.numGroups + 1);
  if (smem > info.maxSmemOptin)
    return unsupported("wgmma GEMM: too many groups for shared memory");

  CUtensorMap mapA, mapAHalf, mapB, mapOut;
  std::memset(&mapA, 0, sizeof(mapA));
  std::memset(&mapAHalf, 0, sizeof(mapAHalf));
  std::memset(&mapOut, 0, sizeof(mapOut));
  cudaError_t err;
  if (!down) {
    err = makeMap(mapB, p.b, dtype, p.kDim, p.numGroups * p.bGroupRows,
                  BN / 2);
  } else {
    err = makeMap(mapA, p.a, dtype, p.kDim, p.rows, kBM);
    if (err == cudaSuccess)
      err = makeMap(mapAHalf, p.a, dtype, p.kDim, p.rows, kBM / 2);
    if (err == cudaSuccess)
      err = makeMap(mapB, p.b, dtype, p.kDim, p.numGroups * p.bGroupRows, BN);
    // The output: [rows, nExtent] columns of a matrix with leading dimension
    // ldo; boxes of 64 x 64 (the epilogue stores full tiles only).
    if (err == cudaSuccess)
      err = makeMap(mapOut, p.out, dtype, p.nExtent, p.rows, 64, p.ldo);
  }
  if (err != cudaSuccess)
    return err;

  const unsigned grid =
      static_cast<unsigned>(tiles < info.smCount ? tiles : info.smCount);
  auto kernel = down ? wgmmaGemmKernel<Elem, GemmMode::Down, BN>
                     : wgmmaGemmKernel<Elem, GemmMode::GateUp, BN>;
  MOEK_CHECK_CUDA(cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
      static_cast<int>(smem)));
  MOEK_CHECK_CUDA(launchKernel(q.config.pdl, kernel, dim3(grid),
                               dim3(kThreads), smem, stream, mapA, mapAHalf,
                               mapB, mapOut, q, nTilesN));
  MOEK_CHECK_LAUNCH("wgmmaGemmKernel");
  return cudaSuccess;
}

template <typename Elem>
cudaError_t launchTyped(const GemmProblem &p, DType dtype,
                        cudaStream_t stream) {
  DeviceInfo info;
  cudaError_t err = currentDeviceInfo(info);
  if (err != cudaSuccess)
    return err;
  // The tile width is the config's (chooseGemmConfig: 128 for decode-sized
  // ops and when 256-wide tiles would not give every SM four).
  return p.config.tileN == 128 ? launchWithN<Elem, 128>(p, dtype, info, stream)
                               : launchWithN<Elem, 256>(p, dtype, info, stream);
}

} // namespace

cudaError_t launchGemmWgmma(const GemmProblem &p, DType dtype,
                            cudaStream_t stream) {
  DeviceInfo info;
  cudaError_t err = currentDeviceInfo(info);
  if (err != cudaSuccess)
    return err;
  if (info.major != 9)
    return unsupported("wgmma GEMM: needs an sm_90 device");
  if (p.config.tileM != kBM || p.config.cluster != 1 ||
      (p.config.tileN != 128 && p.config.tileN != 256))
    return unsupported("wgmma GEMM: config " + describe(p.config) +
                       " (tiles 128x128 or 128x256, no clusters)");
  if (p.kDim % 8 != 0)
    return unsupported("wgmma GEMM: K must be a multiple of 8");
  if ((reinterpret_cast<uintptr_t>(p.a) | reinterpret_cast<uintptr_t>(p.b)) %
          16 != 0)
    return unsupported("wgmma GEMM: operands must be 16-byte aligned");
  if ((reinterpret_cast<uintptr_t>(p.out) % 16) != 0 ||
      (p.mode == GemmMode::GateUp ? p.inter % 2 : p.ldo % 8) != 0)
    return unsupported("wgmma GEMM: output rows must be 16-byte aligned");
  if (p.numGroups * p.bGroupRows > INT32_MAX || p.rows > INT32_MAX)
    return unsupported("wgmma GEMM: more than 2^31 rows");
  switch (dtype) {
  case DType::BF16: return launchTyped<__nv_bfloat16>(p, dtype, stream);
  case DType::F16: return launchTyped<__half>(p, dtype, stream);
  default: return unsupported("wgmma GEMM: f32 data");
  }
}

} // namespace detail
} // namespace moek
