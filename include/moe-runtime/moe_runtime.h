/*===- moe_runtime.h - The C ABI of libmoe_runtime --------------*- C -*-===*
 *
 * The runtime that compiled MoE layers call: a context (one backend: the CPU
 * reference or CUDA), an allocator with exact peak accounting, and one entry
 * point per moe op. Plain C, no dependencies; compiled code calls these
 * functions with plain pointers and sizes (see docs/runtime.md).
 *
 * Conventions
 *  - Every buffer is contiguous and row-major. Symbols: T tokens, H hidden
 *    size, E routed experts, K experts per token, I intermediate size of one
 *    expert (per tensor-parallel shard).
 *  - Op calls run on the calling thread's *current context*
 *    (moert_set_current_context); the allocator functions without a context
 *    argument do too.
 *  - Errors are *sticky*: the first failure of any call on a context is kept
 *    (moert_context_status / moert_context_error) until
 *    moert_context_clear_error; while it is set every op call returns it at
 *    once and does nothing. moert_context_synchronize returns it too. The
 *    message of the last failed call on a thread is moert_last_error().
 *  - Every argument is validated; a bad one gives
 *    MOERT_ERROR_INVALID_ARGUMENT and a message naming the function and the
 *    argument. The runtime never aborts, exits, or lets an exception escape.
 *===----------------------------------------------------------------------===*/
#ifndef MOE_RUNTIME_MOE_RUNTIME_H
#define MOE_RUNTIME_MOE_RUNTIME_H

#include <stdint.h>

#include "moe-runtime/Workspace.h"

#if defined(_WIN32)
#define MOERT_API
#else
#define MOERT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*===--------------------------------------------------------------------===*
 * Codes
 *===--------------------------------------------------------------------===*/

typedef enum moert_status {
  MOERT_SUCCESS = 0,
  MOERT_ERROR_INVALID_ARGUMENT = 1,
  MOERT_ERROR_OUT_OF_MEMORY = 2,       /* the backend could not allocate */
  MOERT_ERROR_MEMORY_LIMIT = 3,        /* moert_set_memory_limit exceeded */
  MOERT_ERROR_BACKEND_UNAVAILABLE = 4, /* e.g. CUDA in a build without it */
  MOERT_ERROR_DEVICE = 5,              /* a CUDA / cuBLAS failure */
  MOERT_ERROR_INTERNAL = 6,
  /* a collective failed: another rank failed, left or called a different
   * collective, or the wait for the others timed out (moert_comm_*) */
  MOERT_ERROR_COLLECTIVE = 7
} moert_status;

/* Element types. Activations and weights are BF16, F16 or F32; I32 exists for
 * completeness (topk ids) and is rejected where a float type is required.
 * F8E4M3 (e4m3, "FN": no infinities, +-448 saturating) is a storage format of
 * expert weights only, with fp32 block scales (MOERT_FP8_BLOCK, Workspace.h),
 * as DeepSeek-V3 ships them. */
typedef enum moert_dtype {
  MOERT_BF16 = 0,
  MOERT_F16 = 1,
  MOERT_F32 = 2,
  MOERT_I32 = 3,
  MOERT_F8E4M3 = 4
} moert_dtype;

typedef enum moert_backend {
  MOERT_BACKEND_CPU = 0,
  MOERT_BACKEND_CUDA = 1
} moert_backend;

/* Same numbering as the moe dialect's ScoringFunc. */
typedef enum moert_scoring {
  MOERT_SCORING_SOFTMAX = 0,
  MOERT_SCORING_SIGMOID = 1
} moert_scoring;

/* How the allocator obtains memory (moert_set_allocation_mode). */
typedef enum moert_alloc_mode {
  /* One backend allocation (malloc / cudaMalloc) per moert_alloc and one
   * release per moert_free; the default. */
  MOERT_ALLOC_DIRECT = 0,
  /* Freed blocks are kept in size-class free lists and reused; they go back
   * to the backend on moert_empty_cache, on leaving this mode, when the
   * backend runs out of memory, and when the context is destroyed. */
  MOERT_ALLOC_CACHING = 1
} moert_alloc_mode;

