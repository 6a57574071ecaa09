//===- CommCudaTest.cpp - The CUDA group (NCCL) and moert_all_reduce ------===//
//
// CUDA contexts with NCCL communicators: a group of one is the identity (and
// agrees with the path without a communicator), a group of two on devices 0
// and 1 sums within one bf16 rounding of the rank-order f32 sum with the same
// bits on both ranks and from run to run, and the errors (group size,
// abort, mismatched calls). Every test skips without CUDA in the build, a
// CUDA device, or NCCL in the build; the two-rank tests also without a
// second device.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

using namespace moert_test;

namespace {

/// Whether a CUDA context can be created on `device`.
bool deviceWorks(int device) {
  moert_context *probe = nullptr;
  if (moert_context_create(MOERT_BACKEND_CUDA, device, &probe) !=
      MOERT_SUCCESS)
    return false;
  moert_context_destroy(probe);
  return true;
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

class CommCudaTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!moert_backend_available(MOERT_BACKEND_CUDA))
      GTEST_SKIP() << "this runtime was built without CUDA";
    moert_context *probe = nullptr;
    if (moert_context_create(MOERT_BACKEND_CUDA, 0, &probe) != MOERT_SUCCESS)
      GTEST_SKIP() << "no CUDA device: " << moert_last_error();
    moert_context_destroy(probe);
    moert_comm *comm = nullptr;
    moert_status status =
        moert_comm_create_group(MOERT_BACKEND_CUDA, 1, nullptr, &comm);
    if (status == MOERT_ERROR_BACKEND_UNAVAILABLE)
      GTEST_SKIP() << "no NCCL: " << moert_last_error();
    ASSERT_EQ(status, MOERT_SUCCESS) << moert_last_error();
    moert_comm_destroy(comm);
  }
};

/// Context memory holding `bytes` bytes.
void *upload(moert_context *ctx, const void *host, int64_t bytes) {
  void *p = nullptr;
  EXPECT_EQ(moert_alloc_ctx(ctx, bytes, &p), MOERT_SUCCESS)
      << moert_context_error(ctx);
  EXPECT_EQ(moert_copy_to_device(ctx, p, host, bytes), MOERT_SUCCESS)
      << moert_context_error(ctx);
  return p;
}

std::vector<uint16_t> download(moert_context *ctx, const void *p,
                               int64_t elements) {
  std::vector<uint16_t> v(static_cast<size_t>(elements));
  EXPECT_EQ(moert_copy_to_host(ctx, v.data(), p, elements * 2), MOERT_SUCCESS)
      << moert_context_error(ctx);
  return v;
}

std::vector<uint16_t> bitsOf(const Buffer &b) {
  std::vector<uint16_t> v(static_cast<size_t>(b.size()));
  std::memcpy(v.data(), b.data(), v.size() * 2);
  return v;
}

/// bf16 bits in the order of their values (for ulp distances).
int orderedBf16(uint16_t bits) {
  return (bits & 0x8000) ? -int(bits & 0x7fff) : int(bits & 0x7fff);
}

/// One rank's results of one run.
struct RankRun {
  moert_status status = MOERT_SUCCESS;
  std::string error;
  std::vector<uint16_t> outOfPlace, inPlace;
};

