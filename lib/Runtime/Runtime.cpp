//===- Runtime.cpp - The C ABI: contexts, errors, ops ----------*- C++ -*-===//
//
// Everything behind the C ABI that is not a backend: the context, the sticky
// error, the thread-local current context and last error, argument validation
// and the workspace of each op. No exception leaves this file.
//
//===----------------------------------------------------------------------===//

#include "Allocator.h"
#include "Backend.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>

using namespace moert;

struct moert_context {
  // Declared first so it is destroyed last: the allocator returns its blocks
  // to the backend.
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Allocator> allocator;

  std::mutex errorMutex;
  moert_status status = MOERT_SUCCESS;
  std::string error;

  moert_status stickyStatus() {
    std::lock_guard<std::mutex> lock(errorMutex);
    return status;
  }
  /// Keeps the first error only.
  void record(moert_status s, const std::string &message) {
    std::lock_guard<std::mutex> lock(errorMutex);
    if (status != MOERT_SUCCESS)
      return;
    status = s;
    error = message;
  }
};

namespace {

thread_local moert_context *currentContext = nullptr;
thread_local std::string lastError;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

template <typename... Args> std::string cat(const Args &...args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

/// Records a failure: the thread's last error and, with a context, its sticky
/// error (if none is pending).
moert_status fail(moert_context *ctx, moert_status status,
                  const std::string &message) {
  try {
    lastError = message;
    if (ctx)
      ctx->record(status, message);
  } catch (...) {
    // Out of host memory for the message itself: the status still says it.
  }
  return status;
}

/// Runs `body` behind the C ABI: no exception escapes.
template <typename Result, typename Body>
Result guarded(moert_context *ctx, const char *function, Result onException,
               Body body) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    fail(ctx, MOERT_ERROR_OUT_OF_MEMORY,
         std::string(function) + ": out of host memory");
  } catch (const std::exception &e) {
    fail(ctx, MOERT_ERROR_INTERNAL,
         std::string(function) + ": internal error: " + e.what());
  } catch (...) {
    fail(ctx, MOERT_ERROR_INTERNAL, std::string(function) + ": internal error");
  }
  return onException;
}

/// The 32-bit value a caller passed for an enum parameter. C callers (and
/// compiled code) may pass any int; reading an out-of-range value *as the
/// enum* is undefined in C++, so validation reads the bytes instead.
template <typename Enum> int32_t rawValue(const Enum &value) {
  static_assert(sizeof(Enum) == sizeof(int32_t),
                "the C ABI passes enums as 32-bit ints");
  int32_t raw;
  std::memcpy(&raw, &value, sizeof raw);
  return raw;
}

bool isFloatDtype(const moert_dtype &dtype) {
  int32_t raw = rawValue(dtype);
  return raw == MOERT_BF16 || raw == MOERT_F16 || raw == MOERT_F32;
}

/// Collects the first invalid argument of a call, as "<function>: <what>".
class ArgChecker {
public:
  explicit ArgChecker(const char *function) : function(function) {}

  bool ok() const { return message.empty(); }
  const std::string &error() const { return message; }

  template <typename... Args>
  void require(bool condition, const Args &...args) {
    if (ok() && !condition)
      message = cat(function, ": ", args...);
  }

  void nonNegative(const char *name, int64_t value) {
    require(value >= 0, name, " must be non-negative, got ", value);
  }

  void floatDtype(const char *name, const moert_dtype &dtype) {
    require(isFloatDtype(dtype), name,
            " must be MOERT_BF16, MOERT_F16 or MOERT_F32, got ",
            rawValue(dtype));
  }

  /// The product of non-negative `factors`, or 0 (and an error) on overflow.
  int64_t product(const char *what, std::initializer_list<int64_t> factors) {
    int64_t result = 1;
    for (int64_t f : factors)
      if (__builtin_mul_overflow(result, f, &result)) {
        require(false, "the size of ", what, " overflows int64");
        return 0;
      }
    return result;
  }

  /// A buffer of `elements` elements of `elementBytes` bytes each: non-null
  /// unless empty, aligned to its element, its byte size representable.
  void buffer(const char *name, const void *ptr, int64_t elements,
              int64_t elementBytes) {
    require(ptr || elements == 0, name, " is NULL but holds ", elements,
            " elements");
    require(reinterpret_cast<uintptr_t>(ptr) % uintptr_t(elementBytes) == 0,
            name, " is not aligned to its ", elementBytes, "-byte elements");
    require(elements <= kInt64Max / elementBytes, "the size of ", name,
            " overflows int64");
  }