typedef struct moert_context moert_context;

/*===--------------------------------------------------------------------===*
 * Contexts and errors
 *===--------------------------------------------------------------------===*/

/* Creates a context on `backend`. CPU: `device` must be 0. CUDA: the CUDA
 * device ordinal; a runtime built without CUDA returns
 * MOERT_ERROR_BACKEND_UNAVAILABLE. On failure *out is NULL and the message is
 * moert_last_error(). */
MOERT_API moert_status moert_context_create(moert_backend backend, int device,
                                            moert_context **out);
/* Releases every allocation still live in `ctx` and the context itself. If it
 * is the calling thread's current context, the current context becomes NULL.
 * NULL is a no-op. */
MOERT_API void moert_context_destroy(moert_context *ctx);
/* Nonzero when contexts of `backend` can be created in this build. */
MOERT_API int32_t moert_backend_available(moert_backend backend);

/* The calling thread's current context (thread-local; initially NULL). */
MOERT_API void moert_set_current_context(moert_context *ctx);
MOERT_API moert_context *moert_get_current_context(void);

/* The sticky status: the first error of any call on `ctx` since creation or
 * the last moert_context_clear_error. */
MOERT_API moert_status moert_context_status(moert_context *ctx);
/* The message of that error, "" if none. Valid until the error is cleared or
 * the context destroyed. */
MOERT_API const char *moert_context_error(moert_context *ctx);
MOERT_API void moert_context_clear_error(moert_context *ctx);

/* The message of the last failed call on this thread ("" if none), including
 * failed context creation. Valid until the next failing call on the thread. */
MOERT_API const char *moert_last_error(void);
/* A static name of `status` ("MOERT_SUCCESS", ...). */
MOERT_API const char *moert_status_string(moert_status status);

/* Waits for all work of `ctx` (a no-op on the CPU backend) and returns the
 * sticky status. */
MOERT_API moert_status moert_context_synchronize(moert_context *ctx);

/* Times a region of enqueued work: moert_timer_start marks its start in the
 * order of the ops (CUDA: an event on the context's stream), and
 * moert_timer_stop waits for the region to finish and stores its length in
 * milliseconds (CUDA: the elapsed time between the two events, measured on
 * the device; CPU: the host clock). */
MOERT_API moert_status moert_timer_start(moert_context *ctx);
MOERT_API moert_status moert_timer_stop(moert_context *ctx,
                                        double *milliseconds);

/*===--------------------------------------------------------------------===*
 * Allocator: device memory on CUDA, host memory on the CPU backend
 *
 * Accounting counts the bytes *requested* by live allocations (current,
 * peak), so a static plan and the measurement agree to the byte; reserved
 * bytes are those held from the backend (live blocks and cached free blocks).
 * Every pointer is MOERT_WORKSPACE_ALIGNMENT (256) byte aligned. A zero-byte
 * allocation returns a unique non-null pointer that counts as 0 bytes and
 * must be freed like any other.
 *===--------------------------------------------------------------------===*/

/* Live bytes may not exceed `bytes` (0: no limit; negative: invalid). An
 * allocation beyond it fails with MOERT_ERROR_MEMORY_LIMIT and a message
 * giving the requested, current and limit bytes. */
MOERT_API moert_status moert_set_memory_limit(moert_context *ctx,
                                              int64_t bytes);
MOERT_API moert_status moert_set_allocation_mode(moert_context *ctx,
                                                 moert_alloc_mode mode);
/* Returns cached free blocks to the backend (caching mode), and what the
 * backend keeps for reuse to the system (CUDA: the device memory pool keeps
 * freed memory mapped between runs; this trims it). */
