//===- gemm_mma.cu - Grouped expert GEMMs with mma.sync (and a SIMT fallback) -===//
//
// The portable tensor-core path (sm_80+ instructions, also run on sm_90):
// 128x128x64 block tiles, 8 warps of 64x32, a 3-stage cp.async pipeline with
// 128-byte XOR-swizzled shared memory read by ldmatrix, mma.sync m16n8k16
// with fp32 accumulation. One block per tile (not persistent); blocks past the
// real tile count exit at once.
//
// GateUp: the A rows are gathered from hidden through the sorted pair list in
// the loads. The B tile interleaves the weights in 8-row groups (8 gate rows,
// then the 8 matching up rows), so every warp holds gate and up accumulators
// of the same activation columns and the SiLU(g)*u epilogue needs no shuffle.
//
// The SIMT kernels at the end compute one output element per thread in fp32;
// they serve f32 data and shapes the tensor-core paths reject.
//===----------------------------------------------------------------------===//
#include "routing.cuh"

namespace moek {
namespace detail {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 3;
constexpr int kThreads = 256;
constexpr int kTileBytes = kBM * kBK * 2; // A and B tiles are the same size
constexpr size_t kPipeBytes = size_t(kStages) * 2 * kTileBytes;

__device__ __forceinline__ uint32_t smemAddr(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cpAsync16(uint32_t dst, const void *src,
                                          bool valid) {
  int bytes = valid ? 16 : 0; // 0: fill the 16 bytes with zeros
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(src), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int N> __device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrixX4(uint32_t addr, uint32_t &r0,
                                           uint32_t &r1, uint32_t &r2,
                                           uint32_t &r3) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
      : "r"(addr));
}

template <typename Elem> struct Mma;
template <> struct Mma<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4],
                                             uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                   "r"(b1));
  }
};
template <> struct Mma<__half> {
  __device__ __forceinline__ static void run(float (&d)[4], const uint32_t (&a)[4],
                                             uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                   "r"(b1));
  }
};

/// Byte offset of 16-byte chunk `c` of row `r` in a swizzled 128-byte-row tile.
__device__ __forceinline__ uint32_t swz(int r, int c) {
  return static_cast<uint32_t>(r * 128 + ((c ^ (r & 7)) << 4));
}