  void workspace(const void *ptr) {
    require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0,
            "workspace must be aligned to 16 bytes");
  }

  /// `output` may be `input` itself but must not overlap it otherwise.
  void noPartialOverlap(const char *outputName, const void *output,
                        const char *inputName, const void *input,
                        int64_t bytes) {
    if (!output || !input || output == input || bytes <= 0)
      return;
    uintptr_t o = reinterpret_cast<uintptr_t>(output);
    uintptr_t i = reinterpret_cast<uintptr_t>(input);
    require(!(o < i + uintptr_t(bytes) && i < o + uintptr_t(bytes)), outputName,
            " overlaps ", inputName, " without being the same buffer");
  }

private:
  const char *function;
  std::string message;
};

/// The routed experts' workspace bytes, overflow-checked; -1 with an error.
int64_t routedWorkspaceBytes(ArgChecker &check, int64_t T, int64_t H, int64_t E,
                             int64_t K, int64_t I, moert_dtype dtype) {
  int64_t B = dtypeBytes(dtype);
  int64_t C = H < MOERT_COMBINE_COLUMNS ? H : MOERT_COMBINE_COLUMNS;
  // per_token = K * (8 + I*B + C*B); constant = (E+1)*4 + slack.
  int64_t perPair = check.product("the workspace", {I, B});
  int64_t perToken = 0;
  if (check.ok() && (__builtin_add_overflow(perPair, 8 + C * B, &perPair) ||
                     __builtin_mul_overflow(perPair, K, &perToken)))
    check.require(false, "the size of the workspace overflows int64");
  int64_t total = check.product("the workspace", {perToken, T});
  if (check.ok() &&
      (E > kInt64Max / 8 ||
       __builtin_add_overflow(total, (E + 1) * 4 + MOERT_WORKSPACE_SLACK(4),
                              &total)))
    check.require(false, "the size of the workspace overflows int64");
  if (!check.ok())
    return -1;
  return moert_linear_eval(moert_routed_experts_workspace(H, E, K, I, B), T);
}

int64_t sharedWorkspaceBytes(ArgChecker &check, int64_t T, int64_t I,
                             moert_dtype dtype) {
  int64_t B = dtypeBytes(dtype);
  int64_t total = check.product("the workspace", {T, I, B});
  if (check.ok() &&
      __builtin_add_overflow(total, MOERT_WORKSPACE_SLACK(1), &total))
    check.require(false, "the size of the workspace overflows int64");
  if (!check.ok())
    return -1;
  return moert_linear_eval(moert_shared_experts_workspace(I, B), T);
}

/// The common frame of every op: the current context, the sticky error,
/// the exception barrier. `body(ctx)` validates and runs.
template <typename Body> moert_status runOp(const char *op, Body body) {
  moert_context *ctx = currentContext;
  return guarded(ctx, op, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    if (!ctx)
      return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                  cat(op, ": no current context (call "
                          "moert_set_current_context first)"));
    moert_status sticky = ctx->stickyStatus();
    if (sticky != MOERT_SUCCESS) {
      lastError = cat(op, ": not run: the context has a pending error: ",
                      moert_context_error(ctx));
      return sticky;
    }
    return body(*ctx);
  });
}

moert_status invalid(moert_context &ctx, const ArgChecker &check) {
  return fail(&ctx, MOERT_ERROR_INVALID_ARGUMENT, check.error());
}

/// Runs `launch(workspace)` with the caller's workspace, or with one
/// allocation of `bytes` from the context allocator for the call's duration
/// (released even if the launch throws).
template <typename Launch>
moert_status withWorkspace(moert_context &ctx, const char *op, void *given,
                           int64_t bytes, Launch launch) {
  struct OwnedWorkspace {
    Allocator &allocator;
    const char *op;
    void *ptr = nullptr;
    ~OwnedWorkspace() {
      std::string ignored; // only a pointer it allocated itself: cannot fail
      if (ptr)
        allocator.deallocate(ptr, /*arena=*/false, op, ignored);
    }
  } owned{*ctx.allocator, op};

  void *workspace = given;
  std::string error;
  if (!workspace) {
    std::string what = cat(op, " (workspace)");
    moert_status status = ctx.allocator->allocate(
        bytes, /*arena=*/false, what.c_str(), &owned.ptr, error);
    if (status != MOERT_SUCCESS)
      return fail(&ctx, status, error);
    workspace = owned.ptr;
  }
  moert_status status = launch(workspace, error);
  if (status != MOERT_SUCCESS)
    return fail(&ctx, status, error);
  return MOERT_SUCCESS;
}

