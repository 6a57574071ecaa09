//===- experts.cu - moe.routed_experts and moe.shared_experts launchers ----===//
//
// routed: routing (stable permutation by expert) -> GEMM1 (gathered rows,
// gate/up, SiLU*up epilogue; act [T*K, I] in sorted order) -> for each
// column block of C = min(H, 512) columns: GEMM2 (partials [T*K, C]) and the
// combine into output[:, c0:c0+C]. GEMM1 reads every row of `hidden` before
// the first combine writes `output`, so in-place (output == hidden) is safe.
//
// Workspace carving is include/moe-runtime/WorkspaceLayout.h's, as in every
// backend (carveRoutedWorkspace): expert offsets (E+1), sorted
// pairs (T*K), pair positions = inverse permutation (T*K), activations
// (T*K*I), partials (T*K*C), each at a 256-byte-aligned address. The
// shared experts' activation (T*I) may overwrite nothing else, and since GEMM1
// reads all of `hidden` before GEMM2 writes `output`, output == hidden works
// there too.
//===----------------------------------------------------------------------===//
#include "routing.cuh"

#include "moe-runtime/WorkspaceLayout.h"

namespace moek {
namespace {

using detail::GemmMode;
using detail::GemmProblem;

bool aligned16(const void *p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

/// The shape of the op's GEMMs as the heuristic sees it.
GemmShape opShape(int64_t rows, int64_t groups, int64_t H, int64_t I,
                  DType dtype, std::initializer_list<const void *> ptrs) {
  GemmShape s;
  s.rows = rows;
  s.groups = groups;
  s.hidden = H;
  s.inter = I;
  s.dtype = dtype;
  for (const void *p : ptrs)
    s.aligned16 = s.aligned16 && aligned16(p);
  return s;
}

/// The config of one GEMM launch; unsupported when it names an
/// implementation that cannot run the shape on this device.
cudaError_t gemmConfig(const GemmShape &shape, const detail::DeviceInfo &info,
                       const KernelConfigs *configs, GemmConfig &config) {
  const DeviceProps device = detail::deviceProps(info);
  config = resolveGemmConfig(shape, device, configs);
  if (gemmImplSupported(config.impl, shape, device))
    return cudaSuccess;
  return detail::unsupported(
      std::string(config.impl == GemmImpl::Wgmma ? "wgmma" : "mma.sync") +
      " GEMM for this dtype/shape/device");
}

cudaError_t runGemm(const GemmProblem &p, DType dtype, cudaStream_t stream) {
  switch (p.config.impl) {
  case GemmImpl::Wgmma: return detail::launchGemmWgmma(p, dtype, stream);
  case GemmImpl::MmaSync: return detail::launchGemmMma(p, dtype, stream);
  default: return detail::launchGemmSimt(p, dtype, stream);
  }
}

bool overlaps(const void *a, int64_t aBytes, const void *b, int64_t bBytes) {
  uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  return a0 < b0 + static_cast<uintptr_t>(bBytes) &&
         b0 < a0 + static_cast<uintptr_t>(aBytes);
}

bool validDType(DType d) {
  return d == DType::BF16 || d == DType::F16 || d == DType::F32;
}

} // namespace

size_t routedExpertsWorkspaceBytes(int64_t T, int64_t H, int64_t E, int64_t K,
                                   int64_t I, DType dtype) {
  return static_cast<size_t>(moert_linear_eval(
      moert_routed_experts_workspace(H, E, K, I, dtypeBytes(dtype)), T));
}

size_t sharedExpertsWorkspaceBytes(int64_t T, int64_t I, DType dtype) {
  return static_cast<size_t>(
      moert_linear_eval(moert_shared_experts_workspace(I, dtypeBytes(dtype)), T));
}

cudaError_t routedExperts(const void *hidden, const int32_t *topkIds,
                          const float *topkWeights, const void *w13,
                          const void *w2, void *output, int64_t T, int64_t H,
                          int64_t E, int64_t K, int64_t I, DType dtype,
                          void *workspace, size_t workspaceBytes,
                          cudaStream_t stream, const KernelConfigs *configs) {
  if (!validDType(dtype))
    return detail::invalid("routedExperts: dtype");
  if (T < 0 || H <= 0 || E <= 0 || K <= 0 || I <= 0)
    return detail::invalid("routedExperts: T >= 0 and H, E, K, I > 0 required");
  if (T == 0)
    return cudaSuccess;
  if (!hidden || !topkIds || !topkWeights || !w13 || !w2 || !output ||
      !workspace)
    return detail::invalid("routedExperts: null pointer");
  const int64_t B = dtypeBytes(dtype);
  const int64_t TK = T * K;
  if (TK > INT32_MAX / 2 || E > INT32_MAX / 2 || E * 2 * I > INT32_MAX ||
      E * H > INT32_MAX)
    return detail::unsupported("routedExperts: sizes beyond 32-bit indices");
  if (output != hidden && overlaps(output, T * H * B, hidden, T * H * B))
    return detail::invalid(
        "routedExperts: output partially overlaps hidden (in place needs "
        "output == hidden)");
  const size_t need = routedExpertsWorkspaceBytes(T, H, E, K, I, dtype);
  if (workspaceBytes < need)
    return detail::invalid("routedExperts: workspace of " +
                           std::to_string(workspaceBytes) + " bytes, need " +
                           std::to_string(need));
  moert::RoutedWorkspaceLayout layout =
      moert::carveRoutedWorkspace(workspace, T, H, E, K, I, B);
  if (layout.bytes > int64_t(workspaceBytes))
    return detail::invalid("routedExperts: workspace too small after alignment");
  const int64_t C = layout.combineColumns;
  int32_t *offsets = layout.expertOffsets;
  int32_t *sorted = layout.sortedPairs;
  int32_t *inverse = layout.pairPositions;
  void *act = layout.activations;
  void *partial = layout.partials;

  detail::DeviceInfo info;
  cudaError_t err = detail::currentDeviceInfo(info);
  if (err != cudaSuccess)
    return err;
  GemmShape shape =
      opShape(TK, E, H, I, dtype, {hidden, w13, w2, output, act, partial});
  shape.op = GemmOp::GateUp;
  shape.columns = I;
  GemmProblem g1;
  err = gemmConfig(shape, info, configs, g1.config);
  if (err != cudaSuccess)
    return err;
  // Every down launch but the last has C columns: two configs at most, both
  // checked before anything is enqueued.
  const int64_t lastCols = H - (H - 1) / C * C;
  GemmConfig downFull, downLast;
  shape.op = GemmOp::Down;
  shape.columns = C;
  err = gemmConfig(shape, info, configs, downFull);
  if (err != cudaSuccess)
    return err;
  shape.columns = lastCols;
  err = gemmConfig(shape, info, configs, downLast);
  if (err != cudaSuccess)
    return err;
  LaunchShape launchShape;
  launchShape.op = LaunchOp::RoutedExperts;
  launchShape.rows = TK;
  launchShape.groups = E;
  const LaunchConfig launch = resolveLaunchConfig(launchShape, configs);

  err = detail::launchRouting(topkIds, TK, E, offsets, sorted, inverse, launch,
                              stream);
  if (err != cudaSuccess)
    return err;

  g1.mode = GemmMode::GateUp;
  g1.offsets = offsets;
  g1.numGroups = static_cast<int>(E);
  g1.rows = TK;
  g1.a = hidden;
  g1.gather = sorted;
  g1.topk = static_cast<int>(K);
  g1.kDim = H;
  g1.b = w13;
  g1.bGroupRows = 2 * I;
  g1.inter = I;
  g1.out = act;
  g1.ldo = I;
  err = runGemm(g1, dtype, stream);
  if (err != cudaSuccess)
    return err;

  for (int64_t c0 = 0; c0 < H; c0 += C) {
    const int64_t ncols = H - c0 < C ? H - c0 : C;
    GemmProblem g2;
    g2.config = c0 + C < H ? downFull : downLast;
    g2.mode = GemmMode::Down;
    g2.offsets = offsets;
    g2.numGroups = static_cast<int>(E);
    g2.rows = TK;
    g2.a = act;
    g2.kDim = I;
    g2.b = w2;
    g2.bGroupRows = H;
    g2.nExtent = ncols;
    g2.bRowOffset = c0;
    g2.out = partial;
    g2.ldo = C;
    err = runGemm(g2, dtype, stream);
    if (err != cudaSuccess)
      return err;
    err = detail::launchCombine(partial, C, inverse, topkWeights, output, T, K,
                                H, c0, ncols, dtype, launch, stream);
    if (err != cudaSuccess)
      return err;
  }
  return cudaSuccess;
}

cudaError_t sharedExperts(const void *hidden, const void *w13, const void *w2,
                          void *output, int64_t T, int64_t H, int64_t I,
                          DType dtype, void *workspace, size_t workspaceBytes,
                          cudaStream_t stream, const KernelConfigs *configs) {
  if (!validDType(dtype))
    return detail::invalid("sharedExperts: dtype");
  if (T < 0 || H <= 0 || I <= 0)
    return detail::invalid("sharedExperts: T >= 0 and H, I > 0 required");
  if (T == 0)
    return cudaSuccess;
  if (!hidden || !w13 || !w2 || !output || !workspace)
    return detail::invalid("sharedExperts: null pointer");
  const int64_t B = dtypeBytes(dtype);
  if (T > INT32_MAX / 2 || 2 * I > INT32_MAX || H > INT32_MAX)
    return detail::unsupported("sharedExperts: sizes beyond 32-bit indices");
  if (output != hidden && overlaps(output, T * H * B, hidden, T * H * B))
    return detail::invalid("sharedExperts: output partially overlaps hidden");
  const size_t need = sharedExpertsWorkspaceBytes(T, I, dtype);
  if (workspaceBytes < need)
    return detail::invalid("sharedExperts: workspace of " +
                           std::to_string(workspaceBytes) + " bytes, need " +
                           std::to_string(need));
  void *act = moert::carveSharedWorkspace(workspace);
  if (static_cast<char *>(act) + T * I * B >
      static_cast<char *>(workspace) + workspaceBytes)
    return detail::invalid("sharedExperts: workspace too small after alignment");

  detail::DeviceInfo info;
  cudaError_t err = detail::currentDeviceInfo(info);
  if (err != cudaSuccess)
    return err;
  GemmShape shape = opShape(T, 1, H, I, dtype, {hidden, w13, w2, output, act});
  shape.op = GemmOp::GateUp;
  shape.columns = I;
  GemmProblem g1;
  err = gemmConfig(shape, info, configs, g1.config);
  if (err != cudaSuccess)
    return err;
  shape.op = GemmOp::Down;
  shape.columns = H;
  GemmProblem g2;
  err = gemmConfig(shape, info, configs, g2.config);
  if (err != cudaSuccess)
    return err;

  g1.mode = GemmMode::GateUp;
  g1.numGroups = 1;
  g1.rows = T;
  g1.a = hidden;
  g1.kDim = H;
  g1.b = w13;
  g1.bGroupRows = 2 * I;
  g1.inter = I;
  g1.out = act;
  g1.ldo = I;
  err = runGemm(g1, dtype, stream);
  if (err != cudaSuccess)
    return err;

  g2.mode = GemmMode::Down;
  g2.numGroups = 1;
  g2.rows = T;
  g2.a = act;
  g2.kDim = I;
  g2.b = w2;
  g2.bGroupRows = H;
  g2.nExtent = H;
  g2.out = output;
  g2.ldo = H;
  return runGemm(g2, dtype, stream);
}

} // namespace moek