template <typename Elem, GemmMode MODE>
__global__ __launch_bounds__(kThreads) void mmaGemmKernel(GemmProblem p,
                                                          int nTilesN) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char *pipe = smem;
  int *sOff = reinterpret_cast<int *>(smem + kPipeBytes);
  int *sTiles = sOff + p.numGroups + 1;

  pdlWaitAndTrigger();
  if (threadIdx.x < 32)
    buildTilePrefix<kBM>(p.offsets, p.numGroups, p.rows, sOff, sTiles);
  __syncthreads();
  const int total = sTiles[p.numGroups] * nTilesN;
  if (static_cast<int>(blockIdx.x) >= total)
    return;
  const TileCoord tc =
      decodeTile<kBM>(blockIdx.x, nTilesN, p.numGroups, sOff, sTiles);

  const int tid = threadIdx.x;
  const Elem *A = static_cast<const Elem *>(p.a);
  const Elem *B = static_cast<const Elem *>(p.b);
  const int64_t K = p.kDim;

  // Each thread copies 4 chunks of A and 4 of B per stage: rows tid/8 + 32i,
  // chunk tid%8 (8 consecutive threads read one 128-byte row segment).
  const int chunk = tid % 8;
  const Elem *aRow[4];
  const Elem *bRow[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int r = tid / 8 + 32 * i;
    aRow[i] = nullptr;
    if (r < tc.rowsHere) {
      int64_t row = tc.rowBase + r;
      if (MODE == GemmMode::GateUp && p.gather)
        row = p.gather[row] / p.topk;
      aRow[i] = A + row * K;
    }
    bRow[i] = nullptr;
    if (MODE == GemmMode::GateUp) {
      int j = tc.nTile * (kBN / 2) + (r / 16) * 8 + (r % 8); // act column
      if (j < p.inter) {
        int64_t src = int64_t(tc.group) * p.bGroupRows + j +
                      ((r % 16) >= 8 ? p.inter : 0);
        bRow[i] = B + src * K;
      }
    } else {
      int n = tc.nTile * kBN + r;
      if (n < p.nExtent)
        bRow[i] = B + (int64_t(tc.group) * p.bGroupRows + p.bRowOffset + n) * K;
    }
  }

  const int numK = static_cast<int>((K + kBK - 1) / kBK);
  auto loadStage = [&](int kb, int stage) {
    unsigned char *aS = pipe + size_t(stage) * 2 * kTileBytes;
    unsigned char *bS = aS + kTileBytes;
    int64_t col = int64_t(kb) * kBK + chunk * 8;
    bool colOk = col < K;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int r = tid / 8 + 32 * i;
      bool va = colOk && aRow[i];
      cpAsync16(smemAddr(aS + swz(r, chunk)), va ? aRow[i] + col : A, va);
      bool vb = colOk && bRow[i];
      cpAsync16(smemAddr(bS + swz(r, chunk)), vb ? bRow[i] + col : B, vb);
    }
  };

  const int warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4; // 2 x 4 warps, 64 x 32 each
  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k)
        acc[i][j][k] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < numK)
      loadStage(s, s);
    cpAsyncCommit();
  }

  for (int kb = 0; kb < numK; ++kb) {
    cpAsyncWait<kStages - 2>();
    __syncthreads();
    {
      int next = kb + kStages - 1;
      if (next < numK)
        loadStage(next, next % kStages);
      cpAsyncCommit();
    }
    const unsigned char *aS = pipe + size_t(kb % kStages) * 2 * kTileBytes;
    const unsigned char *bS = aS + kTileBytes;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[4][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        int r = wm * 64 + mi * 16 + (lane % 16);
        int c = kk * 2 + lane / 16;
        ldmatrixX4(smemAddr(aS + swz(r, c)), af[mi][0], af[mi][1], af[mi][2],
                   af[mi][3]);
      }
      uint32_t bf[4][2];
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        int r = wn * 32 + nj * 16 + (lane % 8) + (lane / 16) * 8;
        int c = kk * 2 + (lane / 8) % 2;
        ldmatrixX4(smemAddr(bS + swz(r, c)), bf[2 * nj][0], bf[2 * nj][1],
                   bf[2 * nj + 1][0], bf[2 * nj + 1][1]);
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
          Mma<Elem>::run(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  }
  cpAsyncWait<0>();

  // Epilogue straight from registers: two adjacent columns per store.
  using Tr = ElemTraits<Elem>;
  const int g = lane / 4, q = lane % 4;
  Elem *out = static_cast<Elem *>(p.out);
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      int r = wm * 64 + mi * 16 + g + half * 8;
      if (r >= tc.rowsHere)
        continue;
      int64_t row = tc.rowBase + r;
      if (MODE == GemmMode::GateUp) {
#pragma unroll
        for (int pr = 0; pr < 2; ++pr) {
          int col = tc.nTile * (kBN / 2) + (wn * 2 + pr) * 8 + 2 * q;
          if (col >= p.inter)
            continue;
          const float *gt = acc[mi][2 * pr];
          const float *up = acc[mi][2 * pr + 1];
          float v0 = siluMul(gt[2 * half], up[2 * half]);
          float v1 = siluMul(gt[2 * half + 1], up[2 * half + 1]);
          *reinterpret_cast<uint32_t *>(out + row * p.inter + col) =
              Tr::pack2(v0, v1);
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          int col = tc.nTile * kBN + wn * 32 + ni * 8 + 2 * q;
          if (col >= p.nExtent)
            continue;
          *reinterpret_cast<uint32_t *>(out + row * p.ldo + col) =
              Tr::pack2(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
        }
      }
    }
  }
}

//===--- SIMT fallback -----------------------------------------------------===//

/// Group of global row `row` (largest g with offsets[g] <= row), or -1.
__device__ __forceinline__ int groupOfRow(const int32_t *offsets, int G,
                                          int64_t rows, int64_t row) {
  if (!offsets)
    return row < rows ? 0 : -1;
  if (row >= offsets[G] || row < offsets[0])
    return -1;
  int lo = 0, hi = G - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= row)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

template <typename Elem, GemmMode MODE>
__global__ __launch_bounds__(128) void simtGemmKernel(GemmProblem p,
                                                      int64_t rowStart) {
  using Tr = ElemTraits<Elem>;
  pdlWaitAndTrigger();
  const int64_t row = rowStart + blockIdx.y;
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int g = groupOfRow(p.offsets, p.numGroups, p.rows, row);
  if (g < 0)
    return;
  const Elem *A = static_cast<const Elem *>(p.a);
  const Elem *B = static_cast<const Elem *>(p.b);
  Elem *out = static_cast<Elem *>(p.out);
  const int64_t K = p.kDim;
  if (MODE == GemmMode::GateUp) {
    if (col >= p.inter)
      return;
    int64_t src = p.gather ? p.gather[row] / p.topk : row;
    const Elem *x = A + src * K;
    const Elem *wg = B + (int64_t(g) * p.bGroupRows + col) * K;
    const Elem *wu = wg + p.inter * K;
    float gs = 0.f, us = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      float xv = Tr::toFloat(x[k]);
      gs = fmaf(xv, Tr::toFloat(wg[k]), gs);
      us = fmaf(xv, Tr::toFloat(wu[k]), us);
    }
    out[row * p.inter + col] = Tr::fromFloat(siluMul(gs, us));
  } else {
    if (col >= p.nExtent)
      return;
    const Elem *x = A + row * K;
    const Elem *w = B + (int64_t(g) * p.bGroupRows + p.bRowOffset + col) * K;
    float s = 0.f;
    for (int64_t k = 0; k < K; ++k)
      s = fmaf(Tr::toFloat(x[k]), Tr::toFloat(w[k]), s);
    out[row * p.ldo + col] = Tr::fromFloat(s);
  }
}

