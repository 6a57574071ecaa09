//===- AllocatorTest.cpp - Accounting, limits, arena, caching, workspaces -===//

#include "TestUtil.h"

#include <string>
#include <thread>

using namespace moert_test;

namespace {

bool aligned(const void *p) {
  return reinterpret_cast<uintptr_t>(p) % MOERT_WORKSPACE_ALIGNMENT == 0;
}

TEST_F(RuntimeTest, CountsCurrentAndPeakBytes) {
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  EXPECT_EQ(moert_peak_bytes(ctx), 0);
  void *a = moert_alloc(1000);
  void *b = moert_alloc(3000);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(aligned(a));
  EXPECT_TRUE(aligned(b));
  EXPECT_EQ(moert_current_bytes(ctx), 4000);
  EXPECT_EQ(moert_peak_bytes(ctx), 4000);
  EXPECT_EQ(moert_reserved_bytes(ctx), 4000); // direct: exact blocks
  moert_free(a);
  EXPECT_EQ(moert_current_bytes(ctx), 3000);
  EXPECT_EQ(moert_peak_bytes(ctx), 4000);
  moert_reset_peak(ctx);
  EXPECT_EQ(moert_peak_bytes(ctx), 3000);
  void *c = moert_alloc(500);
  EXPECT_EQ(moert_peak_bytes(ctx), 3500);
  // Memory is usable host memory on the CPU backend.
  std::memset(c, 0xab, 500);
  moert_free(b);
  moert_free(c);
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  EXPECT_EQ(moert_reserved_bytes(ctx), 0);
  EXPECT_EQ(moert_peak_bytes(ctx), 3500);
  moert_free(nullptr); // a no-op
  expectNoError();
}

TEST_F(RuntimeTest, ZeroByteAllocationsAreUniqueAndCountNothing) {
  void *p = moert_alloc(0);
  void *q = moert_alloc(0);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(p, q);
  EXPECT_TRUE(aligned(p));
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  EXPECT_EQ(moert_peak_bytes(ctx), 0);
  moert_free(p);
  moert_free(q);
  expectNoError();
}

TEST_F(RuntimeTest, ExplicitContextCallsNeedNoCurrentContext) {
  moert_set_current_context(nullptr);
  void *p = nullptr;
  ASSERT_EQ(moert_alloc_ctx(ctx, 128, &p), MOERT_SUCCESS);
  EXPECT_TRUE(aligned(p));
  EXPECT_EQ(moert_current_bytes(ctx), 128);
  EXPECT_EQ(moert_free_ctx(ctx, p), MOERT_SUCCESS);
  EXPECT_EQ(moert_free_ctx(ctx, nullptr), MOERT_SUCCESS);
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  expectNoError();
}

TEST_F(RuntimeTest, MemoryLimitRefusesWithAMessage) {
  ASSERT_EQ(moert_set_memory_limit(ctx, 4096), MOERT_SUCCESS);
  void *a = moert_alloc(4000);
  ASSERT_NE(a, nullptr);
  void *b = moert_alloc(200);
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_MEMORY_LIMIT);
  std::string message = moert_context_error(ctx);
  EXPECT_NE(message.find("moert_alloc"), std::string::npos) << message;
  EXPECT_NE(message.find("requested 200 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("current 4000 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("limit 4096 bytes"), std::string::npos) << message;
  EXPECT_EQ(message, std::string(moert_last_error()));
  EXPECT_EQ(moert_current_bytes(ctx), 4000);

  moert_context_clear_error(ctx);
  void *c = moert_alloc(96); // exactly up to the limit
  EXPECT_NE(c, nullptr);
  EXPECT_EQ(moert_current_bytes(ctx), 4096);
  ASSERT_EQ(moert_set_memory_limit(ctx, 0), MOERT_SUCCESS); // no limit
  void *d = moert_alloc(1 << 20);
  EXPECT_NE(d, nullptr);
  moert_free(a);
  moert_free(c);
  moert_free(d);

  EXPECT_EQ(moert_set_memory_limit(ctx, -1), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_clear_error(ctx);
}

TEST_F(RuntimeTest, OutOfMemoryIsAnError) {
  void *p = moert_alloc(int64_t(1) << 62);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_OUT_OF_MEMORY);
  EXPECT_NE(std::string(moert_last_error()).find("moert_alloc"),
            std::string::npos);
  moert_context_clear_error(ctx);
  EXPECT_EQ(moert_alloc(-5), nullptr);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_clear_error(ctx);
}

TEST_F(RuntimeTest, ArenaIsOneCountedAllocation) {
  void *arena = nullptr;
  ASSERT_EQ(moert_arena_acquire(1 << 20, &arena), MOERT_SUCCESS);
  EXPECT_TRUE(aligned(arena));
  EXPECT_EQ(moert_current_bytes(ctx), 1 << 20);
  EXPECT_EQ(moert_peak_bytes(ctx), 1 << 20);
  // An arena is released as an arena, not freed.
  moert_free(arena);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_context_error(ctx)).find("arena"),
            std::string::npos);
  moert_context_clear_error(ctx);
  EXPECT_EQ(moert_current_bytes(ctx), 1 << 20);
  moert_arena_release(arena);
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  EXPECT_EQ(moert_peak_bytes(ctx), 1 << 20);
  EXPECT_EQ(moert_arena_acquire(16, nullptr), MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_clear_error(ctx);
  expectNoError();
}

