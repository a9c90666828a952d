// The learner stopped mid-run (SIGTERM: it checkpoints) and restarted with run.resume=true on
// the same port: the worker reconnects and resyncs its weights, steps and policy versions carry
// on from the checkpoint, the step log continues, and the ledger stays consistent.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/system/system_harness.h"

namespace sfpo {
namespace system_test {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kStartBound = absl::Seconds(60);
constexpr absl::Duration kRunBound = absl::Seconds(90);
// The first learner's run is too long to end before the SIGTERM; the resumed one goes on for
// kStepsAfterRestart more steps and ends.
constexpr int64_t kLongRun = 100000;
constexpr int64_t kStepsAfterRestart = 3;

TEST(LearnerRestartTest, ResumesFromTheSigtermCheckpointAndWorkersReconnect) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  const std::vector<std::string> sets = {absl::StrCat("run.total_steps=", kLongRun),
                                         "rollout.lease_timeout_s=5"};
  SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward("127.0.0.1:0", kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(Service learner, run->StartLearner("127.0.0.1:0", sets, kStartBound));
  const std::string learner_address = learner.address();
  SFPO_ASSERT_OK_AND_ASSIGN(
      Service worker, run->StartWorker("w0", learner_address, reward.address(), sets, kStartBound));

  ASSERT_TRUE(PollUntil([&] { return run->Steps().size() >= 2; }, kRunBound))
      << learner.process->Stderr();
  ASSERT_TRUE(learner.process->Signal(SIGTERM));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult stopped, learner.process->Wait(kRunBound));
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_THAT(stopped.err, HasSubstr("checkpoint written"));
  const size_t steps_before = run->Steps().size();
  ASSERT_GE(steps_before, 2u);
  const int64_t total_steps = static_cast<int64_t>(steps_before) + kStepsAfterRestart;

  // The worker outlives the learner, waiting for it.
  SFPO_ASSERT_OK(GetWorkerState(worker.address()).status());

  std::vector<std::string> resume = {absl::StrCat("run.total_steps=", total_steps),
                                     "rollout.lease_timeout_s=5", "run.resume=true"};
  SFPO_ASSERT_OK_AND_ASSIGN(Service restarted,
                            run->StartLearner(learner_address, resume, kStartBound));
  EXPECT_EQ(restarted.port, learner.port);
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult done, restarted.process->Wait(kRunBound));
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_THAT(done.err, HasSubstr(absl::StrCat("resumed from step ", steps_before)));

  // One line per step, 1..total, policy versions increasing with them across the restart.
  const std::vector<nlohmann::json> steps = run->Steps();
  ASSERT_EQ(steps.size(), static_cast<size_t>(total_steps));
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(steps[i].dump());
    EXPECT_EQ(steps[i].value("step", -1), static_cast<int64_t>(i + 1));
    EXPECT_EQ(steps[i].value("policy_version", -1), static_cast<int64_t>(i + 1));
    ExpectConsistentLedger(steps[i]);
    if (i == 0) continue;
    // The ledger carries on: its monotonic counts never go back, across the restart too.
    for (const char* key :
         {"leased", "scored", "trained", "stale", "expired", "released", "rejected"}) {
      EXPECT_GE(Samples(steps[i], key), Samples(steps[i - 1], key)) << key;
    }
    EXPECT_GE(steps[i].value("wallclock_s", 0.0), steps[i - 1].value("wallclock_s", 0.0));
  }
  // The worker reconnected and trained every step after the restart (it is the only one),
  // then heard "done" and exited by itself.
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult worker_done, worker.process->Wait(kRunBound));
  EXPECT_EQ(worker_done.exit_code, 0) << worker_done.err;
}

}  // namespace
}  // namespace system_test
}  // namespace sfpo
