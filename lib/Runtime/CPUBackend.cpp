//===- CPUBackend.cpp - The CPU reference backend ---------------*- C++ -*-===//
//
// The numerics oracle for the GPU: single-threaded and deterministic, fp32
// accumulation in fixed orders (Numerics.h's dotProduct), rounding to the data
// type exactly where docs/runtime.md says. The routed experts run the same
// algorithm as the GPU kernels (group the (token, slot) pairs by expert,
// gather, per-expert GEMMs, combine one column block at a time in slot order),
// on the same workspace layout, with row tiles so it is reasonably fast.
// f8e4m3 expert weights (the fp8 numerics contract) run in CPUFp8.cpp.
//
//===----------------------------------------------------------------------===//

#include "Backend.h"
#include "CPUFp8.h"
#include "Numerics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <new>
#include <vector>

using namespace moert;

namespace {

/// Rows of a GEMM operand converted to float and processed together, so each
/// weight row is converted once per tile instead of once per row.
constexpr int64_t kRowTile = 32;
constexpr float kFloatMinNormal = 1.17549435e-38f; // FLT_MIN

float silu(float x) { return x / (1.0f + std::exp(-x)); }

class CPUBackend final : public Backend {
public:
  moert_backend kind() const override { return MOERT_BACKEND_CPU; }
  std::string describe() const override { return "cpu"; }

  moert_status allocate(int64_t bytes, void **out,
                        std::string &error) override {
    void *ptr = ::operator new(size_t(bytes),
                               std::align_val_t(MOERT_WORKSPACE_ALIGNMENT),
                               std::nothrow);
    if (!ptr) {
      error = "cpu: out of host memory allocating " + std::to_string(bytes) +
              " bytes";
      return MOERT_ERROR_OUT_OF_MEMORY;
    }
    *out = ptr;
    return MOERT_SUCCESS;
  }

  void deallocate(void *ptr, int64_t) override {
    ::operator delete(ptr, std::align_val_t(MOERT_WORKSPACE_ALIGNMENT));
  }

  moert_status synchronize(std::string &) override { return MOERT_SUCCESS; }

  moert_status gate(const GateArgs &a, std::string &error) override;
  moert_status topk(const TopKArgs &a, std::string &error) override;
  moert_status routedExperts(const RoutedExpertsArgs &a,
                             std::string &error) override;
  moert_status sharedExperts(const SharedExpertsArgs &a,
                             std::string &error) override;
  moert_status add(const AddArgs &a, std::string &error) override;
};

} // namespace

//===----------------------------------------------------------------------===//
// gate
//===----------------------------------------------------------------------===//

moert_status CPUBackend::gate(const GateArgs &a, std::string &) {
  const int64_t T = a.T, H = a.H, E = a.E;
  std::vector<float> rows(size_t(kRowTile * H)),
      weightRow(static_cast<size_t>(H));
  for (int64_t t0 = 0; t0 < T; t0 += kRowTile) {
    int64_t n = std::min(kRowTile, T - t0);
    for (int64_t r = 0; r < n; ++r)
      loadRow(a.hidden, a.hiddenDtype, (t0 + r) * H, H, rows.data() + r * H);
    for (int64_t e = 0; e < E; ++e) {
      const float *w =
          rowAsFloat(a.gateWeight, a.weightDtype, e * H, H, weightRow.data());
      for (int64_t r = 0; r < n; ++r)
        a.logits[(t0 + r) * E + e] = dotProduct(rows.data() + r * H, w, H);
    }
  }
  return MOERT_SUCCESS;
}

//===----------------------------------------------------------------------===//
// topk
//===----------------------------------------------------------------------===//

namespace {
/// The best of `candidates` by `score` that `allowed` admits: the highest
/// score, ties to the lower index; -1 if none.
template <typename Allowed>
int64_t argBest(const float *score, int64_t n, Allowed allowed) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (allowed(i) && (best < 0 || score[i] > score[best]))
      best = i;
  return best;
}
} // namespace

