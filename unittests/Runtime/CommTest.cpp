//===- CommTest.cpp - The CPU group and moert_all_reduce ------------------===//
//
// Ranks as threads of one process, each with its own CPU context and its
// rank's communicator: the sum over the ranks (values, determinism, in
// place), and every way a group can go wrong ending every rank with a clear
// error instead of a hang (mismatched calls, a rank that fails, one that
// leaves early, one that never comes).
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

using namespace moert_test;

namespace {

/// One rank's outcome.
struct RankResult {
  moert_status status = MOERT_SUCCESS;
  std::string error;
  std::vector<uint16_t> output;
};

/// Runs `body(rank, ctx)` on `n` threads, each with a CPU context attached to
/// its communicator of one group; returns each rank's result.
std::vector<RankResult>
runGroup(int n,
         const std::function<moert_status(int, moert_context *, RankResult &)>
             &body,
         int64_t timeoutMs = 10000) {
  std::vector<moert_comm *> comms(static_cast<size_t>(n), nullptr);
  EXPECT_EQ(moert_comm_create_group(MOERT_BACKEND_CPU, n, nullptr,
                                    comms.data()),
            MOERT_SUCCESS)
      << moert_last_error();
  std::vector<RankResult> results(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      moert_context *ctx = nullptr;
      EXPECT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &ctx),
                MOERT_SUCCESS);
      EXPECT_EQ(moert_context_set_comm(ctx, comms[size_t(r)]), MOERT_SUCCESS);
      EXPECT_EQ(moert_comm_set_timeout(comms[size_t(r)], timeoutMs),
                MOERT_SUCCESS);
      moert_set_current_context(ctx);
      RankResult &result = results[size_t(r)];
      result.status = body(r, ctx, result);
      if (result.status != MOERT_SUCCESS)
        result.error = moert_context_error(ctx);
      moert_set_current_context(nullptr);
      moert_context_destroy(ctx);
      // Leaving the group ends what the others still wait for.
      moert_comm_destroy(comms[size_t(r)]);
    });
  for (std::thread &t : threads)
    t.join();
  return results;
}

/// Rank r's input element i: distinct per rank, exact in bf16.
uint16_t inputBits(int r, int64_t i) {
  float v = float((i * 7 + r * 13) % 23 - 11) * 0.125f + float(r) * 0.5f;
  return moert::floatToBf16(v);
}

/// All-reduce of T x H bf16 on this rank; `inPlace` uses one buffer.
moert_status allReduce(int r, RankResult &result, int64_t T, int64_t H,
                       bool inPlace, int64_t groupSize) {
  const int64_t n = T * H;
  auto *in = static_cast<uint16_t *>(moert_alloc(n * 2 + 2));
  auto *out = inPlace ? in : static_cast<uint16_t *>(moert_alloc(n * 2 + 2));
  for (int64_t i = 0; i < n; ++i)
    in[i] = inputBits(r, i);
  moert_status status = moert_all_reduce(in, out, MOERT_BF16, T, H, groupSize);
  result.output.assign(out, out + n);
  moert_free(in);
  if (!inPlace)
    moert_free(out);
  return status;
}

TEST(CommTest, SumsInRankOrderIdenticallyOnEveryRank) {
  for (int n : {1, 2, 3, 4}) {
    for (bool inPlace : {false, true}) {
      SCOPED_TRACE("ranks " + std::to_string(n) +
                   (inPlace ? ", in place" : ", out of place"));
      const int64_t T = 37, H = 29; // slices not multiples of anything
      auto results = runGroup(n, [&](int r, moert_context *, RankResult &res) {
        return allReduce(r, res, T, H, inPlace, n);
      });
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(results[size_t(r)].status, MOERT_SUCCESS)
            << results[size_t(r)].error;
        // Identical bits on every rank.
        EXPECT_EQ(results[size_t(r)].output, results[0].output);
      }
      // The f32 sum in rank order, rounded once.
      for (int64_t i = 0; i < T * H; ++i) {
        float sum = moert::bf16ToFloat(inputBits(0, i));
        for (int r = 1; r < n; ++r)
          sum += moert::bf16ToFloat(inputBits(r, i));
        ASSERT_EQ(results[0].output[size_t(i)], moert::floatToBf16(sum))
            << "element " << i;
      }
    }
  }
}

TEST(CommTest, WithoutACommunicatorTheGroupIsOne) {
  moert_context *ctx = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &ctx), MOERT_SUCCESS);
  moert_set_current_context(ctx);
  RankResult result;
  EXPECT_EQ(allReduce(0, result, 5, 8, /*inPlace=*/false, 1), MOERT_SUCCESS);
  for (int64_t i = 0; i < 40; ++i)
    EXPECT_EQ(result.output[size_t(i)], inputBits(0, i));
  // A program compiled for 4 ranks is not run as a group of one.
  EXPECT_EQ(allReduce(0, result, 5, 8, false, 4), MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_context_error(ctx))
                .find("compiled for a group of 4 ranks, but the context has "
                      "no communicator"),
            std::string::npos)
      << moert_context_error(ctx);
  moert_set_current_context(nullptr);
  moert_context_destroy(ctx);
}