/// Runs `body(rank, ctx, result)` on one thread per device of `devices`,
/// each with a CUDA context on its device attached to its communicator of
/// one group, the context current.
std::vector<RankRun> runGroup(
    const std::vector<int32_t> &devices,
    const std::function<moert_status(int, moert_context *, RankRun &)> &body,
    int64_t timeoutMs = 60000) {
  const int n = int(devices.size());
  std::vector<moert_comm *> comms(devices.size(), nullptr);
  std::vector<RankRun> results(devices.size());
  moert_status created = moert_comm_create_group(MOERT_BACKEND_CUDA, n,
                                                 devices.data(), comms.data());
  EXPECT_EQ(created, MOERT_SUCCESS) << moert_last_error();
  if (created != MOERT_SUCCESS) {
    for (RankRun &r : results)
      r.status = created;
    return results;
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      RankRun &result = results[size_t(r)];
      moert_context *ctx = nullptr;
      result.status =
          moert_context_create(MOERT_BACKEND_CUDA, devices[size_t(r)], &ctx);
      if (result.status != MOERT_SUCCESS) {
        result.error = moert_last_error();
        moert_comm_abort(comms[size_t(r)], result.error.c_str());
        moert_comm_destroy(comms[size_t(r)]);
        return;
      }
      EXPECT_EQ(moert_context_set_comm(ctx, comms[size_t(r)]), MOERT_SUCCESS)
          << moert_context_error(ctx);
      EXPECT_EQ(moert_comm_set_timeout(comms[size_t(r)], timeoutMs),
                MOERT_SUCCESS);
      moert_set_current_context(ctx);
      result.status = body(r, ctx, result);
      if (result.status != MOERT_SUCCESS)
        result.error = moert_context_error(ctx);
      moert_set_current_context(nullptr);
      moert_context_destroy(ctx);
      moert_comm_destroy(comms[size_t(r)]);
    });
  for (std::thread &t : threads)
    t.join();
  return results;
}

/// Rank r's random bf16 input of `elements` elements.
Buffer rankInput(int r, int64_t elements) {
  std::mt19937_64 rng(0x5eed0000u + uint64_t(r));
  return randomBuffer(MOERT_BF16, elements, rng, 4.0);
}

/// On the current context: the all-reduce of `input` out of place, then in
/// place; both results in `result`.
moert_status allReduceBothWays(moert_context *ctx, const Buffer &input,
                               int64_t T, int64_t H, int64_t groupSize,
                               RankRun &result) {
  const int64_t bytes = input.byteSize();
  Buffer poison(MOERT_BF16, input.size());
  poison.poison();
  void *in = upload(ctx, input.data(), bytes);
  void *out = upload(ctx, poison.data(), bytes);
  void *inPlace = upload(ctx, input.data(), bytes);
  moert_status status =
      moert_all_reduce(in, out, MOERT_BF16, T, H, groupSize);
  if (status == MOERT_SUCCESS)
    status = moert_all_reduce(inPlace, inPlace, MOERT_BF16, T, H, groupSize);
  if (status == MOERT_SUCCESS)
    status = moert_context_synchronize(ctx);
  if (status == MOERT_SUCCESS) {
    result.outOfPlace = download(ctx, out, input.size());
    result.inPlace = download(ctx, inPlace, input.size());
  }
  moert_free_ctx(ctx, in);
  moert_free_ctx(ctx, out);
  moert_free_ctx(ctx, inPlace);
  return status;
}

TEST_F(CommCudaTest, GroupOfOneIsTheIdentity) {
  const int64_t T = 37, H = 96;
  moert_context *ctx = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CUDA, 0, &ctx), MOERT_SUCCESS)
      << moert_last_error();
  moert_comm *comm = nullptr;
  ASSERT_EQ(moert_comm_create_group(MOERT_BACKEND_CUDA, 1, nullptr, &comm),
            MOERT_SUCCESS)
      << moert_last_error();
  EXPECT_EQ(moert_comm_rank(comm), 0);
  EXPECT_EQ(moert_comm_size(comm), 1);
  ASSERT_EQ(moert_context_set_comm(ctx, comm), MOERT_SUCCESS)
      << moert_context_error(ctx);
  moert_set_current_context(ctx);

  const Buffer input = rankInput(0, T * H);
  RankRun withComm, withoutComm;
  EXPECT_EQ(allReduceBothWays(ctx, input, T, H, 1, withComm), MOERT_SUCCESS)
      << moert_context_error(ctx);
  EXPECT_EQ(withComm.outOfPlace, bitsOf(input));
  EXPECT_EQ(withComm.inPlace, bitsOf(input));
  // No elements: nothing to do.
  EXPECT_EQ(moert_all_reduce(nullptr, nullptr, MOERT_BF16, 0, H, 1),
            MOERT_SUCCESS)
      << moert_context_error(ctx);

  // The path without a communicator (a copy) gives the same bits.
  ASSERT_EQ(moert_context_set_comm(ctx, nullptr), MOERT_SUCCESS);
  EXPECT_EQ(allReduceBothWays(ctx, input, T, H, 1, withoutComm),
            MOERT_SUCCESS)
      << moert_context_error(ctx);
  EXPECT_EQ(withoutComm.outOfPlace, withComm.outOfPlace);
  EXPECT_EQ(withoutComm.inPlace, withComm.inPlace);

  EXPECT_EQ(moert_context_status(ctx), MOERT_SUCCESS)
      << moert_context_error(ctx);
  moert_set_current_context(nullptr);
  moert_context_destroy(ctx);
  moert_comm_destroy(comm);
}