moert_status CPUBackend::topk(const TopKArgs &a, std::string &) {
  const int64_t E = a.E, K = a.K;
  const int64_t groupSize = E / a.nGroup;
  std::vector<float> scores(static_cast<size_t>(E)),
      selection(static_cast<size_t>(E));
  std::vector<float> groupScores(static_cast<size_t>(a.nGroup));
  std::vector<char> allowed(static_cast<size_t>(E)),
      taken(static_cast<size_t>(E)), groupTaken(static_cast<size_t>(a.nGroup));

  for (int64_t t = 0; t < a.T; ++t) {
    const float *logits = a.logits + t * E;
    if (a.scoring == MOERT_SCORING_SOFTMAX) {
      float maxLogit = logits[0];
      for (int64_t e = 1; e < E; ++e)
        maxLogit = std::max(maxLogit, logits[e]);
      float sum = 0.0f;
      for (int64_t e = 0; e < E; ++e) {
        scores[size_t(e)] = std::exp(logits[e] - maxLogit);
        sum += scores[size_t(e)];
      }
      for (int64_t e = 0; e < E; ++e)
        scores[size_t(e)] /= sum;
    } else {
      for (int64_t e = 0; e < E; ++e)
        scores[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[e]));
    }
    for (int64_t e = 0; e < E; ++e)
      selection[size_t(e)] =
          a.bias ? scores[size_t(e)] + a.bias[e] : scores[size_t(e)];

    // Group-limited selection: only experts of the best topk_group groups.
    std::fill(allowed.begin(), allowed.end(), char(1));
    if (a.nGroup > 1) {
      for (int64_t g = 0; g < a.nGroup; ++g) {
        const float *s = &selection[size_t(g * groupSize)];
        int64_t first = argBest(s, groupSize, [](int64_t) { return true; });
        float groupScore = s[first];
        if (a.scoring == MOERT_SCORING_SIGMOID && groupSize > 1) {
          int64_t second =
              argBest(s, groupSize, [&](int64_t i) { return i != first; });
          groupScore = s[first] + s[second];
        }
        groupScores[size_t(g)] = groupScore;
      }
      std::fill(groupTaken.begin(), groupTaken.end(), char(0));
      for (int64_t i = 0; i < a.topkGroup; ++i) {
        int64_t g = argBest(groupScores.data(), a.nGroup,
                            [&](int64_t g) { return !groupTaken[size_t(g)]; });
        groupTaken[size_t(g)] = 1;
      }
      for (int64_t e = 0; e < E; ++e)
        allowed[size_t(e)] = groupTaken[size_t(e / groupSize)];
    }

    int32_t *ids = a.topkIds + t * K;
    float *weights = a.topkWeights + t * K;
    std::fill(taken.begin(), taken.end(), char(0));
    for (int64_t j = 0; j < K; ++j) {
      int64_t e = argBest(selection.data(), E, [&](int64_t e) {
        return allowed[size_t(e)] && !taken[size_t(e)];
      });
      taken[size_t(e)] = 1;
      ids[j] = int32_t(e);
      weights[j] = scores[size_t(e)];
    }
    if (a.renormalize) {
      float sum = 0.0f;
      for (int64_t j = 0; j < K; ++j)
        sum += weights[j];
      if (a.scoring == MOERT_SCORING_SIGMOID && !(sum >= kFloatMinNormal)) {
        // Every selected score underflowed (logits below about -87): there
        // sigmoid(l) = e^l to fp32 precision, so the weights are
        // e^(l - max l) / sum of those (docs/runtime.md).
        float maxLogit = logits[ids[0]];
        for (int64_t j = 1; j < K; ++j)
          maxLogit = std::max(maxLogit, logits[ids[j]]);
        sum = 0.0f;
        for (int64_t j = 0; j < K; ++j)
          sum += (weights[j] = std::exp(logits[ids[j]] - maxLogit));
      }
      for (int64_t j = 0; j < K; ++j)
        weights[j] /= sum;
    }
    for (int64_t j = 0; j < K; ++j)
      weights[j] *= a.routedScalingFactor;
  }
  return MOERT_SUCCESS;
}