moert_status requireContext(moert_context *ctx, const char *function) {
  if (ctx)
    return MOERT_SUCCESS;
  return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
              cat(function, ": ctx is NULL"));
}

} // namespace

//===----------------------------------------------------------------------===//
// Contexts and errors
//===----------------------------------------------------------------------===//

extern "C" {

moert_status moert_context_create(moert_backend backend, int device,
                                  moert_context **out) {
  const char *fn = "moert_context_create";
  return guarded<moert_status>(
      nullptr, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
        if (!out)
          return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                      cat(fn, ": out is NULL"));
        *out = nullptr;
        std::unique_ptr<Backend> impl;
        switch (rawValue(backend)) {
        case MOERT_BACKEND_CPU:
          if (device != 0)
            return fail(
                nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                cat(fn, ": the CPU backend has only device 0, got ", device));
          impl = createCPUBackend();
          break;
        case MOERT_BACKEND_CUDA: {
#ifdef MOE_ENABLE_CUDA
          if (device < 0)
            return fail(
                nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                cat(fn, ": CUDA device must be non-negative, got ", device));
          std::string error;
          impl = createCUDABackend(device, error);
          if (!impl)
            return fail(
                nullptr, MOERT_ERROR_BACKEND_UNAVAILABLE,
                cat(fn, ": CUDA device ", device, " is unavailable: ", error));
#else
          return fail(nullptr, MOERT_ERROR_BACKEND_UNAVAILABLE,
                      cat(fn, ": this runtime was built without CUDA "
                              "(configure with -DMOE_ENABLE_CUDA=ON)"));
#endif
          break;
        }
        default:
          return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                      cat(fn, ": unknown backend ", rawValue(backend)));
        }
        if (!impl)
          throw std::bad_alloc();
        std::unique_ptr<moert_context> ctx(new moert_context());
        ctx->allocator.reset(new Allocator(*impl));
        ctx->backend = std::move(impl);
        *out = ctx.release();
        return MOERT_SUCCESS;
      });
}

void moert_context_destroy(moert_context *ctx) {
  if (!ctx)
    return;
  if (currentContext == ctx)
    currentContext = nullptr;
  guarded<int>(nullptr, "moert_context_destroy", 0, [&] {
    std::string ignored;
    ctx->backend->synchronize(ignored); // nothing may still use its memory
    ctx->allocator.reset();
    ctx->backend.reset();
    delete ctx;
    return 0;
  });
}

int32_t moert_backend_available(moert_backend backend) {
  switch (rawValue(backend)) {
  case MOERT_BACKEND_CPU:
    return 1;
  case MOERT_BACKEND_CUDA:
#ifdef MOE_ENABLE_CUDA
    return 1;
#else
    return 0;
#endif
  default:
    return 0;
  }
}

void moert_set_current_context(moert_context *ctx) { currentContext = ctx; }

moert_context *moert_get_current_context(void) { return currentContext; }

moert_status moert_context_status(moert_context *ctx) {
  if (!ctx)
    return requireContext(ctx, "moert_context_status");
  return ctx->stickyStatus();
}

const char *moert_context_error(moert_context *ctx) {
  if (!ctx)
    return "";
  std::lock_guard<std::mutex> lock(ctx->errorMutex);
  return ctx->error.c_str();
}

void moert_context_clear_error(moert_context *ctx) {
  if (!ctx)
    return;
  std::lock_guard<std::mutex> lock(ctx->errorMutex);
  ctx->status = MOERT_SUCCESS;
  ctx->error.clear();
}

const char *moert_last_error(void) { return lastError.c_str(); }

