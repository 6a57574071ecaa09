//===- CopyTest.cpp - Host/device copies and the memref allocation hooks --===//

#include "TestUtil.h"

#include <cstddef>
#include <numeric>
#include <string>
#include <vector>

extern "C" {
// lib/Runtime/MemRefAllocator.cpp: what MLIR-lowered code calls.
void *_mlir_memref_to_llvm_alloc(size_t size);
void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size);
void _mlir_memref_to_llvm_free(void *ptr);
}

using namespace moert_test;

namespace {

TEST_F(RuntimeTest, CopiesRoundTrip) {
  std::vector<unsigned char> host(1000), back(1000, 0);
  std::iota(host.begin(), host.end(), 0);
  void *device = nullptr;
  ASSERT_EQ(moert_alloc_ctx(ctx, 1000, &device), MOERT_SUCCESS);
  EXPECT_EQ(moert_copy_to_device(ctx, device, host.data(), 1000),
            MOERT_SUCCESS);
  EXPECT_EQ(moert_copy_to_host(ctx, back.data(), device, 1000), MOERT_SUCCESS);
  EXPECT_EQ(host, back);
  // A sub-range, and device to device on the current context.
  void *other = moert_alloc(600);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(moert_copy(other, static_cast<char *>(device) + 400, 600),
            MOERT_SUCCESS);
  std::vector<unsigned char> part(600);
  EXPECT_EQ(moert_copy_to_host(ctx, part.data(), other, 600), MOERT_SUCCESS);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), host.begin() + 400));
  EXPECT_EQ(moert_copy(device, device, 1000), MOERT_SUCCESS); // same: no-op
  // Zero bytes: nothing, NULL allowed.
  EXPECT_EQ(moert_copy_to_device(ctx, nullptr, nullptr, 0), MOERT_SUCCESS);
  EXPECT_EQ(moert_copy_to_host(ctx, nullptr, nullptr, 0), MOERT_SUCCESS);
  moert_free(other);
  moert_free(device);
  expectNoError();
}

TEST_F(RuntimeTest, CopyErrors) {
  std::vector<unsigned char> host(64);
  void *device = moert_alloc(32);
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(moert_copy_to_device(nullptr, device, host.data(), 8),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(), "moert_copy_to_device: ctx is NULL");

  EXPECT_EQ(moert_copy_to_device(ctx, device, host.data(), 64),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(),
               "moert_copy_to_device: dst .. dst + 64 is not inside one live "
               "allocation of the context");
  // Copies record their failure as the sticky error...
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  // ...but keep working while it is pending (like the allocator).
  EXPECT_EQ(moert_copy_to_device(ctx, device, host.data(), 32), MOERT_SUCCESS);
  moert_context_clear_error(ctx);

  EXPECT_EQ(moert_copy_to_host(ctx, host.data(), host.data() + 8, 8),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(),
               "moert_copy_to_host: src .. src + 8 is not inside one live "
               "allocation of the context");
  moert_context_clear_error(ctx);
  EXPECT_EQ(moert_copy_to_host(ctx, nullptr, device, 8),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(), "moert_copy_to_host: dst is NULL");
  moert_context_clear_error(ctx);
  EXPECT_EQ(moert_copy_to_host(ctx, host.data(), device, -1),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(),
               "moert_copy_to_host: bytes must be non-negative, got -1");
  moert_context_clear_error(ctx);

  // Device to device: overlapping ranges, and not run under a pending error.
  EXPECT_EQ(moert_copy(static_cast<char *>(device) + 8, device, 16),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_last_error(),
               "moert_copy: dst overlaps src without being the same buffer");
  EXPECT_EQ(moert_copy(static_cast<char *>(device) + 16, device, 16),
            MOERT_ERROR_INVALID_ARGUMENT); // the pending error
  moert_context_clear_error(ctx);
  EXPECT_EQ(moert_copy(static_cast<char *>(device) + 16, device, 16),
            MOERT_SUCCESS);
  moert_free(device);
  expectNoError();
}

TEST_F(RuntimeTest, MemRefAllocationHooksUseTheCurrentContext) {
  void *a = _mlir_memref_to_llvm_alloc(1000);
  void *b = _mlir_memref_to_llvm_aligned_alloc(64, 24);
  void *c = _mlir_memref_to_llvm_aligned_alloc(256, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 256, 0u);
  EXPECT_EQ(moert_current_bytes(ctx), 1024);
  EXPECT_EQ(moert_peak_bytes(ctx), 1024);
  _mlir_memref_to_llvm_free(a);
  _mlir_memref_to_llvm_free(b);
  _mlir_memref_to_llvm_free(c);
  _mlir_memref_to_llvm_free(nullptr);
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  expectNoError();

  // The memory limit applies.
  ASSERT_EQ(moert_set_memory_limit(ctx, 100), MOERT_SUCCESS);
  EXPECT_EQ(_mlir_memref_to_llvm_alloc(200), nullptr);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_MEMORY_LIMIT);
  EXPECT_STREQ(moert_context_error(ctx),
               "moert_alloc: allocating 200 bytes would exceed the memory "
               "limit (requested 200 bytes, current 0 bytes, limit 100 "
               "bytes)");
  moert_context_clear_error(ctx);

  // Alignments above the runtime's (or not powers of two) are errors.
  EXPECT_EQ(_mlir_memref_to_llvm_aligned_alloc(512, 16), nullptr);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_context_error(ctx),
               "_mlir_memref_to_llvm_aligned_alloc: alignment 512 is not a "
               "power of two up to 256 (the runtime's allocation alignment)");
  moert_context_clear_error(ctx);
  EXPECT_EQ(_mlir_memref_to_llvm_aligned_alloc(48, 16), nullptr);
  moert_context_clear_error(ctx);

  // Without a current context: NULL and the thread's last error.
  moert_set_current_context(nullptr);
  EXPECT_EQ(_mlir_memref_to_llvm_alloc(8), nullptr);
  EXPECT_STREQ(moert_last_error(), "moert_alloc: no current context (call "
                                   "moert_set_current_context first)");
  moert_set_current_context(ctx);
}

} // namespace
