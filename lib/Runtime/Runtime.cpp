//===- Runtime.cpp - The C ABI: contexts, errors, ops ----------*- C++ -*-===//
//
// Everything behind the C ABI that is not a backend: the context, the sticky
// error, the thread-local current context and last error, argument validation
// and the workspace of each op. No exception leaves this file.
//
//===----------------------------------------------------------------------===//

#include "Internal.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>

using namespace moert;

namespace moert {
thread_local moert_context *currentContext = nullptr;
thread_local std::string lastError;
} // namespace moert

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
        if (const char *fault = std::getenv("MOERT_TEST_FAULT")) {
          std::string name = fault;
          if (name != "swap-expert" && name != "skip-shared" &&
              name != "routed-scale" && name != "stale-buffer" &&
              failOnRank(name) < 0)
            return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                        cat(fn, ": unknown MOERT_TEST_FAULT '", name,
                            "' (swap-expert, skip-shared, routed-scale, "
                            "stale-buffer, fail-on-rank:R)"));
          if (impl->kind() != MOERT_BACKEND_CPU)
            return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
                        cat(fn, ": MOERT_TEST_FAULT needs the CPU backend"));
          ctx->testFault = name;
        }
        ctx->allocator.reset(new Allocator(*impl));
        ctx->backend = std::move(impl);
        *out = ctx.release();
        return MOERT_SUCCESS;
      });
}

void moert_set_op_observer(moert_context *ctx, moert_op_observer fn,
                           void *user) {
  if (!ctx)
    return;
  ctx->observer = fn;
  ctx->observerUser = user;
}

void moert_context_destroy(moert_context *ctx) {
  if (!ctx)
    return;
  if (currentContext == ctx)
    currentContext = nullptr;
  guarded<int>(nullptr, "moert_context_destroy", 0, [&] {
    if (ctx->comm)
      ctx->comm->context = nullptr;
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
  case MOERT_ERROR_COLLECTIVE:
    return "MOERT_ERROR_COLLECTIVE";
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

} // extern "C"