const char *moert_status_string(moert_status status) {
  switch (rawValue(status)) {
  case MOERT_SUCCESS:
    return "MOERT_SUCCESS";
  case MOERT_ERROR_INVALID_ARGUMENT:
    return "MOERT_ERROR_INVALID_ARGUMENT";
  case MOERT_ERROR_OUT_OF_MEMORY:
    return "MOERT_ERROR_OUT_OF_MEMORY";
  case MOERT_ERROR_MEMORY_LIMIT:
    return "MOERT_ERROR_MEMORY_LIMIT";
  case MOERT_ERROR_BACKEND_UNAVAILABLE:
    return "MOERT_ERROR_BACKEND_UNAVAILABLE";
  case MOERT_ERROR_DEVICE:
    return "MOERT_ERROR_DEVICE";
  case MOERT_ERROR_INTERNAL:
    return "MOERT_ERROR_INTERNAL";
  }
  return "MOERT_UNKNOWN_STATUS";
}

moert_status moert_context_synchronize(moert_context *ctx) {
  const char *fn = "moert_context_synchronize";
  if (!ctx)
    return requireContext(ctx, fn);
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    std::string error;
    moert_status status = ctx->backend->synchronize(error);
    if (status != MOERT_SUCCESS)
      fail(ctx, status, cat(fn, ": ", error));
    return ctx->stickyStatus();
  });
}

moert_status moert_timer_start(moert_context *ctx) {
  const char *fn = "moert_timer_start";
  if (!ctx)
    return requireContext(ctx, fn);
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    std::string error;
    moert_status status = ctx->backend->timerStart(error);
    if (status != MOERT_SUCCESS)
      fail(ctx, status, cat(fn, ": ", error));
    return ctx->stickyStatus();
  });
}

moert_status moert_timer_stop(moert_context *ctx, double *milliseconds) {
  const char *fn = "moert_timer_stop";
  if (!ctx)
    return requireContext(ctx, fn);
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    if (!milliseconds)
      return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT,
                  cat(fn, ": milliseconds is NULL"));
    std::string error;
    moert_status status = ctx->backend->timerStop(*milliseconds, error);
    if (status != MOERT_SUCCESS)
      fail(ctx, status, cat(fn, ": ", error));
    return ctx->stickyStatus();
  });
}

//===----------------------------------------------------------------------===//
// Allocator
//===----------------------------------------------------------------------===//

moert_status moert_set_memory_limit(moert_context *ctx, int64_t bytes) {
  const char *fn = "moert_set_memory_limit";
  if (!ctx)
    return requireContext(ctx, fn);
  if (ctx->allocator->setLimit(bytes) != MOERT_SUCCESS)
    return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&] {
      return fail(
          ctx, MOERT_ERROR_INVALID_ARGUMENT,
          cat(fn, ": bytes must be non-negative (0 = no limit), got ", bytes));
    });
  return MOERT_SUCCESS;
}

moert_status moert_set_allocation_mode(moert_context *ctx,
                                       moert_alloc_mode mode) {
  const char *fn = "moert_set_allocation_mode";
  if (!ctx)
    return requireContext(ctx, fn);
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    int32_t raw = rawValue(mode);
    if (raw != MOERT_ALLOC_DIRECT && raw != MOERT_ALLOC_CACHING)
      return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT,
                  cat(fn,
                      ": mode must be MOERT_ALLOC_DIRECT or "
                      "MOERT_ALLOC_CACHING, got ",
                      raw));
    ctx->allocator->setMode(mode);
    return MOERT_SUCCESS;
  });
}

moert_status moert_empty_cache(moert_context *ctx) {
  if (!ctx)
    return requireContext(ctx, "moert_empty_cache");
  ctx->allocator->emptyCache();
  return MOERT_SUCCESS;
}

moert_status moert_alloc_ctx(moert_context *ctx, int64_t bytes, void **out) {
  const char *fn = "moert_alloc_ctx";
  if (!ctx)
    return requireContext(ctx, fn);
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    if (!out)
      return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT, cat(fn, ": out is NULL"));
    std::string error;
    moert_status status =
        ctx->allocator->allocate(bytes, /*arena=*/false, fn, out, error);
    if (status != MOERT_SUCCESS)
      return fail(ctx, status, error);
    return MOERT_SUCCESS;
  });
}