TEST_F(RuntimeTest, CachingModeReusesFreedBlocks) {
  ASSERT_EQ(moert_set_allocation_mode(ctx, MOERT_ALLOC_CACHING), MOERT_SUCCESS);
  void *p = moert_alloc(1000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(moert_current_bytes(ctx), 1000);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024); // the 512-byte size class
  moert_free(p);
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024); // kept
  void *q = moert_alloc(900);                 // same class: the same block
  EXPECT_EQ(q, p);
  EXPECT_EQ(moert_current_bytes(ctx), 900);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024);
  EXPECT_EQ(moert_peak_bytes(ctx), 1000);

  // Above 1 MiB: four classes per power of two (3 MiB + 1 -> 3.5 MiB).
  void *big = moert_alloc((3 << 20) + 1);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024 + (7 << 19));
  moert_free(big);
  void *other = moert_alloc(5000); // another class: a new block
  EXPECT_NE(other, p);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024 + (7 << 19) + 5120);
  ASSERT_EQ(moert_empty_cache(ctx), MOERT_SUCCESS);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024 + 5120);
  moert_free(q);
  moert_free(other);
  EXPECT_EQ(moert_reserved_bytes(ctx), 1024 + 5120);
  // Leaving caching mode gives the cache back.
  ASSERT_EQ(moert_set_allocation_mode(ctx, MOERT_ALLOC_DIRECT), MOERT_SUCCESS);
  EXPECT_EQ(moert_reserved_bytes(ctx), 0);
  EXPECT_EQ(moert_current_bytes(ctx), 0);
  EXPECT_EQ(moert_set_allocation_mode(ctx, (moert_alloc_mode)7),
            MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_clear_error(ctx);
  expectNoError();
}

TEST_F(RuntimeTest, CachingModeKeepsTheLimitOnLiveBytes) {
  ASSERT_EQ(moert_set_allocation_mode(ctx, MOERT_ALLOC_CACHING), MOERT_SUCCESS);
  ASSERT_EQ(moert_set_memory_limit(ctx, 2048), MOERT_SUCCESS);
  void *p = moert_alloc(1500);
  ASSERT_NE(p, nullptr);
  moert_free(p);               // cached: 1536 reserved, 0 live
  void *q = moert_alloc(2000); // live 2000 <= 2048; the cache is trimmed
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(moert_reserved_bytes(ctx), 2048);
  EXPECT_EQ(moert_alloc(100), nullptr);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_MEMORY_LIMIT);
  moert_context_clear_error(ctx);
  moert_free(q);
}

