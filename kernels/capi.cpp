//===- capi.cpp - C entry points of the kernels for ctypes (benchmarks) ---===//
//
// Thin extern "C" wrappers over moe_kernels.h so that bench/moe_bench.py can
// call the launchers on PyTorch tensors (data_ptr) and streams. Each returns
// the cudaError_t as an int; moek_last_error() gives the text.
//===----------------------------------------------------------------------===//
#include "moe_kernels.h"

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
                        void *stream) {
  return moek::routedExperts(hidden, ids, weights, w13, w2, out, T, H, E, K, I,
                             static_cast<moek::DType>(dtype), ws,
                             static_cast<size_t>(wsBytes),
                             static_cast<cudaStream_t>(stream));
}

int moek_shared_experts(const void *hidden, const void *w13, const void *w2,
                        void *out, int64_t T, int64_t H, int64_t I, int dtype,
                        void *ws, int64_t wsBytes, void *stream) {
  return moek::sharedExperts(hidden, w13, w2, out, T, H, I,
                             static_cast<moek::DType>(dtype), ws,
                             static_cast<size_t>(wsBytes),
                             static_cast<cudaStream_t>(stream));
}

int moek_add(const void *lhs, const void *rhs, void *out, int64_t n,
             float scale, int dtype, void *stream) {
  return moek::add(lhs, rhs, out, n, scale, static_cast<moek::DType>(dtype),
                   static_cast<cudaStream_t>(stream));
}

void moek_set_gemm_impl(int impl) {
  moek::setGemmImpl(static_cast<moek::GemmImpl>(impl));
}

void moek_set_pdl(int enabled) { moek::setProgrammaticLaunch(enabled != 0); }

void moek_set_tuning(int flags) { moek::setTuningFlags(flags); }

const char *moek_last_error(void) { return moek::lastErrorMessage(); }

} // extern "C"