MOERT_API moert_status moert_empty_cache(moert_context *ctx);

/* On the current context. Failure: NULL, the error becomes sticky. */
MOERT_API void *moert_alloc(int64_t bytes);
/* NULL is a no-op; a pointer the context did not allocate is an error. */
MOERT_API void moert_free(void *ptr);
MOERT_API moert_status moert_alloc_ctx(moert_context *ctx, int64_t bytes,
                                       void **out);
MOERT_API moert_status moert_free_ctx(moert_context *ctx, void *ptr);

/* Bytes requested by live allocations, their maximum since creation or the
 * last moert_reset_peak, and bytes held from the backend. -1 for NULL. */
MOERT_API int64_t moert_current_bytes(moert_context *ctx);
MOERT_API int64_t moert_peak_bytes(moert_context *ctx);
MOERT_API int64_t moert_reserved_bytes(moert_context *ctx);
/* Peak := current. */
MOERT_API void moert_reset_peak(moert_context *ctx);

/* An op observer, for checkers (moe-run --check): every op run on `ctx` calls
 * it on the calling thread just before the op runs (`phase` 0) and just after
 * it ran (`phase` 1), with the op's name ("moe.gate", ...) and its operands in
 * the op contract's order (NULL for an absent optional operand) with their
 * sizes in bytes. The operands are context memory: read them with
 * moert_copy_to_host, which waits for the op. NULL removes the observer.
 *
 * Test-only fault injection, for testing checkers: with the environment
 * variable MOERT_TEST_FAULT set when the context is created (CPU backend
 * only), its ops misbehave on purpose: "swap-expert" (moe.topk selects the
 * next expert in its first slot of token 0), "skip-shared"
 * (moe.shared_experts does not run), "routed-scale" (moe.routed_experts'
 * output is scaled by 1.25), "stale-buffer" (the last row of moe.add's first
 * input is overwritten before it runs, as if its buffer were reused while
 * live). */
typedef void (*moert_op_observer)(void *user, const char *op, int32_t phase,
                                  const void *const *operands,
                                  const int64_t *bytes, int32_t count);
MOERT_API void moert_set_op_observer(moert_context *ctx, moert_op_observer fn,
                                     void *user);

/* Planned mode: compiled code takes one arena of the static plan's size and
 * addresses planned buffers (and op workspaces) as arena + offset. The arena
 * is one allocation of the current context, counted once. */
MOERT_API moert_status moert_arena_acquire(int64_t bytes, void **out);
MOERT_API void moert_arena_release(void *arena);

/*===--------------------------------------------------------------------===*
 * Copies between host memory and the context's memory
 *
 * For runners (moe-run) and tests: the context's memory is device memory on
 * CUDA, so host code cannot read or write it directly. The context-side
 * range [ptr, ptr + bytes) must lie inside one live allocation of `ctx`
 * (moert_alloc / moert_alloc_ctx / an arena); the host side is plain host
 * memory. Both copies wait for the work already enqueued on the context and
 * return once the copy is complete. They run even while the context has a
 * sticky error (like the allocator) but record their own failure as one.
 * `bytes` == 0 is a no-op (NULL pointers allowed).
 *===--------------------------------------------------------------------===*/

/* host `src` -> context memory `dst`. */
MOERT_API moert_status moert_copy_to_device(moert_context *ctx, void *dst,
                                            const void *src, int64_t bytes);
/* context memory `src` -> host `dst`. */
MOERT_API moert_status moert_copy_to_host(moert_context *ctx, void *dst,
                                          const void *src, int64_t bytes);
/* Context memory to context memory, on the *current* context, ordered like
 * an op (asynchronous on CUDA; not run while a sticky error is pending).
 * Both ranges lie inside live allocations and must not overlap unless equal
 * (then it is a no-op). For compiled code (e.g. memref.copy on device
 * memory). */
MOERT_API moert_status moert_copy(void *dst, const void *src, int64_t bytes);

