//===- MemRefAllocator.cpp - MLIR's memref allocation hooks -----*- C++ -*-===//
//
// Code lowered by MLIR's finalize-memref-to-llvm with generic allocation
// functions (what moe-compile produces) calls
//   _mlir_memref_to_llvm_alloc(size)
//   _mlir_memref_to_llvm_aligned_alloc(alignment, size)
//   _mlir_memref_to_llvm_free(ptr)
// for every memref.alloc / memref.dealloc. Defining them here, on the
// calling thread's current context, makes every intermediate buffer of a
// compiled module an allocation of the runtime's allocator: counted in
// current/peak bytes, bounded by the memory limit, device memory on CUDA.
//
// Failures follow the runtime's rules: NULL is returned and the error
// becomes the current context's sticky error (or, without a current context,
// the thread's moert_last_error()).
//
//===----------------------------------------------------------------------===//

#include "moe-runtime/moe_runtime.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace moert {
// Runtime.cpp.
void failOnCurrentContext(moert_status status, const std::string &message);
} // namespace moert

namespace {
void *allocate(const char *fn, size_t size) {
  if (size > size_t(INT64_MAX)) {
    try {
      moert::failOnCurrentContext(MOERT_ERROR_INVALID_ARGUMENT,
                                  std::string(fn) + ": size " +
                                      std::to_string(size) +
                                      " does not fit in int64_t");
    } catch (...) {
    }
    return nullptr;
  }
  return moert_alloc(int64_t(size));
}
} // namespace

extern "C" {

MOERT_API void *_mlir_memref_to_llvm_alloc(size_t size) {
  return allocate("_mlir_memref_to_llvm_alloc", size);
}

MOERT_API void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment,
                                                   size_t size) {
  const char *fn = "_mlir_memref_to_llvm_aligned_alloc";
  // moert_alloc returns MOERT_WORKSPACE_ALIGNMENT-aligned memory, which
  // satisfies every power-of-two alignment up to it.
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
      alignment > MOERT_WORKSPACE_ALIGNMENT) {
    try {
      moert::failOnCurrentContext(
          MOERT_ERROR_INVALID_ARGUMENT,
          std::string(fn) + ": alignment " + std::to_string(alignment) +
              " is not a power of two up to " +
              std::to_string(MOERT_WORKSPACE_ALIGNMENT) +
              " (the runtime's allocation alignment)");
    } catch (...) {
    }
    return nullptr;
  }
  return allocate(fn, size);
}

MOERT_API void _mlir_memref_to_llvm_free(void *ptr) { moert_free(ptr); }

} // extern "C"