TEST(CommTest, GroupSizeMustMatchTheCommunicator) {
  auto results = runGroup(2, [](int r, moert_context *, RankResult &res) {
    return allReduce(r, res, 3, 8, false, 4);
  });
  for (const RankResult &r : results) {
    EXPECT_EQ(r.status, MOERT_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.error.find("compiled for a group of 4 ranks, but the "
                           "context's communicator has 2"),
              std::string::npos)
        << r.error;
  }
}

TEST(CommTest, MismatchedCallsFailEveryRank) {
  auto results = runGroup(3, [](int r, moert_context *, RankResult &res) {
    // Rank 2 runs the collective on a different hidden size.
    return allReduce(r, res, 4, r == 2 ? 16 : 8, false, 3);
  });
  for (const RankResult &r : results) {
    EXPECT_EQ(r.status, MOERT_ERROR_COLLECTIVE);
    EXPECT_NE(r.error.find("collective #0 differs between ranks"),
              std::string::npos)
        << r.error;
    EXPECT_NE(r.error.find("H = 16"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("H = 8"), std::string::npos) << r.error;
  }
}

TEST(CommTest, AFailedRankEndsTheOthers) {
  auto results = runGroup(3, [](int r, moert_context *ctx, RankResult &res) {
    if (r == 1) {
      // Any error on the rank's context (here a bad argument) aborts its
      // group: the rank will run no more collectives.
      EXPECT_EQ(moert_add(nullptr, nullptr, nullptr, MOERT_BF16, 1, 1, 1.0f),
                MOERT_ERROR_INVALID_ARGUMENT);
      return moert_context_status(ctx);
    }
    return allReduce(r, res, 4, 8, false, 3);
  });
  EXPECT_EQ(results[1].status, MOERT_ERROR_INVALID_ARGUMENT);
  for (int r : {0, 2}) {
    EXPECT_EQ(results[size_t(r)].status, MOERT_ERROR_COLLECTIVE);
    EXPECT_NE(results[size_t(r)].error.find("rank 1 failed: moert_add"),
              std::string::npos)
        << results[size_t(r)].error;
  }
}

TEST(CommTest, ARankThatLeavesEarlyEndsTheOthers) {
  auto results = runGroup(2, [](int r, moert_context *, RankResult &res) {
    moert_status status = allReduce(r, res, 2, 8, false, 2);
    // Rank 0 runs a second collective that rank 1 never runs.
    if (status == MOERT_SUCCESS && r == 0)
      status = allReduce(r, res, 2, 8, false, 2);
    return status;
  });
  EXPECT_EQ(results[1].status, MOERT_SUCCESS);
  EXPECT_EQ(results[0].status, MOERT_ERROR_COLLECTIVE);
  EXPECT_NE(results[0].error.find("collective #1: rank 1 has left the group"),
            std::string::npos)
      << results[0].error;
}

TEST(CommTest, ARankThatNeverComesTimesOut) {
  std::atomic<bool> released{false};
  auto results = runGroup(
      2,
      [&](int r, moert_context *, RankResult &res) -> moert_status {
        if (r == 1) {
          // Busy elsewhere, past the others' timeout, still in the group.
          while (!released)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          return MOERT_SUCCESS;
        }
        moert_status status = allReduce(r, res, 2, 8, false, 2);
        released = true;
        return status;
      },
      /*timeoutMs=*/200);
  EXPECT_EQ(results[0].status, MOERT_ERROR_COLLECTIVE);
  EXPECT_NE(results[0].error.find("rank 0 waited 200 ms for the others to "
                                  "arrive for rank(s) 1"),
            std::string::npos)
      << results[0].error;
}

TEST(CommTest, CreationChecksItsArguments) {
  moert_comm *comms[2] = {nullptr, nullptr};
  EXPECT_EQ(moert_comm_create_group(MOERT_BACKEND_CPU, 0, nullptr, comms),
            MOERT_ERROR_INVALID_ARGUMENT);
  int32_t devices[2] = {0, 1};
  EXPECT_EQ(moert_comm_create_group(MOERT_BACKEND_CPU, 2, devices, comms),
            MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moert_last_error()).find("only device 0"),
            std::string::npos);
  EXPECT_EQ(comms[0], nullptr);
  ASSERT_EQ(moert_comm_create_group(MOERT_BACKEND_CPU, 2, nullptr, comms),
            MOERT_SUCCESS);
  EXPECT_EQ(moert_comm_rank(comms[1]), 1);
  EXPECT_EQ(moert_comm_size(comms[1]), 2);
  EXPECT_EQ(moert_comm_size(nullptr), -1);
  EXPECT_EQ(moert_comm_set_timeout(comms[0], -1),
            MOERT_ERROR_INVALID_ARGUMENT);
  // One context per communicator.
  moert_context *a = nullptr, *b = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &a), MOERT_SUCCESS);
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &b), MOERT_SUCCESS);
  EXPECT_EQ(moert_context_set_comm(a, comms[0]), MOERT_SUCCESS);
  EXPECT_EQ(moert_context_set_comm(b, comms[0]), MOERT_ERROR_INVALID_ARGUMENT);
  // Destroying the communicator first detaches it from its context.
  moert_comm_destroy(comms[0]);
  moert_comm_destroy(comms[1]);
  moert_context_destroy(a);
  moert_context_destroy(b);
}

} // namespace