template <typename Elem>
cudaError_t launchMmaTyped(const GemmProblem &p, cudaStream_t stream) {
  const int nTilesN =
      static_cast<int>(p.mode == GemmMode::GateUp ? ceilDiv(p.inter, kBN / 2)
                                                  : ceilDiv(p.nExtent, kBN));
  const int64_t blocks =
      mTilesUpperBound(p.rows, p.numGroups, kBM) * int64_t(nTilesN);
  if (blocks == 0)
    return cudaSuccess;
  if (blocks > INT32_MAX)
    return unsupported("mma.sync GEMM: too many tiles");
  const size_t smem = kPipeBytes + 2 * sizeof(int) * (p.numGroups + 1);
  if (p.mode == GemmMode::GateUp) {
    auto k = mmaGemmKernel<Elem, GemmMode::GateUp>;
    MOEK_CHECK_CUDA(cudaFuncSetAttribute(
        k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    MOEK_CHECK_CUDA(launchKernel(p.config.pdl, k, dim3(unsigned(blocks)),
                                 dim3(kThreads), smem, stream, p, nTilesN));
  } else {
    auto k = mmaGemmKernel<Elem, GemmMode::Down>;
    MOEK_CHECK_CUDA(cudaFuncSetAttribute(
        k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    MOEK_CHECK_CUDA(launchKernel(p.config.pdl, k, dim3(unsigned(blocks)),
                                 dim3(kThreads), smem, stream, p, nTilesN));
  }
  MOEK_CHECK_LAUNCH("mmaGemmKernel");
  return cudaSuccess;
}

template <typename Elem>
cudaError_t launchSimtTyped(const GemmProblem &p, cudaStream_t stream) {
  int64_t cols = p.mode == GemmMode::GateUp ? p.inter : p.nExtent;
  if (p.rows == 0 || cols == 0)
    return cudaSuccess;
  // gridDim.y is limited to 65535: cover the rows in several launches.
  for (int64_t r0 = 0; r0 < p.rows; r0 += 65535) {
    int64_t n = p.rows - r0 < 65535 ? p.rows - r0 : 65535;
    dim3 grid(static_cast<unsigned>(ceilDiv(cols, 128)),
              static_cast<unsigned>(n));
    auto k = p.mode == GemmMode::GateUp ? simtGemmKernel<Elem, GemmMode::GateUp>
                                        : simtGemmKernel<Elem, GemmMode::Down>;
    MOEK_CHECK_CUDA(launchKernel(p.config.pdl, k, grid, dim3(128), 0, stream, p,
                                 r0));
    MOEK_CHECK_LAUNCH("simtGemmKernel");
  }
  return cudaSuccess;
}

} // namespace

cudaError_t launchGemmMma(const GemmProblem &p, DType dtype,
                          cudaStream_t stream) {
  // 16-byte cp.async chunks: rows must be 16-byte aligned, K a multiple of 8.
  if (p.kDim % 8 != 0)
    return unsupported("mma.sync GEMM: K must be a multiple of 8");
  if ((reinterpret_cast<uintptr_t>(p.a) | reinterpret_cast<uintptr_t>(p.b)) %
          16 != 0)
    return unsupported("mma.sync GEMM: operands must be 16-byte aligned");
  if ((reinterpret_cast<uintptr_t>(p.out) % 4) != 0 ||
      (p.mode == GemmMode::GateUp ? p.inter % 2 : p.ldo % 2) != 0)
    return unsupported("mma.sync GEMM: output pairs must be 4-byte aligned");
  if (p.numGroups + 1 > 4096)
    return unsupported("mma.sync GEMM: more than 4095 groups");
  switch (dtype) {
  case DType::BF16: return launchMmaTyped<__nv_bfloat16>(p, stream);
  case DType::F16: return launchMmaTyped<__half>(p, stream);
  default: return unsupported("mma.sync GEMM: f32 data");
  }
}

cudaError_t launchGemmSimt(const GemmProblem &p, DType dtype,
                           cudaStream_t stream) {
  switch (dtype) {
  case DType::BF16: return launchSimtTyped<__nv_bfloat16>(p, stream);
  case DType::F16: return launchSimtTyped<__half>(p, stream);
  case DType::F32: return launchSimtTyped<float>(p, stream);
  }
  return invalid("SIMT GEMM: dtype");
}

} // namespace detail
} // namespace moek
