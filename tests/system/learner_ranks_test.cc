// The learner on two data-parallel ranks (Gloo on loopback): inside `sfpo local`
// (learner.ranks=2, ranks as threads) and as two `sfpo learner` processes, one of them killed.
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/system/system_harness.h"

namespace sfpo {
namespace system_test {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kRunBound = absl::Seconds(120);

TEST(LearnerRanksTest, SfpoLocalTrainsOnTwoRanksAndCheckpointsTheirShards) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  std::vector<std::string> argv = {testing::SfpoBinary(), "local"};
  for (std::string& a : run->ConfigArgs({"run.total_steps=3", "learner.ranks=2"})) {
    argv.push_back(std::move(a));
  }
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult result, testing::RunProcess(argv, kRunBound));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<nlohmann::json> steps = run->Steps();
  ASSERT_EQ(steps.size(), 3u) << result.err;
  for (const nlohmann::json& s : steps) {
    EXPECT_EQ(s.value("ranks", 0), 2) << s.dump();
    EXPECT_GT(s.value("all_reduce_bytes", int64_t{0}), 0) << s.dump();
    ASSERT_TRUE(s.contains("rank_step_seconds") && s["rank_step_seconds"].is_array()) << s.dump();
    EXPECT_EQ(s["rank_step_seconds"].size(), 2u) << s.dump();
    ExpectConsistentLedger(s);
  }
  // The final checkpoint holds the model once and one optimizer shard per rank.
  const std::filesystem::path last = std::filesystem::path(run->run_dir()) / "step_00000003";
  for (const char* f : {"model.safetensors", "optimizer_shard_0_of_2.pt",
                        "optimizer_shard_1_of_2.pt", "trainer_state.json"}) {
    EXPECT_TRUE(std::filesystem::exists(last / f)) << (last / f);
  }
}

TEST(LearnerRanksTest, OneLearnerProcessRunsLearnerRanksAsThreads) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward("127.0.0.1:0", kRunBound));
  SFPO_ASSERT_OK_AND_ASSIGN(
      Service learner,
      run->StartLearner("127.0.0.1:0", {"run.total_steps=2", "learner.ranks=2"}, kRunBound));
  SFPO_ASSERT_OK_AND_ASSIGN(
      Service worker, run->StartWorker("w0", learner.address(), reward.address(), {}, kRunBound));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult end, learner.process->Wait(kRunBound));
  EXPECT_EQ(end.exit_code, 0) << end.err;
  const std::vector<nlohmann::json> steps = run->Steps();
  ASSERT_EQ(steps.size(), 2u) << end.err;
  for (const nlohmann::json& s : steps) EXPECT_EQ(s.value("ranks", 0), 2) << s.dump();
}

// "... serving gRPC on port N" from a process's stderr, polled.
int AnnouncedPort(testing::Subprocess* p, absl::Duration bound) {
  int port = 0;
  PollUntil(
      [&] {
        const std::string err = p->Stderr();
        const size_t at = err.find("serving gRPC on port ");
        if (at == std::string::npos) return !p->Running();
        port = std::atoi(err.c_str() + at + 21);
        return true;
      },
      bound);
  return port;
}

TEST(LearnerRanksTest, KillingOneLearnerRankEndsTheOtherWithAnErrorNamingIt) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward("127.0.0.1:0", kRunBound));
  SFPO_ASSERT_OK_AND_ASSIGN(int store_port, PickFreePort());
  auto rank_argv = [&](int rank) {
    std::vector<std::string> argv = {testing::SfpoBinary(),
                                     "learner",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--metrics-listen",
                                     "127.0.0.1:0",
                                     "--rank",
                                     absl::StrCat(rank),
                                     "--world-size",
                                     "2",
                                     "--rendezvous",
                                     absl::StrCat("127.0.0.1:", store_port),
                                     "--collective-timeout",
                                     "10"};
    for (std::string& a : run->ConfigArgs({"run.total_steps=200"})) argv.push_back(std::move(a));
    return argv;
  };
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::Subprocess> rank0,
                            testing::Subprocess::Start(rank_argv(0)));
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::Subprocess> rank1,
                            testing::Subprocess::Start(rank_argv(1)));
  const int port = AnnouncedPort(rank0.get(), kRunBound);
  ASSERT_GT(port, 0) << rank0->Stderr() << rank1->Stderr();
  SFPO_ASSERT_OK_AND_ASSIGN(Service worker, run->StartWorker("w0", absl::StrCat("127.0.0.1:", port),
                                                             reward.address(), {}, kRunBound));
  ASSERT_TRUE(PollUntil([&] { return run->Steps().size() >= 2 || !rank0->Running(); }, kRunBound))
      << rank0->Stderr();
  ASSERT_TRUE(rank0->Running()) << rank0->Stderr();
  for (const nlohmann::json& s : run->Steps()) EXPECT_EQ(s.value("ranks", 0), 2) << s.dump();
  ASSERT_TRUE(rank1->Signal(SIGKILL));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult end, rank0->Wait(absl::Seconds(60)));
  EXPECT_NE(end.exit_code, 0);
  EXPECT_THAT(end.err, HasSubstr("rank 1 stopped responding")) << end.err;
}

}  // namespace
}  // namespace system_test
}  // namespace sfpo