//===----------------------------------------------------------------------===//
// The expert MLP, on gathered rows
//===----------------------------------------------------------------------===//

namespace {

/// act[r, i] = round(SiLU(x_r . w13[i]) * (x_r . w13[I + i])) for the `rows`
/// rows x_r = hidden[rowToken(r)]: `w13` is 2I x H (one expert), `act` is
/// rows x I of `dtype`.
template <typename RowToken>
void gateUpActivation(const void *hidden, const void *w13, void *act,
                      moert_dtype dtype, int64_t rows, int64_t H, int64_t I,
                      RowToken rowToken, std::vector<float> &tile,
                      std::vector<float> &gateRow, std::vector<float> &upRow) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
    int64_t n = std::min(kRowTile, rows - r0);
    for (int64_t r = 0; r < n; ++r)
      loadRow(hidden, dtype, rowToken(r0 + r) * H, H, tile.data() + r * H);
    for (int64_t i = 0; i < I; ++i) {
      const float *g = rowAsFloat(w13, dtype, i * H, H, gateRow.data());
      const float *u = rowAsFloat(w13, dtype, (I + i) * H, H, upRow.data());
      for (int64_t r = 0; r < n; ++r) {
        const float *x = tile.data() + r * H;
        float gate = dotProduct(x, g, H);
        float up = dotProduct(x, u, H);
        storeElement(act, dtype, (r0 + r) * I + i, silu(gate) * up);
      }
    }
  }
}

/// out[r, c] = round(act_r . w2[c0 + c]) for c < width: `act` is rows x I,
/// `w2` is H x I (one expert), `out` has rows of `outStride` elements.
void downProjection(const void *act, const void *w2, void *out,
                    moert_dtype dtype, int64_t rows, int64_t I, int64_t c0,
                    int64_t width, int64_t outStride, std::vector<float> &tile,
                    std::vector<float> &downRow) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
    int64_t n = std::min(kRowTile, rows - r0);
    for (int64_t r = 0; r < n; ++r)
      loadRow(act, dtype, (r0 + r) * I, I, tile.data() + r * I);
    for (int64_t c = 0; c < width; ++c) {
      const float *w = rowAsFloat(w2, dtype, (c0 + c) * I, I, downRow.data());
      for (int64_t r = 0; r < n; ++r)
        storeElement(out, dtype, (r0 + r) * outStride + c,
                     dotProduct(tile.data() + r * I, w, I));
    }
  }
}

/// The address of element `index` of a buffer of `dtype`.
const void *elementAddress(const void *base, moert_dtype dtype, int64_t index) {
  return static_cast<const char *>(base) + index * dtypeBytes(dtype);
}
void *elementAddress(void *base, moert_dtype dtype, int64_t index) {
  return static_cast<char *>(base) + index * dtypeBytes(dtype);
}

} // namespace

//===----------------------------------------------------------------------===//
// routed_experts
//===----------------------------------------------------------------------===//