TEST_F(CommCudaTest, GroupSizeMustMatchTheCommunicator) {
  moert_context *ctx = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CUDA, 0, &ctx), MOERT_SUCCESS)
      << moert_last_error();
  moert_comm *comm = nullptr;
  ASSERT_EQ(moert_comm_create_group(MOERT_BACKEND_CUDA, 1, nullptr, &comm),
            MOERT_SUCCESS)
      << moert_last_error();
  ASSERT_EQ(moert_context_set_comm(ctx, comm), MOERT_SUCCESS);
  moert_set_current_context(ctx);
  const int64_t T = 3, H = 8;
  const Buffer input = rankInput(0, T * H);
  void *in = upload(ctx, input.data(), input.byteSize());
  EXPECT_EQ(moert_all_reduce(in, in, MOERT_BF16, T, H, 2),
            MOERT_ERROR_INVALID_ARGUMENT);
  const std::string message = moert_context_error(ctx);
  EXPECT_TRUE(contains(message, "compiled for a group of 2 ranks, but the "
                                "context's communicator has 1"))
      << message;
  moert_free_ctx(ctx, in);
  moert_set_current_context(nullptr);
  moert_context_destroy(ctx);
  moert_comm_destroy(comm);
}

TEST_F(CommCudaTest, AbortEndsLaterCollectives) {
  moert_context *ctx = nullptr;
  ASSERT_EQ(moert_context_create(MOERT_BACKEND_CUDA, 0, &ctx), MOERT_SUCCESS)
      << moert_last_error();
  moert_comm *comm = nullptr;
  ASSERT_EQ(moert_comm_create_group(MOERT_BACKEND_CUDA, 1, nullptr, &comm),
            MOERT_SUCCESS)
      << moert_last_error();
  ASSERT_EQ(moert_context_set_comm(ctx, comm), MOERT_SUCCESS);
  moert_set_current_context(ctx);
  const int64_t T = 3, H = 8;
  const Buffer input = rankInput(0, T * H);
  void *in = upload(ctx, input.data(), input.byteSize());
  ASSERT_EQ(moert_all_reduce(in, in, MOERT_BF16, T, H, 1), MOERT_SUCCESS)
      << moert_context_error(ctx);
  moert_comm_abort(comm, "stopped by the test");
  moert_comm_abort(comm, "a second reason is ignored");
  for (int attempt = 0; attempt < 2; ++attempt) {
    EXPECT_EQ(moert_all_reduce(in, in, MOERT_BF16, T, H, 1),
              MOERT_ERROR_COLLECTIVE);
    const std::string message = moert_context_error(ctx);
    EXPECT_TRUE(contains(message, "stopped by the test")) << message;
    moert_context_clear_error(ctx);
  }
  moert_free_ctx(ctx, in);
  moert_set_current_context(nullptr);
  moert_context_destroy(ctx);
  moert_comm_destroy(comm);
}

