//===- ErrorTest.cpp - Validation, sticky errors, unavailable backends ----===//

#include "TestUtil.h"

#include <string>

using namespace moert_test;

extern "C" int moert_test_c_smoke(void);

namespace {

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Expects the call to have failed with INVALID_ARGUMENT and a message that
/// names every one of `words`; then clears the sticky error.
#define EXPECT_INVALID(call, ...)                                              \
  do {                                                                         \
    EXPECT_EQ((call), MOERT_ERROR_INVALID_ARGUMENT);                           \
    std::string message = moert_last_error();                                  \
    for (const char *word : {__VA_ARGS__})                                     \
      EXPECT_TRUE(contains(message, word))                                     \
          << "'" << word << "' not in: " << message;                           \
    EXPECT_EQ(moert_context_status(ctx), MOERT_ERROR_INVALID_ARGUMENT);        \
    EXPECT_EQ(message, std::string(moert_context_error(ctx)));                 \
    moert_context_clear_error(ctx);                                            \
  } while (false)

TEST(CApiTest, HeaderIsUsableFromC) { EXPECT_EQ(moert_test_c_smoke(), 0); }

TEST(ContextTest, CudaIsUnavailableWithoutCuda) {
  if (moert_backend_available(MOERT_BACKEND_CUDA))
    GTEST_SKIP() << "this runtime was built with CUDA";
  moert_context *ctx = reinterpret_cast<moert_context *>(1);
  EXPECT_EQ(moert_context_create(MOERT_BACKEND_CUDA, 0, &ctx),
            MOERT_ERROR_BACKEND_UNAVAILABLE);
  EXPECT_EQ(ctx, nullptr);
  std::string message = moert_last_error();
  EXPECT_TRUE(contains(message, "built without CUDA")) << message;
  EXPECT_TRUE(contains(message, "-DMOE_ENABLE_CUDA=ON")) << message;
}

TEST(ContextTest, CreateValidatesItsArguments) {
  EXPECT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, nullptr),
            MOERT_ERROR_INVALID_ARGUMENT);
  moert_context *ctx = nullptr;
  EXPECT_EQ(moert_context_create(MOERT_BACKEND_CPU, 1, &ctx),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(moert_last_error(), "device"));
  EXPECT_EQ(moert_context_create((moert_backend)9, 0, &ctx),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(moert_last_error(), "backend"));
  EXPECT_EQ(ctx, nullptr);
  EXPECT_TRUE(moert_backend_available(MOERT_BACKEND_CPU));
  EXPECT_FALSE(moert_backend_available((moert_backend)9));
}

