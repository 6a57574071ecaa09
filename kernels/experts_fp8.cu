//===- experts_fp8.cu - fp8 block-scaled routed and shared experts --------===//
//
// routed: routing (stable permutation by expert) and quantization of the
// hidden (T rows, once) -> gate-up GEMM (quantized rows gathered through the
// sorted pairs with their scales, block-scaled promotion, SiLU*up and the act
// quantization in the epilogue; act e4m3 [T*K, I] + scales in sorted order)
// -> for each column block of C = min(H, 512) columns: down GEMM (bf16
// partials [T*K, C]) and the bf16 path's combine into output[:, c0:c0+C].
// The hidden is read only by the quantization, before anything writes
// `output`, so in place (output == hidden) is safe.
//
// shared: quantize -> gate-up GEMM (identity rows) -> down GEMM straight
// into output (bf16, rounded once).
//
// Workspaces are carved by include/moe-runtime/WorkspaceLayout.h
// (carveRoutedFp8Workspace / carveSharedFp8Workspace), sized by Workspace.h.
//===----------------------------------------------------------------------===//
#include "fp8.cuh"

#include "moe-runtime/WorkspaceLayout.h"

namespace moek {
namespace {

using detail::Fp8GemmProblem;
using detail::RoutedFp8Plan;

bool alignedTo(const void *p, uintptr_t a) {
  return reinterpret_cast<uintptr_t>(p) % a == 0;
}

bool overlaps(const void *a, int64_t aBytes, const void *b, int64_t bBytes) {
  uintptr_t a0 = reinterpret_cast<uintptr_t>(a),
            b0 = reinterpret_cast<uintptr_t>(b);
  return a0 < b0 + static_cast<uintptr_t>(bBytes) &&
         b0 < a0 + static_cast<uintptr_t>(aBytes);
}

/// The common checks of both ops: block multiples, alignment, the device.
cudaError_t checkFp8Op(const char *op, int64_t H, int64_t I,
                       std::initializer_list<const void *> operands,
                       std::initializer_list<const float *> scales,
                       detail::DeviceInfo &info) {
  if (H % kFp8Block != 0 || I % kFp8Block != 0)
    return detail::invalid(std::string(op) + ": H (" + std::to_string(H) +
                           ") and I (" + std::to_string(I) +
                           ") must be multiples of the fp8 block (" +
                           std::to_string(kFp8Block) + ")");
  for (const void *p : operands)
    if (!alignedTo(p, 16))
      return detail::invalid(std::string(op) +
                             ": hidden, output and weights must be 16-byte "
                             "aligned");
  for (const float *p : scales)
    if (!alignedTo(p, 4))
      return detail::invalid(std::string(op) +
                             ": weight scales must be 4-byte aligned");
  cudaError_t err = detail::currentDeviceInfo(info);
  if (err != cudaSuccess)
    return err;
  const std::string problem = fp8DeviceProblem(detail::deviceProps(info));
  if (!problem.empty())
    return detail::unsupported(std::string(op) + ": " + problem);
  return cudaSuccess;
}

GemmShape fp8Shape(GemmOp op, int64_t rows, int64_t groups, int64_t H,
                   int64_t I, int64_t columns) {
  GemmShape s;
  s.op = op;
  s.rows = rows;
  s.groups = groups;
  s.hidden = H;
  s.inter = I;
  s.columns = columns;
  return s;
}

/// The explicit config of `op` in `configs`, else the heuristic's.
Fp8GemmConfig fp8Config(const GemmShape &shape, const detail::DeviceInfo &info,
                        const KernelConfigs *configs) {
  const Fp8GemmConfig *exact =
      configs
          ? (shape.op == GemmOp::GateUp ? configs->fp8GateUp : configs->fp8Down)
          : nullptr;
  return exact ? *exact : chooseFp8GemmConfig(shape, detail::deviceProps(info));
}

/// Checks a config against the kernel's compiled variants before anything
/// is enqueued (launchGemmFp8Wgmma checks again).
cudaError_t checkConfig(GemmOp op, const Fp8GemmConfig &c) {
  const bool ok = (op == GemmOp::GateUp ? c.tileN == 256
                                        : (c.tileN == 128 || c.tileN == 256)) &&
                  c.stages == fp8Stages(op, c.tileN);
  if (ok)
    return cudaSuccess;
  return detail::unsupported("fp8 GEMM config " + describe(c) + " for " +
                             (op == GemmOp::GateUp ? "gate-up" : "down"));
}

} // namespace

size_t routedExpertsFp8WorkspaceBytes(int64_t T, int64_t H, int64_t E,
                                      int64_t K, int64_t I) {
  return static_cast<size_t>(moert_linear_eval_checked(
      moert_routed_experts_fp8_workspace(H, E, K, I), T));
}

size_t sharedExpertsFp8WorkspaceBytes(int64_t T, int64_t H, int64_t I) {
  return static_cast<size_t>(
      moert_linear_eval_checked(moert_shared_experts_fp8_workspace(H, I), T));
}

namespace detail {

cudaError_t planRoutedExpertsFp8(const void *hidden, const int32_t *topkIds,
                                 const float *topkWeights, const void *w13,
                                 const float *w13Scale, const void *w2,
                                 const float *w2Scale, void *output, int64_t T,
                                 int64_t H, int64_t E, int64_t K, int64_t I,
                                 void *workspace, size_t workspaceBytes,
                                 const KernelConfigs *configs,
                                 RoutedFp8Plan &plan) {
  const int64_t TK = T * K;
  if (TK > INT32_MAX / 2 || E > INT32_MAX / 2 || E * 2 * I > INT32_MAX ||
      E * H > INT32_MAX)
    return unsupported("routedExpertsFp8: sizes beyond 32-bit indices");
  if (output != hidden && overlaps(output, T * H * 2, hidden, T * H * 2))
    return invalid("routedExpertsFp8: output partially overlaps hidden (in "
                   "place needs output == hidden)");
  const size_t need = routedExpertsFp8WorkspaceBytes(T, H, E, K, I);
  if (workspaceBytes < need)
    return invalid("routedExpertsFp8: workspace of " +
                   std::to_string(workspaceBytes) + " bytes, need " +
                   std::to_string(need));
  moert::RoutedFp8WorkspaceLayout ws =
      moert::carveRoutedFp8Workspace(workspace, T, H, E, K, I);
  if (ws.bytes > int64_t(workspaceBytes))
    return invalid("routedExpertsFp8: workspace too small after alignment");
  DeviceInfo info;
  cudaError_t err =
      checkFp8Op("routedExpertsFp8", H, I, {hidden, output, w13, w2},
                 {w13Scale, w2Scale}, info);
  if (err != cudaSuccess)
    return err;

  plan = RoutedFp8Plan();
  plan.hidden = hidden;
  plan.topkIds = topkIds;
  plan.topkWeights = topkWeights;
  plan.output = output;
  plan.T = T;
  plan.H = H;
  plan.E = E;
  plan.K = K;
  plan.I = I;
  plan.C = ws.combineColumns;
  plan.offsets = ws.expertOffsets;
  plan.sorted = ws.sortedPairs;
  plan.inverse = ws.pairPositions;
  plan.hiddenQ = ws.hiddenQ;
  plan.hiddenScales = ws.hiddenScales;
  plan.partials = ws.partials;

  LaunchShape launchShape;
  launchShape.op = LaunchOp::RoutedExperts;
  launchShape.rows = TK;
  launchShape.groups = E;
  plan.launch = resolveLaunchConfig(launchShape, configs);

  Fp8GemmProblem &g1 = plan.gateUp;
  g1.config =
      fp8Config(fp8Shape(GemmOp::GateUp, TK, E, H, I, I), info, configs);
  // Every down launch but the last has C columns: two configs at most, both
  // checked before anything is enqueued.
  const int64_t C = plan.C;
  const int64_t lastCols = H - (H - 1) / C * C;
  plan.downFull =
      fp8Config(fp8Shape(GemmOp::Down, TK, E, H, I, C), info, configs);
  plan.downLast =
      fp8Config(fp8Shape(GemmOp::Down, TK, E, H, I, lastCols), info, configs);
  if ((err = checkConfig(GemmOp::GateUp, g1.config)) != cudaSuccess ||
      (err = checkConfig(GemmOp::Down, plan.downFull)) != cudaSuccess ||
      (err = checkConfig(GemmOp::Down, plan.downLast)) != cudaSuccess)
    return err;

  g1.mode = GemmOp::GateUp;
  g1.offsets = ws.expertOffsets;
  g1.numGroups = static_cast<int>(E);
  g1.rows = TK;
  g1.a = ws.hiddenQ;
  g1.aScale = ws.hiddenScales;
  g1.gather = ws.sortedPairs;
  g1.topk = static_cast<int>(K);
  g1.kDim = H;
  g1.b = static_cast<const uint8_t *>(w13);
  g1.bScale = w13Scale;
  g1.bGroupRows = 2 * I;
  g1.inter = I;
  g1.out = ws.actQ;
  g1.outScale = ws.actScales;
  g1.ldo = I;

  Fp8GemmProblem &g2 = plan.downTemplate;
  g2.mode = GemmOp::Down;
  g2.offsets = ws.expertOffsets;
  g2.numGroups = static_cast<int>(E);
  g2.rows = TK;
  g2.a = ws.actQ;
  g2.aScale = ws.actScales;
  g2.kDim = I;
  g2.b = static_cast<const uint8_t *>(w2);
  g2.bScale = w2Scale;
  g2.bGroupRows = H;
  g2.out = ws.partials;
  g2.ldo = C;
  return cudaSuccess;
}

cudaError_t runRoutedExpertsFp8(const RoutedFp8Plan &plan, unsigned stages,
                                cudaStream_t stream) {
  cudaError_t err;
  if (stages & kFp8StagePrepare) {
    err = launchRouting(plan.topkIds, plan.T * plan.K, plan.E, plan.offsets,
                        plan.sorted, plan.inverse, plan.launch, stream);
    if (err != cudaSuccess)
      return err;
    err = launchQuantizeFp8(plan.hidden, plan.T, plan.H, plan.hiddenQ,
                            plan.hiddenScales, plan.launch.pdl, stream);
    if (err != cudaSuccess)
      return err;
  }
  if (stages & kFp8StageGateUp) {
    err = launchGemmFp8Wgmma(plan.gateUp, stream);
    if (err != cudaSuccess)
      return err;
  }
  const int64_t C = plan.C, H = plan.H;
  for (int64_t c0 = 0; c0 < H; c0 += C) {
    const int64_t ncols = H - c0 < C ? H - c0 : C;
    if (stages & kFp8StageDown) {
      Fp8GemmProblem g2 = plan.downTemplate;
      g2.config = c0 + C < H ? plan.downFull : plan.downLast;
      g2.nExtent = ncols;
      g2.bRowOffset = c0;
      err = launchGemmFp8Wgmma(g2, stream);
      if (err != cudaSuccess)
        return err;
    }
    if (stages & kFp8StageCombine) {
      err = launchCombine(plan.partials, C, plan.inverse, plan.topkWeights,
                          plan.output, plan.T, plan.K, H, c0, ncols,
                          DType::BF16, plan.launch, stream);
      if (err != cudaSuccess)
        return err;
    }
  }
  return cudaSuccess;
}

} // namespace detail

cudaError_t routedExpertsFp8(const void *hidden, const int32_t *topkIds,
                             const float *topkWeights, const void *w13,
                             const float *w13Scale, const void *w2,
                             const float *w2Scale, void *output, int64_t T,
                             int64_t H, int64_t E, int64_t K, int64_t I,
                             void *workspace, size_t workspaceBytes,
                             cudaStream_t stream,
                             const KernelConfigs *configs) {
  if (T < 0 || H <= 0 || E <= 0 || K <= 0 || I <= 0)
    return detail::invalid(
        "routedExpertsFp8: T >= 0 and H, E, K, I > 0 required");
  if (H % kFp8Block != 0 || I % kFp8Block != 0)
    return detail::invalid("routedExpertsFp8: H (" + std::to_string(H) +
                           ") and I (" + std::to_string(I) +
                           ") must be multiples of the fp8 block (" +
                           std::to_string(kFp8Block) + ")");
  if (T == 0)
    return cudaSuccess;
  if (!hidden || !topkIds || !topkWeights || !w13 || !w13Scale || !w2 ||
      !w2Scale || !output || !workspace)
    return detail::invalid("routedExpertsFp8: null pointer");
  detail::RoutedFp8Plan plan;
  cudaError_t err = detail::planRoutedExpertsFp8(
      hidden, topkIds, topkWeights, w13, w13Scale, w2, w2Scale, output, T, H, E,
      K, I, workspace, workspaceBytes, configs, plan);
  if (err != cudaSuccess)
    return err;
  return detail::runRoutedExpertsFp8(plan, detail::kFp8StageAll, stream);
}

cudaError_t sharedExpertsFp8(const void *hidden, const void *w13,
                             const float *w13Scale, const void *w2,
                             const float *w2Scale, void *output, int64_t T,
                             int64_t H, int64_t I, void *workspace,
                             size_t workspaceBytes, cudaStream_t stream,
                             const KernelConfigs *configs) {
  if (T < 0 || H <= 0 || I <= 0)
    return detail::invalid("sharedExpertsFp8: T >= 0 and H, I > 0 required");
  if (H % kFp8Block != 0 || I % kFp8Block != 0)
    return detail::invalid("sharedExpertsFp8: H (" + std::to_string(H) +
                           ") and I (" + std::to_string(I) +
                           ") must be multiples of the fp8 block (" +
                           std::to_string(kFp8Block) + ")");
  if (T == 0)
    return cudaSuccess;
  if (!hidden || !w13 || !w13Scale || !w2 || !w2Scale || !output || !workspace)
    return detail::invalid("sharedExpertsFp8: null pointer");
  if (T > INT32_MAX / 2 || 2 * I > INT32_MAX || H > INT32_MAX)
    return detail::unsupported("sharedExpertsFp8: sizes beyond 32-bit indices");
  if (output != hidden && overlaps(output, T * H * 2, hidden, T * H * 2))
    return detail::invalid("sharedExpertsFp8: output partially overlaps "
                           "hidden (in place needs output == hidden)");
  const size_t need = sharedExpertsFp8WorkspaceBytes(T, H, I);
  if (workspaceBytes < need)
    return detail::invalid("sharedExpertsFp8: workspace of " +
                           std::to_string(workspaceBytes) + " bytes, need " +
                           std::to_string(need));
  moert::SharedFp8WorkspaceLayout ws =
      moert::carveSharedFp8Workspace(workspace, T, H, I);
  if (ws.bytes > int64_t(workspaceBytes))
    return detail::invalid("sharedExpertsFp8: workspace too small after "
                           "alignment");
  detail::DeviceInfo info;
  cudaError_t err =
      checkFp8Op("sharedExpertsFp8", H, I, {hidden, output, w13, w2},
                 {w13Scale, w2Scale}, info);
  if (err != cudaSuccess)
    return err;

  Fp8GemmProblem g1, g2;
  g1.config = fp8Config(fp8Shape(GemmOp::GateUp, T, 1, H, I, I), info, configs);
  g2.config = fp8Config(fp8Shape(GemmOp::Down, T, 1, H, I, H), info, configs);
  if ((err = checkConfig(GemmOp::GateUp, g1.config)) != cudaSuccess ||
      (err = checkConfig(GemmOp::Down, g2.config)) != cudaSuccess)
    return err;
  LaunchShape launchShape;
  launchShape.op = LaunchOp::SharedExperts;
  launchShape.rows = T;
  const LaunchConfig launch = resolveLaunchConfig(launchShape, configs);

  err = detail::launchQuantizeFp8(hidden, T, H, ws.hiddenQ, ws.hiddenScales,
                                  launch.pdl, stream);
  if (err != cudaSuccess)
    return err;

  g1.mode = GemmOp::GateUp;
  g1.rows = T;
  g1.a = ws.hiddenQ;
  g1.aScale = ws.hiddenScales;
  g1.kDim = H;
  g1.b = static_cast<const uint8_t *>(w13);
  g1.bScale = w13Scale;
  g1.bGroupRows = 2 * I;
  g1.inter = I;
  g1.out = ws.actQ;
  g1.outScale = ws.actScales;
  g1.ldo = I;
  err = detail::launchGemmFp8Wgmma(g1, stream);
  if (err != cudaSuccess)
    return err;

  g2.mode = GemmOp::Down;
  g2.rows = T;
  g2.a = ws.actQ;
  g2.aScale = ws.actScales;
  g2.kDim = I;
  g2.b = static_cast<const uint8_t *>(w2);
  g2.bScale = w2Scale;
  g2.bGroupRows = H;
  g2.nExtent = H;
  g2.out = output;
  g2.ldo = H;
  return detail::launchGemmFp8Wgmma(g2, stream);
}

} // namespace moek