TEST_F(RuntimeTest, FreeingAForeignPointerIsAnError) {
  int local = 0;
  moert_free(&local);
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_context_error(ctx)).find("not allocated"),
            std::string::npos);
  moert_context_clear_error(ctx);
  void *p = moert_alloc(64);
  moert_free(p);
  moert_free(p); // double free: reported, not a crash
  EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_clear_error(ctx);
}

TEST_F(RuntimeTest, DestroyReleasesLiveAllocations) {
  moert_context *other = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &other), MOERT_SUCCESS);
  void *p = nullptr;
  ASSERT_EQ(moert_alloc_ctx(other, 1 << 16, &p), MOERT_SUCCESS);
  ASSERT_EQ(moert_set_allocation_mode(other, MOERT_ALLOC_CACHING),
            MOERT_SUCCESS);
  void *q = nullptr;
  ASSERT_EQ(moert_alloc_ctx(other, 1 << 10, &q), MOERT_SUCCESS);
  ASSERT_EQ(moert_free_ctx(other, q), MOERT_SUCCESS); // cached
  moert_context_destroy(other); // frees p and the cached block
  EXPECT_EQ(moert_get_current_context(), ctx);
}

TEST_F(RuntimeTest, CurrentContextIsPerThread) {
  moert_context *seen = ctx;
  void *allocated = reinterpret_cast<void *>(1);
  std::thread worker([&] {
    seen = moert_get_current_context();
    allocated = moert_alloc(16); // no current context on this thread
  });
  worker.join();
  EXPECT_EQ(seen, nullptr);
  EXPECT_EQ(allocated, nullptr);
  EXPECT_EQ(moert_get_current_context(), ctx);
  expectNoError(); // that failure had no context to stick to
}

//===----------------------------------------------------------------------===//
// Op workspaces
//===----------------------------------------------------------------------===//

/// A routed problem whose buffers live in the context allocator.
struct AllocatedRouted {
  static constexpr int64_t T = 16, H = 96, E = 6, K = 2, I = 40;
  static constexpr moert_dtype dtype = MOERT_BF16;
  void *hidden, *w13, *w2, *output;
  int32_t *ids;
  float *weights;

  AllocatedRouted() {
    hidden = moert_alloc(T * H * 2);
    w13 = moert_alloc(E * 2 * I * H * 2);
    w2 = moert_alloc(E * H * I * 2);
    output = moert_alloc(T * H * 2);
    ids = static_cast<int32_t *>(moert_alloc(T * K * 4));
    weights = static_cast<float *>(moert_alloc(T * K * 4));
    std::mt19937_64 rng(1);
    Buffer x = randomBuffer(dtype, T * H, rng);
    Buffer a = randomBuffer(dtype, E * 2 * I * H, rng, 0.1);
    Buffer b = randomBuffer(dtype, E * H * I, rng, 0.1);
    std::memcpy(hidden, x.data(), size_t(x.byteSize()));
    std::memcpy(w13, a.data(), size_t(a.byteSize()));
    std::memcpy(w2, b.data(), size_t(b.byteSize()));
    for (int64_t p = 0; p < T * K; ++p) {
      ids[p] = int32_t((p * 7) % E);
      weights[p] = 0.5f;
    }
    poisonOutput();
  }
  ~AllocatedRouted() {
    for (void *p : {hidden, w13, w2, output, (void *)ids, (void *)weights})
      moert_free(p);
  }
  void poisonOutput() {
    for (int64_t i = 0; i < T * H; ++i)
      static_cast<uint16_t *>(output)[i] = 0x7fc0;
  }
  bool outputPoisoned() const {
    for (int64_t i = 0; i < T * H; ++i)
      if (static_cast<uint16_t *>(output)[i] != 0x7fc0)
        return false;
    return true;
  }
  moert_status run(void *workspace) {
    return moert_routed_experts(hidden, ids, weights, w13, w2, nullptr, nullptr, output,
                                workspace, dtype, dtype, T, H, E, K, I);
  }
  static int64_t workspaceBytes() {
    return moert_routed_experts_workspace_bytes(T, H, E, K, I, dtype, dtype);
  }
};