/*===--------------------------------------------------------------------===*
 * Communicators: the ranks of one program run in one process
 *
 * A group of `nranks` communicators is created at once, one per rank, for
 * contexts of one backend: CPU (ranks are threads; the collectives meet in
 * shared memory) or CUDA (one device per rank, NCCL; NVLink multicast is
 * never used). Each rank's thread attaches its communicator to its context;
 * the collective ops (moert_all_reduce) then run over the group. When a
 * context with a communicator records an error, the communicator is aborted:
 * every other rank's waiting or later collective fails with a message naming
 * the failed rank, so no rank waits forever for one that will not come.
 *===--------------------------------------------------------------------===*/

typedef struct moert_comm moert_comm;

/* Creates the communicators of a group: comms[r] is rank r's, for a context
 * on `backend` and device devices[r] (CPU: every entry 0; CUDA: distinct
 * ordinals; NULL means 0, 1, ..., nranks - 1). nranks >= 1. On failure every
 * comms[r] is NULL and the message is moert_last_error(). */
MOERT_API moert_status moert_comm_create_group(moert_backend backend,
                                               int32_t nranks,
                                               const int32_t *devices,
                                               moert_comm **comms);
/* Leaves the group and releases `comm`: ranks still waiting for this one in
 * a collective fail ("rank R has left the group"). NULL is a no-op. Detach
 * it from its context first (or destroy the context). */
MOERT_API void moert_comm_destroy(moert_comm *comm);
/* The rank and the group size; -1 for NULL. */
MOERT_API int32_t moert_comm_rank(const moert_comm *comm);
MOERT_API int32_t moert_comm_size(const moert_comm *comm);
/* Ends the group: every rank's waiting or later collective fails with
 * `reason`. Idempotent; the first reason is kept. */
MOERT_API void moert_comm_abort(moert_comm *comm, const char *reason);
/* How long a collective waits on the host for the other ranks to arrive
 * before it fails (default 60000 ms, 0 = no limit). On CUDA the ranks meet on
 * the host before NCCL is called; NCCL's own waits run on the devices. */
MOERT_API moert_status moert_comm_set_timeout(moert_comm *comm,
                                              int64_t milliseconds);
/* Attaches `comm` to `ctx` (same backend and device), or detaches with NULL.
 * A communicator serves one context at a time. */
MOERT_API moert_status moert_context_set_comm(moert_context *ctx,
                                              moert_comm *comm);

/*===--------------------------------------------------------------------===*
 * Ops, on the current context
 *
 * Float buffers have the stated moert_dtype (BF16, F16 or F32). Where an op
 * takes `workspace`, NULL makes the op allocate exactly
 * moert_*_workspace_bytes(...) through the context allocator for the
 * duration of the call (so measured peak memory counts it); otherwise it must
 * point to at least that many bytes, aligned to MOERT_WORKSPACE_ALIGNMENT.
 * A buffer with zero elements may be NULL.
 *===--------------------------------------------------------------------===*/

/* logits[t, e] = sum_h hidden[t, h] * gate_weight[e, h], fp32.
 * hidden: T x H (hidden_dtype); gate_weight: E x H (weight_dtype);
 * logits: T x E f32. */
MOERT_API moert_status moert_gate(const void *hidden, moert_dtype hidden_dtype,
                                  const void *gate_weight,
                                  moert_dtype weight_dtype, float *logits,
                                  int64_t T, int64_t H, int64_t E);

/* Top-K routing. logits: T x E; bias: E or NULL (selection only);
 * topk_ids: T x K, descending selection score; topk_weights: T x K.
 * Requires 1 <= K <= E, n_group >= 1 dividing E, 1 <= topk_group <= n_group,
 * K <= topk_group * (E / n_group), a finite routed_scaling_factor.
 * renormalize: nonzero = divide the weights by their sum. */