TEST(ContextTest, NullContextsAreHandled) {
  EXPECT_EQ(moert_context_status(nullptr), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(moert_context_error(nullptr), "");
  EXPECT_EQ(moert_context_synchronize(nullptr), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(moert_current_bytes(nullptr), -1);
  EXPECT_EQ(moert_set_memory_limit(nullptr, 1), MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_clear_error(nullptr);
  moert_context_destroy(nullptr);
  moert_reset_peak(nullptr);
}

TEST(ContextTest, OpsNeedACurrentContext) {
  moert_set_current_context(nullptr);
  float a = 1, b = 2, c = 0;
  EXPECT_EQ(moert_add(&a, &b, &c, MOERT_F32, 1, 1, 1.0f),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(moert_last_error(), "no current context"));
  EXPECT_EQ(moert_alloc(8), nullptr);
  void *arena = nullptr;
  EXPECT_EQ(moert_arena_acquire(8, &arena), MOERT_ERROR_INVALID_ARGUMENT);
}

TEST(ContextTest, StatusStrings) {
  EXPECT_STREQ(moert_status_string(MOERT_SUCCESS), "MOERT_SUCCESS");
  EXPECT_STREQ(moert_status_string(MOERT_ERROR_MEMORY_LIMIT),
               "MOERT_ERROR_MEMORY_LIMIT");
  EXPECT_STREQ(moert_status_string(MOERT_ERROR_DEVICE), "MOERT_ERROR_DEVICE");
  EXPECT_STREQ(moert_status_string((moert_status)42), "MOERT_UNKNOWN_STATUS");
}

TEST_F(RuntimeTest, ErrorsAreStickyUntilCleared) {
  float lhs[4] = {1, 2, 3, 4}, rhs[4] = {1, 1, 1, 1};
  std::vector<float> out = poisonedFloats(4);
  // The first error: a bad dtype.
  EXPECT_EQ(moert_add(lhs, rhs, out.data(), (moert_dtype)9, 2, 2, 1.0f),
            MOERT_ERROR_INVALID_ARGUMENT);
  std::string first = moert_context_error(ctx);
  EXPECT_TRUE(contains(first, "moert_add")) << first;
  EXPECT_TRUE(contains(first, "dtype")) << first;
  // A valid op now returns the sticky error and does nothing.
  EXPECT_EQ(moert_add(lhs, rhs, out.data(), MOERT_F32, 2, 2, 1.0f),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_TRUE(contains(moert_last_error(), "not run")) << moert_last_error();
  // A second failure does not replace the first message.
  EXPECT_EQ(moert_alloc(-1), nullptr);
  EXPECT_EQ(first, std::string(moert_context_error(ctx)));
  EXPECT_EQ(moert_context_synchronize(ctx), MOERT_ERROR_INVALID_ARGUMENT);
  // Cleared, the op runs.
  moert_context_clear_error(ctx);
  EXPECT_STREQ(moert_context_error(ctx), "");
  EXPECT_EQ(moert_add(lhs, rhs, out.data(), MOERT_F32, 2, 2, 1.0f),
            MOERT_SUCCESS);
  EXPECT_EQ(out[3], 5.0f);
  EXPECT_EQ(moert_context_synchronize(ctx), MOERT_SUCCESS);
}

TEST_F(RuntimeTest, GateValidatesItsArguments) {
  std::vector<float> x(12), w(6), logits(8);
  EXPECT_INVALID(moert_gate(nullptr, MOERT_F32, w.data(), MOERT_F32,
                            logits.data(), 4, 3, 2),
                 "moert_gate", "hidden", "NULL");
  EXPECT_INVALID(moert_gate(x.data(), MOERT_F32, nullptr, MOERT_F32,
                            logits.data(), 4, 3, 2),
                 "moert_gate", "gate_weight");
  EXPECT_INVALID(
      moert_gate(x.data(), MOERT_F32, w.data(), MOERT_F32, nullptr, 4, 3, 2),
      "moert_gate", "logits");
  EXPECT_INVALID(moert_gate(x.data(), MOERT_I32, w.data(), MOERT_F32,
                            logits.data(), 4, 3, 2),
                 "moert_gate", "hidden_dtype");
  EXPECT_INVALID(moert_gate(x.data(), MOERT_F32, w.data(), (moert_dtype)77,
                            logits.data(), 4, 3, 2),
                 "moert_gate", "weight_dtype");
  EXPECT_INVALID(moert_gate(x.data(), MOERT_F32, w.data(), MOERT_F32,
                            logits.data(), -4, 3, 2),
                 "moert_gate", "T", "non-negative");
  EXPECT_INVALID(moert_gate(x.data(), MOERT_F32, w.data(), MOERT_F32,
                            logits.data(), int64_t(1) << 40, int64_t(1) << 40,
                            2),
                 "moert_gate", "overflow");
  // Misaligned f32 logits.
  EXPECT_INVALID(moert_gate(x.data(), MOERT_F32, w.data(), MOERT_F32,
                            reinterpret_cast<float *>(
                                reinterpret_cast<char *>(logits.data()) + 1),
                            1, 3, 2),
                 "moert_gate", "logits", "aligned");
  // Empty buffers may be NULL.
  EXPECT_EQ(
      moert_gate(nullptr, MOERT_BF16, nullptr, MOERT_BF16, nullptr, 0, 3, 0),
      MOERT_SUCCESS);
  expectNoError();
}

TEST_F(RuntimeTest, TopKValidatesItsArguments) {
  std::vector<float> logits(16), weights(8), bias(8);
  std::vector<int32_t> ids(8);
  auto topk = [&](const float *l, int64_t E, int64_t K, int scoring,
                  int64_t nGroup, int64_t topkGroup, float scale,
                  const float *b = nullptr) {
    return moert_topk(l, b, ids.data(), weights.data(), 2, E, K,
                      (moert_scoring)scoring, nGroup, topkGroup, 1, scale);
  };
  EXPECT_INVALID(topk(logits.data(), 8, 9, 0, 1, 1, 1.0f), "moert_topk",
                 "k = 9", "number of experts (8)");
  EXPECT_INVALID(topk(logits.data(), 8, 0, 0, 1, 1, 1.0f), "moert_topk", "K");
  EXPECT_INVALID(topk(logits.data(), 8, 2, 0, 3, 1, 1.0f), "moert_topk",
                 "n_group = 3", "must divide the number of experts (8)");
  EXPECT_INVALID(topk(logits.data(), 8, 2, 0, 0, 1, 1.0f), "moert_topk",
                 "n_group");
  EXPECT_INVALID(topk(logits.data(), 8, 2, 0, 4, 5, 1.0f), "moert_topk",
                 "topk_group");
  EXPECT_INVALID(topk(logits.data(), 8, 4, 1, 4, 1, 1.0f), "moert_topk",
                 "k = 4", "topk_group");
  EXPECT_INVALID(topk(logits.data(), 8, 2, 2, 1, 1, 1.0f), "moert_topk",
                 "scoring");
  EXPECT_INVALID(topk(logits.data(), 8, 2, 0, 1, 1, std::nanf("")),
                 "moert_topk", "routed_scaling_factor");
  EXPECT_INVALID(topk(nullptr, 8, 2, 0, 1, 1, 1.0f), "moert_topk", "logits");
  EXPECT_INVALID(moert_topk(logits.data(), nullptr, nullptr, weights.data(), 2,
                            8, 2, MOERT_SCORING_SOFTMAX, 1, 1, 0, 1.0f),
                 "moert_topk", "topk_ids");
  EXPECT_INVALID(moert_topk(logits.data(), nullptr, ids.data(), nullptr, 2, 8,
                            2, MOERT_SCORING_SOFTMAX, 1, 1, 0, 1.0f),
                 "moert_topk", "topk_weights");
  // A bias is optional.
  EXPECT_EQ(topk(logits.data(), 8, 2, 1, 4, 2, 1.0f, bias.data()),
            MOERT_SUCCESS);
  EXPECT_EQ(topk(logits.data(), 8, 2, 1, 4, 2, 1.0f), MOERT_SUCCESS);
  expectNoError();
}

TEST_F(RuntimeTest, RoutedExpertsValidateTheirArguments) {
  const int64_t T = 3, H = 16, E = 4, K = 2, I = 8;
  std::mt19937_64 rng(4);
  Buffer x = randomBuffer(MOERT_BF16, T * H, rng);
  Buffer w13 = randomBuffer(MOERT_BF16, E * 2 * I * H, rng);
  Buffer w2 = randomBuffer(MOERT_BF16, E * H * I, rng);
  Buffer out(MOERT_BF16, T * H);
  out.poison();
  std::vector<int32_t> ids = {0, 1, 2, 3, 1, 0};
  std::vector<float> weights(T * K, 0.5f);
  // The dtype travels as an int: an out-of-range value may not be held in a
  // C++ enum variable (the runtime itself reads enum parameters as ints).
  auto routed = [&](const int32_t *idp, int dtype, int64_t t, int64_t k,
                    const void *hidden, void *output,
                    void *workspace = nullptr) {
    return moert_routed_experts(hidden, idp, weights.data(), w13.data(),
                                w2.data(), nullptr, nullptr, output, workspace,
                                static_cast<moert_dtype>(dtype),
                                static_cast<moert_dtype>(dtype), t, H, E, k, I);
  };
  EXPECT_INVALID(routed(ids.data(), MOERT_BF16, T, K, nullptr, out.data()),
                 "moert_routed_experts", "hidden", "NULL");
  EXPECT_INVALID(routed(nullptr, MOERT_BF16, T, K, x.data(), out.data()),
                 "moert_routed_experts", "topk_ids");
  EXPECT_INVALID(routed(ids.data(), MOERT_BF16, T, K, x.data(), nullptr),
                 "moert_routed_experts", "output");
  EXPECT_INVALID(routed(ids.data(), MOERT_I32, T, K, x.data(), out.data()),
                 "moert_routed_experts", "dtype");
  EXPECT_INVALID(routed(ids.data(), (moert_dtype)4, T, K, x.data(), out.data()),
                 "moert_routed_experts", "dtype");
  EXPECT_INVALID(routed(ids.data(), MOERT_BF16, -1, K, x.data(), out.data()),
                 "moert_routed_experts", "T");
  EXPECT_INVALID(routed(ids.data(), MOERT_BF16, T, 5, x.data(), out.data()),
                 "moert_routed_experts", "k = 5",
                 "number of experts (4)");
  // Output overlapping hidden without being it.
  Buffer big(MOERT_BF16, 2 * T * H);
  EXPECT_INVALID(routed(ids.data(), MOERT_BF16, T, K, big.data(),
                        static_cast<uint16_t *>(big.data()) + 8),
                 "moert_routed_experts", "overlaps");
  // A misaligned workspace.
  void *workspace = moert_alloc(
      moert_routed_experts_workspace_bytes(T, H, E, K, I, MOERT_BF16, MOERT_BF16) + 512);
  EXPECT_INVALID(routed(ids.data(), MOERT_BF16, T, K, x.data(), out.data(),
                        static_cast<char *>(workspace) + 8),
                 "moert_routed_experts", "workspace", "aligned");
  moert_free(workspace);

  // Ids out of range, checked before anything is written.
  for (int32_t bad : {-1, 4, 1000}) {
    std::vector<int32_t> badIds = ids;
    badIds[3] = bad;
    std::string where = "topk_ids[1, 1] = " + std::to_string(bad);
    EXPECT_INVALID(
        routed(badIds.data(), MOERT_BF16, T, K, x.data(), out.data()),
        "moert_routed_experts", where.c_str(), "[0, 4)");
    EXPECT_TRUE(std::isnan(out.get(0)));
  }
  EXPECT_EQ(moert_current_bytes(ctx), 0); // the workspace was released
  EXPECT_EQ(routed(ids.data(), MOERT_BF16, T, K, x.data(), out.data()),
            MOERT_SUCCESS);
  expectNoError();
}

TEST_F(RuntimeTest, SharedExpertsAndAddValidateTheirArguments) {
  std::vector<float> x(8), w13(16), w2(8), out(8);
  EXPECT_INVALID(moert_shared_experts(x.data(), nullptr, w2.data(), nullptr, nullptr, out.data(),
                                      nullptr, MOERT_F32, MOERT_F32, 2, 4, 2),
                 "moert_shared_experts", "w13");
  EXPECT_INVALID(moert_shared_experts(x.data(), w13.data(), nullptr, nullptr, nullptr, out.data(),
                                      nullptr, MOERT_F32, MOERT_F32, 2, 4, 2),
                 "moert_shared_experts", "w2");
  EXPECT_INVALID(moert_shared_experts(x.data(), w13.data(), w2.data(), nullptr, nullptr,
                                      out.data(), nullptr, MOERT_F32, MOERT_F32, 2, 4, -2),
                 "moert_shared_experts", "I");
  EXPECT_INVALID(
      moert_add(x.data(), nullptr, out.data(), MOERT_F32, 2, 4, 1.0f),
      "moert_add", "rhs");
  EXPECT_INVALID(
      moert_add(x.data(), w2.data(), out.data(), MOERT_F32, 2, 4, INFINITY),
      "moert_add", "scale");
  EXPECT_INVALID(
      moert_add(x.data(), w2.data(), x.data() + 1, MOERT_F32, 1, 4, 1.0f),
      "moert_add", "overlaps", "lhs");
  expectNoError();
}

TEST(WorkspaceQueryTest, RejectsBadArguments) {
  EXPECT_EQ(moert_routed_experts_workspace_bytes(-1, 1, 1, 1, 1, MOERT_BF16, MOERT_BF16),
            -1);
  EXPECT_TRUE(contains(moert_last_error(), "T"));
  EXPECT_EQ(moert_routed_experts_workspace_bytes(1, 1, 1, 1, 1, MOERT_I32, MOERT_I32), -1);
  EXPECT_EQ(moert_shared_experts_workspace_bytes(1, 1, 1, (moert_dtype)5, (moert_dtype)5), -1);
  EXPECT_EQ(moert_routed_experts_workspace_bytes(int64_t(1) << 40, 7168, 256, 8,
                                                 int64_t(1) << 30, MOERT_BF16, MOERT_BF16),
            -1);
  EXPECT_TRUE(contains(moert_last_error(), "overflow"));
  // DeepSeek-V3 at TP=4, 16384 tokens.
  EXPECT_EQ(moert_routed_experts_workspace_bytes(16384, 7168, 256, 8, 512,
                                                 MOERT_BF16,
                                                 MOERT_BF16),
            16384LL * 8 * (8 + 512 * 2 + 512 * 2) + 257 * 4 + 5 * 256);
}

} // namespace

TEST(TimerTest, MeasuresARegionOnTheCPU) {
  moert_context *ctx = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &ctx), MOERT_SUCCESS);
  double ms = -1;
  EXPECT_EQ(moert_timer_start(ctx), MOERT_SUCCESS);
  EXPECT_EQ(moert_timer_stop(ctx, &ms), MOERT_SUCCESS);
  EXPECT_GE(ms, 0.0);
  EXPECT_EQ(moert_timer_stop(ctx, nullptr), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_context_error(ctx)).find("milliseconds is NULL"),
            std::string::npos);
  EXPECT_EQ(moert_timer_start(nullptr), MOERT_ERROR_INVALID_ARGUMENT);
  moert_context_destroy(ctx);
}
