#include "services/learner/distributed/rank_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "common/status_matchers.h"
#include "tests/services/learner/distributed/rank_threads.h"

namespace sfpo {
namespace {

TEST(RankCommandsTest, FollowersReceiveTheLeadersCommandsAndBatchesInOrder) {
  RolloutBatch batch;
  batch.group_size = 2;
  batch.input_ids = torch::arange(12, torch::kInt64).reshape({4, 3});
  batch.response_mask =
      torch::tensor({0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1}, torch::kFloat32).reshape({4, 3});
  batch.rewards = torch::tensor({1.0, 0.0, 0.5, 0.25}, torch::kFloat64);
  batch.behavior_logp = -torch::rand({4, 3});
  std::vector<std::vector<RankCommand>> received(3);
  std::vector<absl::Status> st = testing::RunGlooRanks(3, [&](int rank, Collectives* c) {
    if (rank == 0) {
      RankCommand step;
      step.kind = RankCommand::Kind::kStep;
      step.step = 4;
      step.batch = batch;
      SFPO_RETURN_IF_ERROR(SendCommand(c, step));
      RankCommand restore;
      restore.kind = RankCommand::Kind::kRestore;
      restore.text = "/runs/x/step_00000004";
      SFPO_RETURN_IF_ERROR(SendCommand(c, restore));
      return SendCommand(c, RankCommand{});  // kStop
    }
    while (true) {
      SFPO_ASSIGN_OR_RETURN(RankCommand cmd, ReceiveCommand(c, absl::Seconds(30)));
      received[rank].push_back(cmd);
      if (cmd.kind == RankCommand::Kind::kStop) return absl::OkStatus();
    }
  });
  for (int r = 0; r < 3; ++r) ASSERT_THAT(st[r], IsOk()) << "rank " << r;
  for (int r : {1, 2}) {
    ASSERT_EQ(received[r].size(), 3u);
    const RankCommand& step = received[r][0];
    EXPECT_EQ(step.kind, RankCommand::Kind::kStep);
    EXPECT_EQ(step.step, 4);
    EXPECT_EQ(step.batch.group_size, 2);
    EXPECT_TRUE(torch::equal(step.batch.input_ids, batch.input_ids));
    EXPECT_TRUE(torch::equal(step.batch.response_mask, batch.response_mask));
    EXPECT_TRUE(torch::equal(step.batch.rewards, batch.rewards));
    EXPECT_TRUE(torch::equal(step.batch.behavior_logp, batch.behavior_logp));
    EXPECT_EQ(received[r][1].kind, RankCommand::Kind::kRestore);
    EXPECT_EQ(received[r][1].text, "/runs/x/step_00000004");
    EXPECT_EQ(received[r][2].kind, RankCommand::Kind::kStop);
  }
}

TEST(RankCommandsTest, AFollowerWhoseLeaderIsGoneFailsInsteadOfWaiting) {
  testing::RankThreadsOptions options;
  options.barrier_at_end = false;
  options.timeout = absl::Seconds(5);
  std::vector<absl::Status> st = testing::RunGlooRanks(
      2,
      [&](int rank, Collectives* c) -> absl::Status {
        if (rank == 0) return absl::OkStatus();  // the leader leaves without a word
        return ReceiveCommand(c, absl::Seconds(2)).status();
      },
      options);
  EXPECT_FALSE(st[1].ok());
  EXPECT_THAT(st[1].message(), ::testing::HasSubstr("from rank 0"));
}

}  // namespace
}  // namespace sfpo