TEST_F(RuntimeTest, RoutedWorkspaceIsCountedInThePeak) {
  AllocatedRouted problem;
  int64_t live = moert_current_bytes(ctx);
  moert_reset_peak(ctx);
  ASSERT_EQ(problem.run(nullptr), MOERT_SUCCESS) << moert_last_error();
  EXPECT_EQ(moert_peak_bytes(ctx), live + AllocatedRouted::workspaceBytes());
  EXPECT_EQ(moert_current_bytes(ctx), live);
  EXPECT_FALSE(problem.outputPoisoned());

  // With the caller's workspace the op allocates nothing.
  void *workspace = moert_alloc(AllocatedRouted::workspaceBytes());
  live = moert_current_bytes(ctx);
  moert_reset_peak(ctx);
  ASSERT_EQ(problem.run(workspace), MOERT_SUCCESS);
  EXPECT_EQ(moert_peak_bytes(ctx), live);
  moert_free(workspace);
  expectNoError();
}

TEST_F(RuntimeTest, SharedWorkspaceIsCountedInThePeak) {
  const int64_t T = 10, H = 64, I = 48;
  void *hidden = moert_alloc(T * H * 4), *output = moert_alloc(T * H * 4);
  void *w13 = moert_alloc(2 * I * H * 4), *w2 = moert_alloc(H * I * 4);
  std::memset(hidden, 0, size_t(T * H * 4));
  std::memset(w13, 0, size_t(2 * I * H * 4));
  std::memset(w2, 0, size_t(H * I * 4));
  int64_t live = moert_current_bytes(ctx);
  moert_reset_peak(ctx);
  ASSERT_EQ(moert_shared_experts(hidden, w13, w2, nullptr, nullptr, output, nullptr, MOERT_F32, MOERT_F32, T,
                                 H, I),
            MOERT_SUCCESS);
  EXPECT_EQ(moert_peak_bytes(ctx),
            live + moert_shared_experts_workspace_bytes(T, H, I, MOERT_F32, MOERT_F32));
  EXPECT_EQ(moert_current_bytes(ctx), live);
  for (void *p : {hidden, output, w13, w2})
    moert_free(p);
  expectNoError();
}

TEST_F(RuntimeTest, WorkspaceBeyondTheLimitFailsTheOp) {
  AllocatedRouted problem;
  int64_t live = moert_current_bytes(ctx);
  int64_t workspace = AllocatedRouted::workspaceBytes();
  ASSERT_EQ(moert_set_memory_limit(ctx, live + workspace - 1), MOERT_SUCCESS);
  EXPECT_EQ(problem.run(nullptr), MOERT_ERROR_MEMORY_LIMIT);
  std::string message = moert_context_error(ctx);
  EXPECT_NE(message.find("moert_routed_experts (workspace)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("requested " + std::to_string(workspace)),
            std::string::npos)
      << message;
  EXPECT_TRUE(problem.outputPoisoned()); // nothing ran
  moert_context_clear_error(ctx);

  // Exactly at the limit it fits.
  ASSERT_EQ(moert_set_memory_limit(ctx, live + workspace), MOERT_SUCCESS);
  EXPECT_EQ(problem.run(nullptr), MOERT_SUCCESS) << moert_last_error();
  EXPECT_EQ(moert_peak_bytes(ctx), live + workspace);
  expectNoError();
}

TEST_F(RuntimeTest, CachingModeReusesTheWorkspace) {
  ASSERT_EQ(moert_set_allocation_mode(ctx, MOERT_ALLOC_CACHING), MOERT_SUCCESS);
  AllocatedRouted problem;
  ASSERT_EQ(problem.run(nullptr), MOERT_SUCCESS);
  int64_t reserved = moert_reserved_bytes(ctx);
  ASSERT_EQ(problem.run(nullptr), MOERT_SUCCESS);
  EXPECT_EQ(moert_reserved_bytes(ctx), reserved); // the cached block again
  EXPECT_GT(reserved, moert_current_bytes(ctx));
  expectNoError();
}

} // namespace