moert_status moert_free_ctx(moert_context *ctx, void *ptr) {
  const char *fn = "moert_free_ctx";
  if (!ctx)
    return requireContext(ctx, fn);
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    std::string error;
    moert_status status =
        ctx->allocator->deallocate(ptr, /*arena=*/false, fn, error);
    if (status != MOERT_SUCCESS)
      return fail(ctx, status, error);
    return MOERT_SUCCESS;
  });
}

void *moert_alloc(int64_t bytes) {
  const char *fn = "moert_alloc";
  moert_context *ctx = currentContext;
  return guarded<void *>(ctx, fn, nullptr, [&]() -> void * {
    if (!ctx) {
      fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
           cat(fn, ": no current context (call moert_set_current_context "
                   "first)"));
      return nullptr;
    }
    void *ptr = nullptr;
    std::string error;
    moert_status status =
        ctx->allocator->allocate(bytes, /*arena=*/false, fn, &ptr, error);
    if (status != MOERT_SUCCESS)
      fail(ctx, status, error);
    return ptr;
  });
}

/// Frees `ptr` (an allocation, or an arena) on the current context.
static void releaseOnCurrentContext(void *ptr, bool arena, const char *fn) {
  if (!ptr)
    return;
  moert_context *ctx = currentContext;
  guarded<int>(ctx, fn, 0, [&] {
    if (!ctx) {
      fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
           cat(fn, ": no current context (call moert_set_current_context "
                   "first)"));
      return 0;
    }
    std::string error;
    if (ctx->allocator->deallocate(ptr, arena, fn, error) != MOERT_SUCCESS)
      fail(ctx, MOERT_ERROR_INVALID_ARGUMENT, error);
    return 0;
  });
}

void moert_free(void *ptr) {
  releaseOnCurrentContext(ptr, /*arena=*/false, "moert_free");
}

int64_t moert_current_bytes(moert_context *ctx) {
  return ctx ? ctx->allocator->currentBytes() : -1;
}

int64_t moert_peak_bytes(moert_context *ctx) {
  return ctx ? ctx->allocator->peakBytes() : -1;
}

int64_t moert_reserved_bytes(moert_context *ctx) {
  return ctx ? ctx->allocator->reservedBytes() : -1;
}

void moert_reset_peak(moert_context *ctx) {
  if (ctx)
    ctx->allocator->resetPeak();
}

moert_status moert_arena_acquire(int64_t bytes, void **out) {
  const char *fn = "moert_arena_acquire";
  moert_context *ctx = currentContext;
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    if (!ctx)
      return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                  cat(fn, ": no current context (call "
                          "moert_set_current_context first)"));
    if (!out)
      return fail(ctx, MOERT_ERROR_INVALID_ARGUMENT, cat(fn, ": out is NULL"));
    std::string error;
    moert_status status =
        ctx->allocator->allocate(bytes, /*arena=*/true, fn, out, error);
    if (status != MOERT_SUCCESS)
      return fail(ctx, status, error);
    return MOERT_SUCCESS;
  });
}

void moert_arena_release(void *arena) {
  releaseOnCurrentContext(arena, /*arena=*/true, "moert_arena_release");
}

//===----------------------------------------------------------------------===//
// Copies
//===----------------------------------------------------------------------===//

} // extern "C"

namespace {
/// The common part of the three copies: validation, then the backend.
moert_status copyBytes(moert_context *ctx, const char *fn, void *dst,
                       const void *src, int64_t bytes,
                       CopyDirection direction) {
  return guarded(ctx, fn, MOERT_ERROR_INTERNAL, [&]() -> moert_status {
    ArgChecker check(fn);
    check.nonNegative("bytes", bytes);
    if (!check.ok() || bytes == 0)
      return check.ok() ? MOERT_SUCCESS : invalid(*ctx, check);
    check.require(dst, "dst is NULL");
    check.require(src, "src is NULL");
    bool dstDevice = direction != CopyDirection::DeviceToHost;
    bool srcDevice = direction != CopyDirection::HostToDevice;
    if (check.ok() && dstDevice)
      check.require(ctx->allocator->containsRange(dst, bytes), "dst .. dst + ",
                    bytes, " is not inside one live allocation of the context");
    if (check.ok() && srcDevice)
      check.require(ctx->allocator->containsRange(src, bytes), "src .. src + ",
                    bytes, " is not inside one live allocation of the context");
    if (check.ok() && direction == CopyDirection::DeviceToDevice) {
      if (dst == src)
        return MOERT_SUCCESS;
      check.noPartialOverlap("dst", dst, "src", src, bytes);
    }
    if (!check.ok())
      return invalid(*ctx, check);
    std::string error;
    moert_status status = ctx->backend->copy(dst, src, bytes, direction, error);
    if (status != MOERT_SUCCESS)
      return fail(ctx, status, cat(fn, ": ", error));
    return MOERT_SUCCESS;
  });
}
} // namespace

