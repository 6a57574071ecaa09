//===- Internal.h - What the C ABI's files share ---------------*- C++ -*-===//
//
// The context, the sticky error, the thread-local current context and last
// error, argument checks and the frame every C entry point runs in: no
// exception leaves the C ABI. Private to lib/Runtime.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_LIB_RUNTIME_INTERNAL_H
#define MOE_LIB_RUNTIME_INTERNAL_H

#include "Allocator.h"
#include "Backend.h"
#include "Communicator.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>

struct moert_context {
  // Declared first so it is destroyed last: the allocator returns its blocks
  // to the backend.
  std::unique_ptr<moert::Backend> backend;
  std::unique_ptr<moert::Allocator> allocator;

  std::mutex errorMutex;
  moert_status status = MOERT_SUCCESS;
  std::string error;

  /// moert_set_op_observer.
  moert_op_observer observer = nullptr;
  void *observerUser = nullptr;
  /// MOERT_TEST_FAULT at creation (CPU only): the op that misbehaves.
  std::string testFault;
  /// moert_context_set_comm: this rank's communicator, or null (a group of
  /// one).
  moert_comm *comm = nullptr;

  moert_status stickyStatus() {
    std::lock_guard<std::mutex> lock(errorMutex);
    return status;
  }
  /// Keeps the first error only. The first error of a rank ends its group:
  /// with the error sticky, the rank runs no more collectives, and the other
  /// ranks must not wait for it.
  void record(moert_status s, const std::string &message) {
    {
      std::lock_guard<std::mutex> lock(errorMutex);
      if (status != MOERT_SUCCESS)
        return;
      status = s;
      error = message;
    }
    if (comm && s != MOERT_ERROR_COLLECTIVE)
      comm->impl->abort("rank " + std::to_string(comm->impl->rank()) +
                        " failed: " + message);
  }
};

namespace moert {

/// The calling thread's current context and last error message.
extern thread_local moert_context *currentContext;
extern thread_local std::string lastError;



constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

template <typename... Args> std::string cat(const Args &...args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

/// Records a failure: the thread's last error and, with a context, its sticky
/// error (if none is pending).
inline moert_status fail(moert_context *ctx, moert_status status,
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

/// The rank R of MOERT_TEST_FAULT "fail-on-rank:R" (the routed experts of
/// rank R fail), or -1 for any other text.
inline int failOnRank(const std::string &fault) {
  const std::string prefix = "fail-on-rank:";
  if (fault.compare(0, prefix.size(), prefix) != 0 ||
      fault.size() == prefix.size() || fault.size() > prefix.size() + 6)
    return -1;
  int rank = 0;
  for (size_t i = prefix.size(); i < fault.size(); ++i) {
    if (fault[i] < '0' || fault[i] > '9')
      return -1;
    rank = rank * 10 + (fault[i] - '0');
  }
  return rank;
}

inline bool isFloatDtype(const moert_dtype &dtype) {
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

inline moert_status invalid(moert_context &ctx, const ArgChecker &check) {
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

inline moert_status requireContext(moert_context *ctx, const char *function) {
  if (ctx)
    return MOERT_SUCCESS;
  return fail(nullptr, MOERT_ERROR_INVALID_ARGUMENT,
              cat(function, ": ctx is NULL"));
}

} // namespace moert

#endif // MOE_LIB_RUNTIME_INTERNAL_H
