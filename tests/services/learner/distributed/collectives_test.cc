#include "services/learner/distributed/collectives.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "services/learner/distributed/gloo_collectives.h"
#include "tests/services/learner/distributed/rank_threads.h"

namespace sfpo {
namespace {

using ::sfpo::testing::RankThreadsOptions;
using ::sfpo::testing::RunGlooRanks;
using ::testing::AllOf;
using ::testing::HasSubstr;

void ExpectAllOk(const std::vector<absl::Status>& statuses) {
  for (size_t r = 0; r < statuses.size(); ++r) {
    EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
  }
}

TEST(GlooCollectivesTest, AllReduceSumAddsEveryRanksTensor) {
  std::vector<torch::Tensor> results(3);
  ExpectAllOk(RunGlooRanks(3, [&](int rank, Collectives* c) -> absl::Status {
    EXPECT_EQ(c->rank(), rank);
    EXPECT_EQ(c->world_size(), 3);
    torch::Tensor t = torch::arange(5, torch::kFloat64) * (rank + 1);
    SFPO_RETURN_IF_ERROR(c->AllReduceSum(t));
    torch::Tensor n = torch::full({2}, rank, torch::kInt64);
    SFPO_RETURN_IF_ERROR(c->AllReduceSum(n));
    EXPECT_EQ(n[0].item<int64_t>(), 0 + 1 + 2);
    results[rank] = t;
    return absl::OkStatus();
  }));
  for (const torch::Tensor& t : results) {
    EXPECT_TRUE(torch::equal(t, torch::arange(5, torch::kFloat64) * 6));
  }
}

TEST(GlooCollectivesTest, AllGatherConcatenatesShardsInRankOrder) {
  std::vector<torch::Tensor> results(3);
  ExpectAllOk(RunGlooRanks(3, [&](int rank, Collectives* c) -> absl::Status {
    torch::Tensor shard = torch::full({4}, static_cast<float>(rank));
    torch::Tensor full = torch::empty({12});
    SFPO_RETURN_IF_ERROR(c->AllGather(shard, full));
    results[rank] = full;
    return absl::OkStatus();
  }));
  const torch::Tensor expected =
      torch::cat({torch::full({4}, 0.0f), torch::full({4}, 1.0f), torch::full({4}, 2.0f)});
  for (const torch::Tensor& t : results) EXPECT_TRUE(torch::equal(t, expected));
}

TEST(GlooCollectivesTest, ReduceScatterLeavesEachRankItsSliceOfTheSum) {
  std::vector<torch::Tensor> results(2);
  ExpectAllOk(RunGlooRanks(2, [&](int rank, Collectives* c) -> absl::Status {
    torch::Tensor full = torch::arange(6, torch::kFloat64) + 10 * rank;
    torch::Tensor shard = torch::empty({3}, torch::kFloat64);
    SFPO_RETURN_IF_ERROR(c->ReduceScatterSum(full, shard));
    results[rank] = shard;
    return absl::OkStatus();
  }));
  // Sum: [10, 12, 14, 16, 18, 20].
  EXPECT_TRUE(torch::equal(results[0], torch::tensor({10.0, 12.0, 14.0}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(results[1], torch::tensor({16.0, 18.0, 20.0}, torch::kFloat64)));
}

// Three ranks, float32, a large call then a smaller one (the receive buffer is reused), and a
// wrong size refused before any traffic.
TEST(GlooCollectivesTest, ReduceScatterOnThreeRanksReusesItsBufferAndRefusesWrongSizes) {
  std::vector<std::vector<torch::Tensor>> results(3);
  ExpectAllOk(RunGlooRanks(3, [&](int rank, Collectives* c) -> absl::Status {
    for (int64_t n : {5, 2}) {
      torch::Tensor full = torch::arange(3 * n, torch::kFloat32) * (rank + 1);
      torch::Tensor shard = torch::empty({n}, torch::kFloat32);
      SFPO_RETURN_IF_ERROR(c->ReduceScatterSum(full, shard));
      results[rank].push_back(shard);
    }
    torch::Tensor full = torch::zeros({7}), shard = torch::empty({2});
    const absl::Status wrong = c->ReduceScatterSum(full, shard);
    if (wrong.code() != absl::StatusCode::kInvalidArgument) {
      return absl::InternalError(absl::StrCat("wrong size gave ", wrong.ToString()));
    }
    return c->Barrier();
  }));
  // Sum over ranks of arange(3n) * (rank + 1) = 6 * arange(3n); rank r holds slice r.
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(results[r].size(), 2u);
    for (int i = 0; i < 2; ++i) {
      const int64_t n = i == 0 ? 5 : 2;
      EXPECT_TRUE(
          torch::equal(results[r][i], torch::arange(r * n, (r + 1) * n, torch::kFloat32) * 6))
          << "rank " << r << ", n = " << n;
    }
  }
}

TEST(GlooCollectivesTest, BroadcastCopiesTheRootsTensorAndStatsCountTraffic) {
  std::vector<torch::Tensor> results(2);
  std::vector<CollectiveStats> stats(2);
  ExpectAllOk(RunGlooRanks(2, [&](int rank, Collectives* c) -> absl::Status {
    torch::Tensor t = torch::full({8}, static_cast<float>(rank + 5));
    SFPO_RETURN_IF_ERROR(c->Broadcast(t, /*root=*/1));
    torch::Tensor s = torch::ones({16});
    SFPO_RETURN_IF_ERROR(c->AllReduceSum(s));
    results[rank] = t;
    stats[rank] = c->stats();
    return c->Barrier();
  }));
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::equal(results[r], torch::full({8}, 6.0f)));
    EXPECT_EQ(stats[r].calls, 2);
    EXPECT_EQ(stats[r].bytes, 8 * 4 + 16 * 4);
    EXPECT_EQ(stats[r].all_reduce_calls, 1);
    EXPECT_EQ(stats[r].all_reduce_bytes, 16 * 4);
  }
}

TEST(GlooCollectivesTest, AllGatherRejectsAWronglySizedOutput) {
  ExpectAllOk(RunGlooRanks(2, [&](int, Collectives* c) -> absl::Status {
    torch::Tensor shard = torch::zeros({3});
    torch::Tensor full = torch::zeros({5});
    EXPECT_THAT(c->AllGather(shard, full),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected 6")));
    return absl::OkStatus();
  }));
}

TEST(GlooCollectivesTest, ARankThatLeavesMakesTheOthersFailNamingIt) {
  RankThreadsOptions options;
  options.timeout = absl::Seconds(5);
  options.heartbeat_interval = absl::Milliseconds(100);
  options.barrier_at_end = false;
  // Ranks 0 and 2 both diagnose before either leaves (a rank that leaves stops beating).
  absl::Mutex mu;
  int diagnosed = 0;
  std::vector<absl::Status> statuses = RunGlooRanks(
      3,
      [&](int rank, Collectives* c) -> absl::Status {
        if (rank == 1) return absl::OkStatus();  // leaves: its group and heartbeat stop
        torch::Tensor t = torch::ones({1000});
        absl::Status s = c->AllReduceSum(t);
        absl::MutexLock lock(&mu);
        ++diagnosed;
        mu.Await(absl::Condition(
            +[](int* n) { return *n == 2; }, &diagnosed));
        return s;
      },
      options);
  EXPECT_TRUE(statuses[1].ok()) << statuses[1];
  for (int r : {0, 2}) {
    EXPECT_FALSE(statuses[r].ok()) << "rank " << r;
    EXPECT_THAT(statuses[r].message(),
                AllOf(HasSubstr("all_reduce"), HasSubstr("rank 1 stopped responding")))
        << "rank " << r << ": " << statuses[r];
  }
}

TEST(GlooCollectivesTest, ARankThatDoesNotArriveMakesTheOthersTimeOutNamingIt) {
  RankThreadsOptions options;
  options.timeout = absl::Seconds(1);
  options.heartbeat_interval = absl::Milliseconds(50);
  options.barrier_at_end = false;
  absl::Notification rank0_failed;
  std::vector<absl::Status> statuses = RunGlooRanks(
      2,
      [&](int rank, Collectives* c) -> absl::Status {
        torch::Tensor t = torch::ones({10});
        if (rank == 1) {
          rank0_failed.WaitForNotification();  // alive, but never reaches the collective
          return absl::OkStatus();
        }
        absl::Status s = c->AllReduceSum(t);
        rank0_failed.Notify();
        // The group is unusable from now on.
        EXPECT_EQ(c->Barrier().code(), s.code());
        return s;
      },
      options);
  EXPECT_THAT(statuses[0], StatusIs(absl::StatusCode::kDeadlineExceeded,
                                    HasSubstr("rank 1 (at collective #0) did not reach")));
}

TEST(GlooCollectivesTest, JoiningFailsWithinTheTimeoutWhenARankNeverStarts) {
  absl::StatusOr<std::unique_ptr<RendezvousServer>> server =
      RendezvousServer::Start(0, absl::Seconds(5));
  ASSERT_THAT(server.status(), IsOk());
  GlooOptions o;
  o.rank = 0;
  o.world_size = 2;
  o.store_port = (*server)->port();
  o.device_host = "127.0.0.1";
  o.timeout = absl::Seconds(2);
  EXPECT_THAT(CreateGlooCollectives(o).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("is every rank started")));
}

TEST(GlooCollectivesTest, CreateRejectsARankOutsideTheWorld) {
  GlooOptions o;
  o.rank = 2;
  o.world_size = 2;
  o.store_port = 1234;
  EXPECT_THAT(CreateGlooCollectives(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 2")));
  o.rank = 0;
  o.store_port = 0;
  EXPECT_THAT(CreateGlooCollectives(o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
}

TEST(LocalCollectivesTest, OneRankReducesToCopies) {
  std::unique_ptr<Collectives> c = MakeLocalCollectives();
  EXPECT_EQ(c->world_size(), 1);
  torch::Tensor t = torch::arange(4, torch::kFloat32);
  ASSERT_THAT(c->AllReduceSum(t), IsOk());
  EXPECT_TRUE(torch::equal(t, torch::arange(4, torch::kFloat32)));
  torch::Tensor full = torch::zeros({4});
  ASSERT_THAT(c->AllGather(t, full), IsOk());
  EXPECT_TRUE(torch::equal(full, t));
  EXPECT_THAT(c->Broadcast(t, 1), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace sfpo
