//===- capi.cpp - C entry points of the kernels for ctypes (benchmarks) ---===//
//
// Thin extern "C" wrappers over moe_kernels.h so that bench/moe_bench.py can
// call the launchers on PyTorch tensors (data_ptr) and streams. Each returns
// the cudaError_t as an int; moek_last_error() gives the text.
//
// Launch configurations come from tuning files (docs/kernels.md): a table
// loaded with moek_tuning_load is passed per call to the expert ops (the
// benchmark's interleaved variants), or moek_load_tuning_file installs one
// process-wide.
//===----------------------------------------------------------------------===//
#include "moe_kernels.h"

#include <string>

namespace {
thread_local std::string tuningError;

/// Per-call configs naming `tuning` (a moek_tuning_load handle), or none.
const moek::KernelConfigs *withTable(const void *tuning,
                                     moek::KernelConfigs &configs) {
  if (!tuning)
    return nullptr;
  configs.tuning = static_cast<const moek::TuningTable *>(tuning);
  return &configs;
}
} // namespace

extern "C" {

int moek_gate(const void *hidden, const void *w, float *logits, int64_t T,
              int64_t H, int64_t E, int dtype, void *stream) {
  return moek::gate(hidden, w, logits, T, H, E, static_cast<moek::DType>(dtype),
                    static_cast<cudaStream_t>(stream));
}

int moek_topk(const float *logits, const float *bias, int32_t *ids,
              float *weights, int64_t T, int64_t E, int k, int scoring,
              int nGroup, int topkGroup, int renormalize, float scale,
              void *stream) {
  moek::TopKParams p;
  p.k = k;
  p.scoring = static_cast<moek::Scoring>(scoring);
  p.nGroup = nGroup;
  p.topkGroup = topkGroup;
  p.renormalize = renormalize != 0;
  p.routedScalingFactor = scale;
  return moek::topk(logits, bias, ids, weights, T, E, p,
                    static_cast<cudaStream_t>(stream));
}

int64_t moek_routed_workspace_bytes(int64_t T, int64_t H, int64_t E, int64_t K,
                                    int64_t I, int dtype) {
  return static_cast<int64_t>(moek::routedExpertsWorkspaceBytes(
      T, H, E, K, I, static_cast<moek::DType>(dtype)));
}

int64_t moek_shared_workspace_bytes(int64_t T, int64_t I, int dtype) {
  return static_cast<int64_t>(
      moek::sharedExpertsWorkspaceBytes(T, I, static_cast<moek::DType>(dtype)));
}

int moek_routed_experts(const void *hidden, const int32_t *ids,
                        const float *weights, const void *w13, const void *w2,
                        void *out, int64_t T, int64_t H, int64_t E, int64_t K,
                        int64_t I, int dtype, void *ws, int64_t wsBytes,
                        void *stream, const void *tuning) {
  moek::KernelConfigs configs;
  return moek::routedExperts(hidden, ids, weights, w13, w2, out, T, H, E, K, I,
                             static_cast<moek::DType>(dtype), ws,
                             static_cast<size_t>(wsBytes),
                             static_cast<cudaStream_t>(stream),
                             withTable(tuning, configs));
}

int moek_shared_experts(const void *hidden, const void *w13, const void *w2,
                        void *out, int64_t T, int64_t H, int64_t I, int dtype,
                        void *ws, int64_t wsBytes, void *stream,
                        const void *tuning) {
  moek::KernelConfigs configs;
  return moek::sharedExperts(hidden, w13, w2, out, T, H, I,
                             static_cast<moek::DType>(dtype), ws,
                             static_cast<size_t>(wsBytes),
                             static_cast<cudaStream_t>(stream),
                             withTable(tuning, configs));
}

int64_t moek_routed_experts_fp8_workspace_bytes(int64_t T, int64_t H,
                                                int64_t E, int64_t K,
                                                int64_t I) {
  return static_cast<int64_t>(
      moek::routedExpertsFp8WorkspaceBytes(T, H, E, K, I));
}

int64_t moek_shared_experts_fp8_workspace_bytes(int64_t T, int64_t H,
                                                int64_t I) {
  return static_cast<int64_t>(moek::sharedExpertsFp8WorkspaceBytes(T, H, I));
}

/// The fp8 expert ops: hidden/out bf16, weights e4m3 (uint8 storage) with
/// fp32 block scales (moe_kernels.h's fp8 contract). Tuning tables do not
/// apply to the fp8 GEMMs, so there is no tuning argument.
int moek_routed_experts_fp8(const void *hidden, const int32_t *ids,
                            const float *weights, const void *w13,
                            const float *w13Scale, const void *w2,
                            const float *w2Scale, void *out, int64_t T,
                            int64_t H, int64_t E, int64_t K, int64_t I,
                            void *ws, int64_t wsBytes, void *stream) {
  return moek::routedExpertsFp8(hidden, ids, weights, w13, w13Scale, w2,
                                w2Scale, out, T, H, E, K, I, ws,
                                static_cast<size_t>(wsBytes),
                                static_cast<cudaStream_t>(stream));
}

int moek_shared_experts_fp8(const void *hidden, const void *w13,
                            const float *w13Scale, const void *w2,
                            const float *w2Scale, void *out, int64_t T,
                            int64_t H, int64_t I, void *ws, int64_t wsBytes,
                            void *stream) {
  return moek::sharedExpertsFp8(hidden, w13, w13Scale, w2, w2Scale, out, T, H,
                                I, ws, static_cast<size_t>(wsBytes),
                                static_cast<cudaStream_t>(stream));
}

/// bf16 x [rows, cols] -> e4m3 q [rows, cols] + fp32 scales [rows, cols/128].
int moek_quantize_fp8(const void *x, int64_t rows, int64_t cols, void *q,
                      float *scales, void *stream) {
  return moek::quantizeTokenGroupsFp8(x, rows, cols, q, scales,
                                      static_cast<cudaStream_t>(stream));
}

int moek_add(const void *lhs, const void *rhs, void *out, int64_t n,
             float scale, int dtype, void *stream) {
  return moek::add(lhs, rhs, out, n, scale, static_cast<moek::DType>(dtype),
                   static_cast<cudaStream_t>(stream));
}

/// A parsed tuning file to pass to the expert ops, or null (the reason in
/// moek_tuning_error()).
void *moek_tuning_load(const char *path) {
  auto *table = new moek::TuningTable;
  if (table->load(path, tuningError))
    return table;
  delete table;
  return nullptr;
}

void moek_tuning_free(void *tuning) {
  delete static_cast<moek::TuningTable *>(tuning);
}

/// Makes a tuning file the process-wide table; 0 on success, else -1.
int moek_load_tuning_file(const char *path) {
  return moek::loadTuningFile(path, tuningError) ? 0 : -1;
}

void moek_clear_tuning(void) { moek::setTuning(nullptr); }

const char *moek_tuning_error(void) { return tuningError.c_str(); }

const char *moek_last_error(void) { return moek::lastErrorMessage(); }

} // extern "C"