MOERT_API moert_status moert_topk(const float *logits, const float *bias,
                                  int32_t *topk_ids, float *topk_weights,
                                  int64_t T, int64_t E, int64_t K,
                                  moert_scoring scoring, int64_t n_group,
                                  int64_t topk_group, int32_t renormalize,
                                  float routed_scaling_factor);

/* output[t] = sum_j topk_weights[t, j] * down_e(SiLU(gate_e(x_t)) * up_e(x_t))
 * with e = topk_ids[t, j] in [0, E). hidden, output: T x H (dtype); w13:
 * E x 2I x H (gate rows, then up rows); w2: E x H x I, both weight_dtype:
 * `dtype`, or MOERT_F8E4M3 with a BF16 `dtype`, H and I multiples of
 * MOERT_FP8_BLOCK and fp32 block scales w13_scale (E x 2I/128 x H/128) and
 * w2_scale (E x H/128 x I/128), NULL otherwise (docs/runtime.md gives the fp8
 * semantics: activations quantized per token per 128 columns). `output` may
 * equal `hidden` (in place); it must not overlap it otherwise. */
MOERT_API moert_status moert_routed_experts(
    const void *hidden, const int32_t *topk_ids, const float *topk_weights,
    const void *w13, const void *w2, const float *w13_scale,
    const float *w2_scale, void *output, void *workspace, moert_dtype dtype,
    moert_dtype weight_dtype, int64_t T, int64_t H, int64_t E, int64_t K,
    int64_t I);

/* output = down(SiLU(gate(hidden)) * up(hidden)). hidden, output: T x H;
 * w13: 2I x H; w2: H x I; weights and scales as in moert_routed_experts
 * (scales 2I/128 x H/128 and H/128 x I/128). `output` may equal `hidden`. */
MOERT_API moert_status moert_shared_experts(
    const void *hidden, const void *w13, const void *w2, const float *w13_scale,
    const float *w2_scale, void *output, void *workspace, moert_dtype dtype,
    moert_dtype weight_dtype, int64_t T, int64_t H, int64_t I);

/* output = scale * lhs + rhs, elementwise, all T x H of `dtype`. `output`
 * may equal `lhs` or `rhs`. */
MOERT_API moert_status moert_add(const void *lhs, const void *rhs, void *output,
                                 moert_dtype dtype, int64_t T, int64_t H,
                                 float scale);

/* The collective sum (tensor parallelism): every rank of the communicator
 * attached to the current context (moert_context_set_comm) passes its
 * `input`; every rank's `output` receives the elementwise sum over the ranks,
 * computed in f32 in rank order and rounded once (CPU group; NCCL's own order
 * on CUDA), identical bits on every rank. All T x H of `dtype`; `output` may
 * equal `input`. `group_size` is the number of ranks the program was
 * compiled for and must equal the communicator's size (1 without one: then
 * output = input). Every rank must run the same collectives in the same
 * order with the same sizes: a mismatch, a rank that failed or left, or (CPU
 * group) a wait past the communicator's timeout fails every rank's call. */
MOERT_API moert_status moert_all_reduce(const void *input, void *output,
                                        moert_dtype dtype, int64_t T,
                                        int64_t H, int64_t group_size);

/* Workspace bytes of the ops: moert_linear_eval of Workspace.h's formulas at
 * T (the fp8 ones for MOERT_F8E4M3 weights). -1 (and moert_last_error) for
 * negative sizes or dtypes the op does not take. */
MOERT_API int64_t moert_routed_experts_workspace_bytes(
    int64_t T, int64_t H, int64_t E, int64_t K, int64_t I, moert_dtype dtype,
    moert_dtype weight_dtype);
MOERT_API int64_t moert_shared_experts_workspace_bytes(int64_t T, int64_t H,
                                                       int64_t I,
                                                       moert_dtype dtype,
                                                       moert_dtype weight_dtype);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_MOE_RUNTIME_H */