TEST_F(CommCudaTest, TwoRanksSumWithinOneRoundingIdentically) {
  if (!deviceWorks(1))
    GTEST_SKIP() << "needs a second CUDA device: " << moert_last_error();
  for (auto [T, H] : {std::pair<int64_t, int64_t>{37, 96}, {256, 4096}}) {
    SCOPED_TRACE("T = " + std::to_string(T) + ", H = " + std::to_string(H));
    const int64_t elements = T * H;
    std::vector<std::vector<RankRun>> runs;
    for (int run = 0; run < 2; ++run) {
      runs.push_back(runGroup(
          {0, 1}, [&](int r, moert_context *ctx, RankRun &result) {
            return allReduceBothWays(ctx, rankInput(r, elements), T, H, 2,
                                     result);
          }));
      for (int r = 0; r < 2; ++r)
        ASSERT_EQ(runs.back()[size_t(r)].status, MOERT_SUCCESS)
            << "run " << run << ", rank " << r << ": "
            << runs.back()[size_t(r)].error;
    }
    const std::vector<uint16_t> &result = runs[0][0].outOfPlace;
    for (int run = 0; run < 2; ++run)
      for (int r = 0; r < 2; ++r) {
        // The same bits on every rank, in place or not, run after run.
        EXPECT_EQ(runs[size_t(run)][size_t(r)].outOfPlace, result)
            << "run " << run << ", rank " << r;
        EXPECT_EQ(runs[size_t(run)][size_t(r)].inPlace, result)
            << "run " << run << ", rank " << r << ", in place";
      }
    // Within one bf16 rounding of the f32 sum in rank order, rounded once.
    const std::vector<uint16_t> in0 = bitsOf(rankInput(0, elements)),
                                in1 = bitsOf(rankInput(1, elements));
    int64_t inexact = 0;
    for (int64_t i = 0; i < elements; ++i) {
      float sum = moert::bf16ToFloat(in0[size_t(i)]);
      sum += moert::bf16ToFloat(in1[size_t(i)]);
      const uint16_t expected = moert::floatToBf16(sum);
      const int ulps =
          std::abs(orderedBf16(result[size_t(i)]) - orderedBf16(expected));
      ASSERT_LE(ulps, 1) << "element " << i << ": got "
                         << moert::bf16ToFloat(result[size_t(i)])
                         << ", expected " << moert::bf16ToFloat(expected);
      inexact += ulps != 0;
    }
    RecordProperty("elements_one_ulp_off_" + std::to_string(elements),
                   std::to_string(inexact));
  }
}

TEST_F(CommCudaTest, MismatchedCallsFailEveryRank) {
  if (!deviceWorks(1))
    GTEST_SKIP() << "needs a second CUDA device: " << moert_last_error();
  auto results =
      runGroup({0, 1}, [](int r, moert_context *ctx, RankRun &result) {
        // Rank 1 runs the collective on a different hidden size.
        const int64_t T = 4, H = r == 1 ? 16 : 8;
        return allReduceBothWays(ctx, rankInput(r, T * H), T, H, 2, result);
      });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[size_t(r)].status, MOERT_ERROR_COLLECTIVE)
        << "rank " << r;
    EXPECT_TRUE(contains(results[size_t(r)].error,
                         "collective #0 differs between ranks"))
        << "rank " << r << ": " << results[size_t(r)].error;
  }
}

TEST_F(CommCudaTest, ARankThatFailsEndsTheOthersWait) {
  if (!deviceWorks(1))
    GTEST_SKIP() << "needs a second CUDA device: " << moert_last_error();
  auto results =
      runGroup({0, 1}, [](int r, moert_context *ctx, RankRun &result) {
        // Rank 1 fails before the collective (a wrong group size), which
        // aborts its group; rank 0 must not wait for it.
        return allReduceBothWays(ctx, rankInput(r, 32), 4, 8, r == 1 ? 3 : 2,
                                 result);
      });
  EXPECT_EQ(results[1].status, MOERT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(results[0].status, MOERT_ERROR_COLLECTIVE);
  EXPECT_TRUE(contains(results[0].error, "rank 1 failed")) << results[0].error;
}

TEST_F(CommCudaTest, TheWaitForTheOthersTimesOut) {
  if (!deviceWorks(1))
    GTEST_SKIP() << "needs a second CUDA device: " << moert_last_error();
  auto results = runGroup(
      {0, 1},
      [](int r, moert_context *ctx, RankRun &result) {
        if (r == 1) {
          // Rank 1 comes late (after rank 0's timeout) and finds the group
          // ended.
          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        }
        return allReduceBothWays(ctx, rankInput(r, 32), 4, 8, 2, result);
      },
      /*timeoutMs=*/300);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[size_t(r)].status, MOERT_ERROR_COLLECTIVE);
    EXPECT_TRUE(contains(results[size_t(r)].error,
                         "rank 0 waited 300 ms for the others to arrive for "
                         "rank(s) 1"))
        << "rank " << r << ": " << results[size_t(r)].error;
  }
}

} // namespace