moert_status CPUBackend::routedExperts(const RoutedExpertsArgs &a,
                                       std::string &error) {
  const int64_t T = a.T, H = a.H, E = a.E, K = a.K, I = a.I;
  const int64_t pairs = T * K;

  // Check every id before anything is written.
  for (int64_t p = 0; p < pairs; ++p) {
    int32_t id = a.topkIds[p];
    if (id < 0 || id >= E) {
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "moert_routed_experts: topk_ids[%lld, %lld] = %d is out "
                    "of range [0, %lld)",
                    (long long)(p / K), (long long)(p % K), int(id),
                    (long long)E);
      error = buf;
      return MOERT_ERROR_INVALID_ARGUMENT;
    }
  }
  if (a.weights.fp8()) // f8e4m3 weights with block scales (CPUFp8.cpp)
    return cpuRoutedExpertsFp8(a, error);

  RoutedWorkspaceLayout ws =
      carveRoutedWorkspace(a.workspace, T, H, E, K, I, dtypeBytes(a.dtype));
  int32_t *offsets = ws.expertOffsets;

  // 1. Routing metadata: a stable counting sort of the pairs by expert.
  sortPairsByExpert(a.topkIds, pairs, E, offsets, ws.sortedPairs,
                    ws.pairPositions);

  std::vector<float> tile(size_t(kRowTile * std::max(H, I)));
  std::vector<float> rowA(size_t(std::max(H, I))), rowB(static_cast<size_t>(H));

  // 2. Gate/up GEMM per expert on its gathered rows. All reads of `hidden`
  //    happen here, before any write of `output`: in place is safe.
  for (int64_t e = 0; e < E; ++e) {
    int64_t begin = offsets[e], rows = offsets[e + 1] - begin;
    if (rows == 0)
      continue;
    gateUpActivation(
        a.hidden, elementAddress(a.weights.w13, a.dtype, e * 2 * I * H),
        elementAddress(ws.activations, a.dtype, begin * I), a.dtype, rows, H, I,
        [&](int64_t r) { return ws.sortedPairs[begin + r] / K; }, tile, rowA,
        rowB);
  }

  // 3. Per column block: the down GEMM per expert into the partials, then
  //    the combine in slot order.
  const int64_t C = ws.combineColumns;
  for (int64_t c0 = 0; c0 < H; c0 += C) {
    int64_t width = std::min(C, H - c0);
    for (int64_t e = 0; e < E; ++e) {
      int64_t begin = offsets[e], rows = offsets[e + 1] - begin;
      if (rows == 0)
        continue;
      downProjection(elementAddress(ws.activations, a.dtype, begin * I),
                     elementAddress(a.weights.w2, a.dtype, e * H * I),
                     elementAddress(ws.partials, a.dtype, begin * C), a.dtype,
                     rows, I, c0, width, C, tile, rowA);
    }
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t c = 0; c < width; ++c) {
        float sum = 0.0f;
        for (int64_t j = 0; j < K; ++j) {
          int64_t position = ws.pairPositions[t * K + j];
          sum += a.topkWeights[t * K + j] *
                 loadElement(ws.partials, a.dtype, position * C + c);
        }
        storeElement(a.output, a.dtype, t * H + c0 + c, sum);
      }
    }
  }
  return MOERT_SUCCESS;
}

//===----------------------------------------------------------------------===//
// shared_experts
//===----------------------------------------------------------------------===//

moert_status CPUBackend::sharedExperts(const SharedExpertsArgs &a,
                                       std::string &error) {
  if (a.weights.fp8()) // f8e4m3 weights with block scales (CPUFp8.cpp)
    return cpuSharedExpertsFp8(a, error);
  const int64_t T = a.T, H = a.H, I = a.I;
  void *act = carveSharedWorkspace(a.workspace);
  std::vector<float> tile(size_t(kRowTile * std::max(H, I)));
  std::vector<float> rowA(size_t(std::max(H, I))), rowB(static_cast<size_t>(H));
  // All of `hidden` is read before `output` is written.
  gateUpActivation(
      a.hidden, a.weights.w13, act, a.dtype, T, H, I, [](int64_t r) { return r; }, tile,
      rowA, rowB);
  downProjection(act, a.weights.w2, a.output, a.dtype, T, I, 0, H, H, tile, rowA);
  return MOERT_SUCCESS;
}

//===----------------------------------------------------------------------===//
// add
//===----------------------------------------------------------------------===//

moert_status CPUBackend::add(const AddArgs &a, std::string &) {
  const int64_t n = a.T * a.H;
  for (int64_t i = 0; i < n; ++i) {
    float scaled = a.scale * loadElement(a.lhs, a.dtype, i);
    storeElement(a.output, a.dtype, i, scaled + loadElement(a.rhs, a.dtype, i));
  }
  return MOERT_SUCCESS;
}

std::unique_ptr<Backend> moert::createCPUBackend() {
  return std::unique_ptr<Backend>(new (std::nothrow) CPUBackend());
}
