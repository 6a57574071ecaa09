//===- routing.cu - Stable permutation of (token, slot) pairs by expert ---===//
//
// Deterministic counting sort without atomics and without scratch memory:
//   1. routeCount   : one block per expert counts its pairs (warp ballots).
//   2. routeScan    : one block turns the counts into offsets[0..E].
//   3. routeCompact : one block per expert writes its pairs in (token, slot)
//                     order: sorted[pos] = pair, inverse[pair] = pos.
// Pairs with ids outside [0, E) are left out (inverse stays -1). Each expert
// block reads all T*K ids twice; at 16K tokens x 8 that is 512 KB per block
// from L2, a few microseconds in total.
//===----------------------------------------------------------------------===//
#include "routing.cuh"

namespace moek {
namespace detail {
namespace {

constexpr int kRouteThreads = 1024;
constexpr int kRouteWarps = kRouteThreads / 32;

/// Number of ids equal to `e` in [begin, end), counted by one warp. Four
/// 32-id chunks per step, loads first, so four L2 reads are in flight.
__device__ __forceinline__ int warpCount(const int32_t *ids, int64_t begin,
                                         int64_t end, int e, int lane) {
  int n = 0;
  int64_t c = begin; // chunk start
  for (; c + 128 <= end; c += 128) {
    int v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      v[u] = ids[c + 32 * u + lane];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      n += __popc(__ballot_sync(0xffffffffu, v[u] == e));
  }
  for (; c < end; c += 32) {
    bool hit = c + lane < end && ids[c + lane] == e;
    n += __popc(__ballot_sync(0xffffffffu, hit));
  }
  return n;
}

__device__ __forceinline__ void warpSegment(int64_t n, int warp,
                                           int64_t &begin, int64_t &end) {
  int64_t per = (n + kRouteWarps - 1) / kRouteWarps;
  per = (per + 31) / 32 * 32;
  begin = per * warp < n ? per * warp : n;
  end = begin + per < n ? begin + per : n;
}

__global__ __launch_bounds__(kRouteThreads) void routeCount(
    const int32_t *ids, int64_t n, int32_t *offsets) {
  pdlWaitAndTrigger();
  __shared__ int warpTotals[kRouteWarps];
  const int e = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t begin, end;
  warpSegment(n, warp, begin, end);
  int c = warpCount(ids, begin, end, e, lane);
  if (lane == 0)
    warpTotals[warp] = c;
  __syncthreads();
  if (threadIdx.x == 0) {
    int total = 0;
    for (int w = 0; w < kRouteWarps; ++w)
      total += warpTotals[w];
    offsets[e + 1] = total;
  }
}

__global__ __launch_bounds__(kRouteThreads) void routeScan(int32_t *offsets,
                                                           int E) {
  // offsets[1..E] hold counts; make them inclusive prefix sums, offsets[0]=0.
  pdlWaitAndTrigger();
  __shared__ int warpSums[kRouteWarps];
  __shared__ int carry;
  if (threadIdx.x == 0) {
    carry = 0;
    offsets[0] = 0;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int base = 0; base < E; base += kRouteThreads) {
    int i = base + threadIdx.x;
    int v = i < E ? offsets[i + 1] : 0;
    int x = v;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      int y = __shfl_up_sync(0xffffffffu, x, off);
      if (lane >= off)
        x += y;
    }
    if (lane == 31)
      warpSums[warp] = x;
    __syncthreads();
    if (warp == 0) {
      int s = warpSums[lane];
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, s, off);
        if (lane >= off)
          s += y;
      }
      warpSums[lane] = s; // inclusive
    }
    __syncthreads();
    int prefix = carry + (warp > 0 ? warpSums[warp - 1] : 0) + x;
    if (i < E)
      offsets[i + 1] = prefix;
    __syncthreads();
    if (threadIdx.x == kRouteThreads - 1)
      carry = prefix;
    __syncthreads();
  }
}

__global__ __launch_bounds__(kRouteThreads) void routeCompact(
    const int32_t *ids, int64_t n, const int32_t *offsets, int32_t *sorted,
    int32_t *inverse) {
  pdlWaitAndTrigger();
  __shared__ int warpBase[kRouteWarps];
  const int e = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t begin, end;
  warpSegment(n, warp, begin, end);
  const int mine = warpCount(ids, begin, end, e, lane);
  if (lane == 0)
    warpBase[warp] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = offsets[e];
    for (int w = 0; w < kRouteWarps; ++w) {
      int t = warpBase[w];
      warpBase[w] = run;
      run += t;
    }
  }
  __syncthreads();
  int pos = warpBase[warp];
  const unsigned lanesBelow = (1u << lane) - 1u;
  auto emit = [&](int64_t i, bool hit) {
    unsigned m = __ballot_sync(0xffffffffu, hit);
    if (hit) {
      int p = pos + __popc(m & lanesBelow);
      sorted[p] = static_cast<int32_t>(i);
      inverse[i] = p;
    }
    pos += __popc(m);
  };
  int64_t c = begin;
  for (; c + 128 <= end; c += 128) {
    int v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      v[u] = ids[c + 32 * u + lane];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      emit(c + 32 * u + lane, v[u] == e);
  }
  for (; c < end; c += 32)
    emit(c + lane, c + lane < end && ids[c + lane] == e);
}

} // namespace

cudaError_t launchRouting(const int32_t *ids, int64_t numPairs, int64_t E,
                          int32_t *offsets, int32_t *sorted, int32_t *inverse,
                          const LaunchConfig &config, cudaStream_t stream) {
  MOEK_CHECK_CUDA(cudaMemsetAsync(inverse, 0xff,
                                  sizeof(int32_t) * numPairs, stream));
  MOEK_CHECK_CUDA(launchKernel(config.pdl, routeCount, dim3(unsigned(E)),
                               dim3(kRouteThreads), 0, stream, ids, numPairs,
                               offsets));
  MOEK_CHECK_CUDA(launchKernel(config.pdl, routeScan, dim3(1), dim3(kRouteThreads), 0,
                               stream, offsets, static_cast<int>(E)));
  MOEK_CHECK_CUDA(launchKernel(config.pdl, routeCompact, dim3(unsigned(E)),
                               dim3(kRouteThreads), 0, stream, ids, numPairs,
                               offsets, sorted, inverse));
  return cudaSuccess;
}

} // namespace detail
} // namespace moek