/// For MemRefAllocator.cpp: records `message` as the current context's sticky
/// error (if it has none yet) and as the thread's last error.
namespace moert {
void failOnCurrentContext(moert_status status, const std::string &message) {
  fail(currentContext, status, message);
}
} // namespace moert

extern "C" {

moert_status moert_copy_to_device(moert_context *ctx, void *dst,
                                  const void *src, int64_t bytes) {
  const char *fn = "moert_copy_to_device";
  if (!ctx)
    return requireContext(ctx, fn);
  return copyBytes(ctx, fn, dst, src, bytes, CopyDirection::HostToDevice);
}

moert_status moert_copy_to_host(moert_context *ctx, void *dst, const void *src,
                                int64_t bytes) {
  const char *fn = "moert_copy_to_host";
  if (!ctx)
    return requireContext(ctx, fn);
  return copyBytes(ctx, fn, dst, src, bytes, CopyDirection::DeviceToHost);
}

moert_status moert_copy(void *dst, const void *src, int64_t bytes) {
  const char *op = "moert_copy";
  return runOp(op, [&](moert_context &ctx) -> moert_status {
    return copyBytes(&ctx, op, dst, src, bytes, CopyDirection::DeviceToDevice);
  });
}

//===----------------------------------------------------------------------===//
// Ops
//===----------------------------------------------------------------------===//

moert_status moert_gate(const void *hidden, moert_dtype hidden_dtype,
                        const void *gate_weight, moert_dtype weight_dtype,
                        float *logits, int64_t T, int64_t H, int64_t E) {
  const char *op = "moert_gate";
  return runOp(op, [&](moert_context &ctx) -> moert_status {
    ArgChecker check(op);
    check.nonNegative("T", T);
    check.nonNegative("H", H);
    check.nonNegative("E", E);
    check.floatDtype("hidden_dtype", hidden_dtype);
    check.floatDtype("weight_dtype", weight_dtype);
    if (!check.ok())
      return invalid(ctx, check);
    check.buffer("hidden", hidden, check.product("hidden", {T, H}),
                 dtypeBytes(hidden_dtype));
    check.buffer("gate_weight", gate_weight,
                 check.product("gate_weight", {E, H}),
                 dtypeBytes(weight_dtype));
    check.buffer("logits", logits, check.product("logits", {T, E}), 4);
    if (!check.ok())
      return invalid(ctx, check);
    GateArgs args{hidden, hidden_dtype, gate_weight, weight_dtype, logits, T, H,
                  E};
    std::string error;
    moert_status status = ctx.backend->gate(args, error);
    return status == MOERT_SUCCESS ? status : fail(&ctx, status, error);
  });
}

moert_status moert_topk(const float *logits, const float *bias,
                        int32_t *topk_ids, float *topk_weights, int64_t T,
                        int64_t E, int64_t K, moert_scoring scoring,
                        int64_t n_group, int64_t topk_group,
                        int32_t renormalize, float routed_scaling_factor) {
  const char *op = "moert_topk";
  return runOp(op, [&](moert_context &ctx) -> moert_status {
    ArgChecker check(op);
    check.nonNegative("T", T);
    check.nonNegative("E", E);
    check.require(E <= kInt32Max, "E = ", E,
                  " does not fit the int32 expert ids");
    check.require(K >= 1, "K must be at least 1, got ", K);
    check.require(K <= E, "K = ", K, " exceeds the number of experts E = ", E);
    check.require(rawValue(scoring) == MOERT_SCORING_SOFTMAX ||
                      rawValue(scoring) == MOERT_SCORING_SIGMOID,
                  "scoring must be MOERT_SCORING_SOFTMAX or "
                  "MOERT_SCORING_SIGMOID, got ",
                  rawValue(scoring));
    check.require(n_group >= 1, "n_group must be at least 1, got ", n_group);
    if (!check.ok())
      return invalid(ctx, check);
    check.require(E % n_group == 0, "n_group = ", n_group,
                  " does not divide the number of experts E = ", E);
    check.require(topk_group >= 1 && topk_group <= n_group,
                  "topk_group must be in [1, n_group = ", n_group, "], got ",
                  topk_group);
    if (!check.ok())
      return invalid(ctx, check);
    check.require(K <= topk_group * (E / n_group), "K = ", K,
                  " exceeds the experts of the topk_group = ", topk_group,
                  " selected groups (", topk_group * (E / n_group), ")");
    check.require(std::isfinite(routed_scaling_factor),
                  "routed_scaling_factor must be finite, got ",
                  routed_scaling_factor);
    check.buffer("logits", logits, check.product("logits", {T, E}), 4);
    check.buffer("bias", bias, 0, 4); // nullable; only its alignment matters
    check.buffer("topk_ids", topk_ids, check.product("topk_ids", {T, K}), 4);
    check.buffer("topk_weights", topk_weights,
                 check.product("topk_weights", {T, K}), 4);
    if (!check.ok())
      return invalid(ctx, check);
    TopKArgs args{logits,
                  bias,
                  topk_ids,
                  topk_weights,
                  T,
                  E,
                  K,
                  scoring,
                  n_group,
                  topk_group,
                  renormalize != 0,
                  routed_scaling_factor};
    std::string error;
    moert_status status = ctx.backend->topk(args, error);
    return status == MOERT_SUCCESS ? status : fail(&ctx, status, error);
  });
}

moert_status moert_routed_experts(const void *hidden, const int32_t *topk_ids,
                                  const float *topk_weights, const void *w13,
                                  const void *w2, void *output, void *workspace,
                                  moert_dtype dtype, int64_t T, int64_t H,
                                  int64_t E, int64_t K, int64_t I) {
  const char *op = "moert_routed_experts";
  return runOp(op, [&](moert_context &ctx) -> moert_status {
    ArgChecker check(op);
    check.nonNegative("T", T);
    check.nonNegative("H", H);
    check.nonNegative("E", E);
    check.nonNegative("I", I);
    check.floatDtype("dtype", dtype);
    check.require(K >= 1, "K must be at least 1, got ", K);
    check.require(K <= E, "K = ", K, " exceeds the number of experts E = ", E);
    check.require(E < kInt32Max, "E = ", E,
                  " does not fit the int32 expert offsets");
    if (!check.ok())
      return invalid(ctx, check);
    int64_t B = dtypeBytes(dtype);
    int64_t tokenElements = check.product("hidden", {T, H});
    int64_t pairs = check.product("topk_ids", {T, K});
    check.require(pairs <= kInt32Max, "T * K = ", pairs,
                  " exceeds the int32 pair indices");
    check.buffer("hidden", hidden, tokenElements, B);
    check.buffer("topk_ids", topk_ids, pairs, 4);
    check.buffer("topk_weights", topk_weights, pairs, 4);
    check.buffer("w13", w13, check.product("w13", {E, 2, I, H}), B);
    check.buffer("w2", w2, check.product("w2", {E, H, I}), B);
    check.buffer("output", output, tokenElements, B);
    check.workspace(workspace);
    if (!check.ok())
      return invalid(ctx, check);
    check.noPartialOverlap("output", output, "hidden", hidden,
                           tokenElements * B);
    int64_t workspaceBytes = routedWorkspaceBytes(check, T, H, E, K, I, dtype);
    if (!check.ok())
      return invalid(ctx, check);
    return withWorkspace(ctx, op, workspace, workspaceBytes,
                         [&](void *ws, std::string &error) {
                           RoutedExpertsArgs args{hidden,
                                                  topk_ids,
                                                  topk_weights,
                                                  w13,
                                                  w2,
                                                  output,
                                                  ws,
                                                  workspaceBytes,
                                                  dtype,
                                                  T,
                                                  H,
                                                  E,
                                                  K,
                                                  I};
                           return ctx.backend->routedExperts(args, error);
                         });
  });
}

moert_status moert_shared_experts(const void *hidden, const void *w13,
                                  const void *w2, void *output, void *workspace,
                                  moert_dtype dtype, int64_t T, int64_t H,
                                  int64_t I) {
  const char *op = "moert_shared_experts";
  return runOp(op, [&](moert_context &ctx) -> moert_status {
    ArgChecker check(op);
    check.nonNegative("T", T);
    check.nonNegative("H", H);
    check.nonNegative("I", I);
    check.floatDtype("dtype", dtype);
    if (!check.ok())
      return invalid(ctx, check);
    int64_t B = dtypeBytes(dtype);
    int64_t tokenElements = check.product("hidden", {T, H});
    check.buffer("hidden", hidden, tokenElements, B);
    check.buffer("w13", w13, check.product("w13", {2, I, H}), B);
    check.buffer("w2", w2, check.product("w2", {H, I}), B);
    check.buffer("output", output, tokenElements, B);
    check.workspace(workspace);
    if (!check.ok())
      return invalid(ctx, check);
    check.noPartialOverlap("output", output, "hidden", hidden,
                           tokenElements * B);
    int64_t workspaceBytes = sharedWorkspaceBytes(check, T, I, dtype);
    if (!check.ok())
      return invalid(ctx, check);
    return withWorkspace(
        ctx, op, workspace, workspaceBytes, [&](void *ws, std::string &error) {
          SharedExpertsArgs args{hidden,         w13,   w2, output, ws,
                                 workspaceBytes, dtype, T,  H,      I};
          return ctx.backend->sharedExperts(args, error);
        });
  });
}

moert_status moert_add(const void *lhs, const void *rhs, void *output,
                       moert_dtype dtype, int64_t T, int64_t H, float scale) {
  const char *op = "moert_add";
  return runOp(op, [&](moert_context &ctx) -> moert_status {
    ArgChecker check(op);
    check.nonNegative("T", T);
    check.nonNegative("H", H);
    check.floatDtype("dtype", dtype);
    check.require(std::isfinite(scale), "scale must be finite, got ", scale);
    if (!check.ok())
      return invalid(ctx, check);
    int64_t B = dtypeBytes(dtype);
    int64_t elements = check.product("output", {T, H});
    check.buffer("lhs", lhs, elements, B);
    check.buffer("rhs", rhs, elements, B);
    check.buffer("output", output, elements, B);
    if (!check.ok())
      return invalid(ctx, check);
    check.noPartialOverlap("output", output, "lhs", lhs, elements * B);
    check.noPartialOverlap("output", output, "rhs", rhs, elements * B);
    if (!check.ok())
      return invalid(ctx, check);
    AddArgs args{lhs, rhs, output, dtype, T, H, scale};
    std::string error;
    moert_status status = ctx.backend->add(args, error);
    return status == MOERT_SUCCESS ? status : fail(&ctx, status, error);
  });
}

int64_t moert_routed_experts_workspace_bytes(int64_t T, int64_t H, int64_t E,
                                             int64_t K, int64_t I,
                                             moert_dtype dtype) {
  const char *fn = "moert_routed_experts_workspace_bytes";
  return guarded<int64_t>(nullptr, fn, -1, [&]() -> int64_t {
    ArgChecker check(fn);
    check.nonNegative("T", T);
    check.nonNegative("H", H);
    check.nonNegative("E", E);
    check.nonNegative("K", K);
    check.nonNegative("I", I);
    check.floatDtype("dtype", dtype);
    int64_t bytes =
        check.ok() ? routedWorkspaceBytes(check, T, H, E, K, I, dtype) : -1;
    if (!check.ok()) {
      fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT, check.error());
      return -1;
    }
    return bytes;
  });
}

int64_t moert_shared_experts_workspace_bytes(int64_t T, int64_t H, int64_t I,
                                             moert_dtype dtype) {
  const char *fn = "moert_shared_experts_workspace_bytes";
  return guarded<int64_t>(nullptr, fn, -1, [&]() -> int64_t {
    ArgChecker check(fn);
    check.nonNegative("T", T);
    check.nonNegative("H", H);
    check.nonNegative("I", I);
    check.floatDtype("dtype", dtype);
    int64_t bytes = check.ok() ? sharedWorkspaceBytes(check, T, I, dtype) : -1;
    if (!check.ok()) {
      fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT, check.error());
      return -1;
    }
    return bytes;
  });
}

} // extern "C"
