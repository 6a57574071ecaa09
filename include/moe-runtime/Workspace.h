/*===- Workspace.h - Transient device memory of each moe op -----*- C -*-===*
 *
 * The single source of truth for how many bytes of transient workspace each
 * moe op needs while it runs. The compiler (WorkspaceOpInterface) and the
 * runtime backends both call these functions, so the static memory plan and
 * the allocator's measured peak count the same bytes.
 *
 * Symbols: T tokens, H hidden size, E routed experts, K experts per token,
 * I intermediate size of one expert (per tensor-parallel shard), B bytes per
 * activation element (2 for bf16/f16, 4 for f32).
 *
 * Plain C, no dependencies: usable from C, C++, CUDA and MLIR code.
 *===----------------------------------------------------------------------===*/
#ifndef MOE_RUNTIME_WORKSPACE_H
#define MOE_RUNTIME_WORKSPACE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every workspace buffer is carved at this alignment. */
#define MOERT_WORKSPACE_ALIGNMENT 256

/* Width (in hidden columns) of one column block of the routed experts' down
 * projection. The k partial rows of a token are combined in a fixed order one
 * column block at a time, so the combine needs no atomics and the partial
 * buffer holds T*K*MOERT_COMBINE_COLUMNS elements instead of T*K*H. */
#define MOERT_COMBINE_COLUMNS 512

static inline int64_t moert_align_up(int64_t bytes) {
  return (bytes + MOERT_WORKSPACE_ALIGNMENT - 1) /
         MOERT_WORKSPACE_ALIGNMENT * MOERT_WORKSPACE_ALIGNMENT;
}

/* Bytes a workspace of `parts` sub-buffers may lose to aligning each one. */
#define MOERT_WORKSPACE_SLACK(parts) ((parts) * MOERT_WORKSPACE_ALIGNMENT)

/* A workspace size, linear in the token count: per_token * T + constant.
 * Keeping it exactly linear lets the compiler compare peaks symbolically when
 * T is dynamic. A backend takes the whole workspace as one allocation of
 * moert_linear_eval(size, T) bytes and carves aligned sub-buffers from it. */
typedef struct moert_linear_size {
  int64_t per_token;
  int64_t constant;
} moert_linear_size;

static inline int64_t moert_linear_eval(moert_linear_size size, int64_t T) {
  return size.per_token * T + size.constant;
}

/* Saturating arithmetic on non-negative sizes: a result beyond int64 is
 * MOERT_SIZE_OVERFLOW (INT64_MAX), so the formulas below never overflow and
 * a caller can tell a size that does not fit. */
#define MOERT_SIZE_OVERFLOW INT64_MAX
static inline int64_t moert_sat_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? MOERT_SIZE_OVERFLOW : r;
}
static inline int64_t moert_sat_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? MOERT_SIZE_OVERFLOW : r;
}

/* per_token * T + constant, saturating: MOERT_SIZE_OVERFLOW when it does not
 * fit in int64 (or a term already saturated). */
static inline int64_t moert_linear_eval_checked(moert_linear_size size,
                                                int64_t T) {
  if (size.per_token == MOERT_SIZE_OVERFLOW ||
      size.constant == MOERT_SIZE_OVERFLOW)
    return MOERT_SIZE_OVERFLOW;
  return moert_sat_add(moert_sat_mul(size.per_token, T), size.constant);
}

/* Routed experts:
 *   routing metadata : expert offsets (E+1) int32, the (token, slot) pairs
 *                      sorted by expert and the inverse permutation, 2*T*K int32
 *                      (three sub-buffers)
 *   activations      : SiLU(gate)*up of every (token, slot) pair, T*K*I*B
 *   down partials    : one column block of every (token, slot) pair, T*K*C*B
 *                      with C = min(H, MOERT_COMBINE_COLUMNS)
 * plus the alignment slack of these five sub-buffers (each starts at an
 * aligned address, wherever the workspace itself starts). */
static inline moert_linear_size moert_routed_experts_workspace(
    int64_t H, int64_t E, int64_t K, int64_t I, int64_t B) {
  int64_t C = H < MOERT_COMBINE_COLUMNS ? H : MOERT_COMBINE_COLUMNS;
  moert_linear_size size;
  size.per_token = moert_sat_mul(
      K, moert_sat_add(moert_sat_add(2 * 4, moert_sat_mul(I, B)),
                       moert_sat_mul(C, B)));
  size.constant = moert_sat_add(moert_sat_mul(moert_sat_add(E, 1), 4),
                                MOERT_WORKSPACE_SLACK(5));
  return size;
}

