//===- topk.cu - moe.topk: softmax / sigmoid(+bias) grouped top-k ---------===//
//
// One warp per token. Scores and selection keys live in shared memory (E
// floats each per warp); selection is k rounds of a warp arg-max with ties to
// the lower expert index, so the result is deterministic and slot j holds the
// j-th best expert.
//
//   softmax : score = softmax(logits), key = score (+ bias if given)
//   sigmoid : score = 1 / (1 + exp(-logit)), key = score (+ bias if given)
//   groups  : E experts in nGroup equal groups; a group's value is the sum of
//             its two best keys (sigmoid; its key if it has one expert) or
//             its best key (softmax); only the
//             best topkGroup groups (ties: lower group) are eligible.
//   weights : score of the selected experts (unbiased); renormalised by their
//             fp32 sum (slot order) if asked (sigmoid scores summing below
//             FLT_MIN: by exp(logit - max logit) instead, docs/runtime.md);
//             times routedScalingFactor.
//===----------------------------------------------------------------------===//
#include "common.cuh"

#include <cfloat>

namespace moek {
namespace {

constexpr int kTopkWarps = 4;
constexpr int kMaxGroups = 64;
constexpr int kMaxK = 32;

struct TopkArgs {
  const float *logits;
  const float *bias;
  int32_t *ids;
  float *weights;
  int T, E, k, nGroup, topkGroup;
  int softmax;
  int renormalize;
  float scale;
};

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

__device__ __forceinline__ void warpArgMax(float &v, int &i) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    float ov = __shfl_xor_sync(0xffffffffu, v, off);
    int oi = __shfl_xor_sync(0xffffffffu, i, off);
    if (better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

__global__ __launch_bounds__(kTopkWarps * 32) void topkKernel(TopkArgs a) {
  extern __shared__ float smem[];
  detail::pdlWaitAndTrigger();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kTopkWarps + warp;
  if (t >= a.T)
    return;
  float *score = smem + static_cast<size_t>(warp) * 2 * a.E;
  float *key = score + a.E;
  __shared__ float groupValue[kTopkWarps][kMaxGroups];
  const float *row = a.logits + static_cast<size_t>(t) * a.E;

  if (a.softmax) {
    float m = -INFINITY;
    for (int e = lane; e < a.E; e += 32)
      m = fmaxf(m, row[e]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float s = 0.f;
    for (int e = lane; e < a.E; e += 32) {
      float x = expf(row[e] - m);
      score[e] = x;
      s += x;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      s += __shfl_xor_sync(0xffffffffu, s, off);
    for (int e = lane; e < a.E; e += 32) {
      float p = score[e] / s;
      score[e] = p;
      key[e] = a.bias ? p + a.bias[e] : p;
    }
  } else {
    for (int e = lane; e < a.E; e += 32) {
      float p = 1.0f / (1.0f + expf(-row[e]));
      score[e] = p;
      key[e] = a.bias ? p + a.bias[e] : p;
    }
  }
  __syncwarp();

  // Group filter: a bit per eligible group.
  unsigned long long groupMask = ~0ull;
  const int groupSize = a.E / a.nGroup;
  if (a.nGroup > 1) {
    for (int g = lane; g < a.nGroup; g += 32) {
      float b1 = -INFINITY, b2 = -INFINITY;
      for (int e = g * groupSize; e < (g + 1) * groupSize; ++e) {
        float v = key[e];
        if (v > b1) {
          b2 = b1;
          b1 = v;
        } else if (v > b2) {
          b2 = v;
        }
      }
      groupValue[warp][g] = (a.softmax || groupSize < 2) ? b1 : b1 + b2;
    }
    __syncwarp();
    if (lane == 0) {
      unsigned long long chosen = 0;
      for (int r = 0; r < a.topkGroup; ++r) {
        float bv = -INFINITY;
        int bi = -1;
        for (int g = 0; g < a.nGroup; ++g) {
          if (chosen >> g & 1ull)
            continue;
          float v = groupValue[warp][g];
          if (bi < 0 || v > bv) {
            bv = v;
            bi = g;
          }
        }
        if (bi >= 0)
          chosen |= 1ull << bi;
      }
      groupMask = chosen;
    }
    groupMask = __shfl_sync(0xffffffffu, groupMask, 0);
  }

  // k rounds of arg-max over the eligible, not yet taken experts.
  int myIds[kMaxK];
  float mySum = 0.f;
  for (int j = 0; j < a.k; ++j) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int e = lane; e < a.E; e += 32) {
      if (a.nGroup > 1 && !(groupMask >> (e / groupSize) & 1ull))
        continue;
      float v = key[e];
      if (v != v) // NaN never wins
        continue;
      if (bi == INT_MAX || better(v, e, bv, bi)) {
        bv = v;
        bi = e;
      }
    }
    warpArgMax(bv, bi);
    if (bi == INT_MAX) {
      myIds[j] = -1;
    } else {
      myIds[j] = bi;
      if (lane == (bi & 31))
        key[bi] = NAN; // taken
    }
    __syncwarp();
  }
  if (lane == 0) {
    for (int j = 0; j < a.k; ++j)
      mySum += myIds[j] >= 0 ? score[myIds[j]] : 0.f;
    if (a.renormalize && !a.softmax && !(mySum >= FLT_MIN)) {
      // Every selected score underflowed (logits below about -87): there
      // sigmoid(l) = e^l to fp32 precision, so the weights are
      // e^(l - max l) over their sum (the CPU backend does the same).
      float m = -INFINITY;
      for (int j = 0; j < a.k; ++j)
        if (myIds[j] >= 0)
          m = fmaxf(m, row[myIds[j]]);
      mySum = 0.f;
      for (int j = 0; j < a.k; ++j)
        if (myIds[j] >= 0)
          mySum += (score[myIds[j]] = expf(row[myIds[j]] - m));
    }
    for (int j = 0; j < a.k; ++j) {
      int e = myIds[j];
      float w = e >= 0 ? score[e] : 0.f;
      if (a.renormalize)
        w = w / mySum;
      w = w * a.scale;
      a.ids[static_cast<size_t>(t) * a.k + j] = e;
      a.weights[static_cast<size_t>(t) * a.k + j] = e >= 0 ? w : 0.f;
    }
  }
}

} // namespace

cudaError_t topk(const float *logits, const float *bias, int32_t *topkIds,
                 float *topkWeights, int64_t T, int64_t E,
                 const TopKParams &p, cudaStream_t stream,
                 const KernelConfigs *configs) {
  if (T < 0 || E <= 0 || E > 1024)
    return detail::invalid("topk: 0 < E <= 1024 required");
  if (p.k <= 0 || p.k > kMaxK || p.k > E)
    return detail::invalid("topk: 0 < k <= min(E, 32) required");
  if (p.nGroup <= 0 || p.nGroup > kMaxGroups || E % p.nGroup != 0)
    return detail::invalid("topk: nGroup must divide E and be <= 64");
  if (p.topkGroup <= 0 || p.topkGroup > p.nGroup)
    return detail::invalid("topk: 0 < topkGroup <= nGroup required");
  if (p.nGroup > 1 && p.topkGroup * (E / p.nGroup) < p.k)
    return detail::invalid("topk: fewer eligible experts than k");
  if (T == 0)
    return cudaSuccess;
  if (!logits || !topkIds || !topkWeights)
    return detail::invalid("topk: null pointer");
  if (T > INT32_MAX)
    return detail::unsupported("topk: T >= 2^31");
  TopkArgs a;
  a.logits = logits;
  a.bias = bias;
  a.ids = topkIds;
  a.weights = topkWeights;
  a.T = static_cast<int>(T);
  a.E = static_cast<int>(E);
  a.k = p.k;
  a.nGroup = p.nGroup;
  a.topkGroup = p.topkGroup;
  a.softmax = p.scoring == Scoring::Softmax;
  a.renormalize = p.renormalize;
  a.scale = p.routedScalingFactor;
  LaunchShape shape;
  shape.op = LaunchOp::TopK;
  shape.rows = T;
  const bool pdl = resolveLaunchConfig(shape, configs).pdl;
  size_t smem = static_cast<size_t>(kTopkWarps) * 2 * E * sizeof(float);
  dim3 grid(static_cast<unsigned>(detail::ceilDiv(T, kTopkWarps)));
  MOEK_CHECK_CUDA(
      detail::launchKernel(pdl, topkKernel, grid, dim3(kTopkWarps * 32), smem,
                           stream, a));
  MOEK_CHECK_LAUNCH("topkKernel");
  return cudaSuccess;
}

} // namespace moek