/* Shared-expert MLP: the activation SiLU(gate)*up, T*I*B, and its slack. */
static inline moert_linear_size moert_shared_experts_workspace(int64_t I,
                                                               int64_t B) {
  moert_linear_size size;
  size.per_token = moert_sat_mul(I, B);
  size.constant = MOERT_WORKSPACE_SLACK(1);
  return size;
}

/* Block size of the fp8 (e4m3, DeepSeek-V3) formats: an activation row has
 * one fp32 scale per MOERT_FP8_BLOCK consecutive columns, a weight matrix one
 * per MOERT_FP8_BLOCK x MOERT_FP8_BLOCK block. */
#define MOERT_FP8_BLOCK 128

/* Scale groups per row of n columns: ceil(n / MOERT_FP8_BLOCK) (the fp8 ops
 * require multiples of the block; the formulas hold for any n >= 0). */
static inline int64_t moert_fp8_groups(int64_t n) {
  return n / MOERT_FP8_BLOCK + (n % MOERT_FP8_BLOCK != 0);
}

/* Routed experts with fp8 block-scaled weights (bf16 hidden and output):
 *   routing metadata : as moert_routed_experts_workspace: expert offsets
 *                      (E+1) int32, sorted pairs and inverse permutation,
 *                      2*T*K int32 (three sub-buffers)
 *   quantized hidden : e4m3 of every token row, T*H bytes, in token order
 *                      (quantized once per op; the gate-up GEMM gathers its
 *                      rows through the sorted pairs while loading them)
 *   hidden scales    : fp32, one per token per 128 columns, T*G(H)*4
 *   quantized act    : e4m3 of SiLU(gate)*up of every (token, slot) pair in
 *                      sorted order, T*K*I bytes
 *   act scales       : fp32, one per pair per 128 columns, T*K*G(I)*4
 *   down partials    : one column block of every pair, bf16, T*K*C*2 with
 *                      C = min(H, MOERT_COMBINE_COLUMNS)
 * with G(n) = moert_fp8_groups(n), plus the alignment slack of these eight
 * sub-buffers. */
static inline moert_linear_size moert_routed_experts_fp8_workspace(
    int64_t H, int64_t E, int64_t K, int64_t I) {
  int64_t C = H < MOERT_COMBINE_COLUMNS ? H : MOERT_COMBINE_COLUMNS;
  /* Per (token, slot) pair: two int32 of routing, act bytes and scales, and
   * a bf16 partial row. */
  int64_t perPair = moert_sat_add(
      moert_sat_add(2 * 4, I),
      moert_sat_add(moert_sat_mul(moert_fp8_groups(I), 4),
                    moert_sat_mul(C, 2)));
  /* Per token: the quantized hidden row and its scales. */
  int64_t perToken =
      moert_sat_add(H, moert_sat_mul(moert_fp8_groups(H), 4));
  moert_linear_size size;
  size.per_token = moert_sat_add(moert_sat_mul(K, perPair), perToken);
  size.constant = moert_sat_add(moert_sat_mul(moert_sat_add(E, 1), 4),
                                MOERT_WORKSPACE_SLACK(8));
  return size;
}

/* Shared-expert MLP with fp8 block-scaled weights: the quantized hidden
 * (T*H bytes) and its scales (T*G(H)*4), the quantized activation SiLU(g)*u
 * (T*I bytes) and its scales (T*G(I)*4), and the slack of these four. */
static inline moert_linear_size moert_shared_experts_fp8_workspace(int64_t H,
                                                                   int64_t I) {
  moert_linear_size size;
  size.per_token = moert_sat_add(
      moert_sat_add(H, moert_sat_mul(moert_fp8_groups(H), 4)),
      moert_sat_add(I, moert_sat_mul(moert_fp8_groups(I), 4)));
  size.constant = MOERT_WORKSPACE_SLACK(4);
  return size;
}

/* moe.gate, moe.topk and moe.add need no workspace. */

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_WORKSPACE_H */
