// The reward verifier away: absent at the start, then killed mid-run and restarted on the same
// port. Workers back off and resume; every group is scored once the verifier is back, nothing
// expires, nothing is refused, and training goes on. (The run is long enough that it cannot end
// while the test is looking away; once it has gone on, worker and learner are stopped.)
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/system/system_harness.h"

namespace sfpo {
namespace system_test {
namespace {

constexpr absl::Duration kStartBound = absl::Seconds(60);
constexpr absl::Duration kRunBound = absl::Seconds(90);

// True once the worker reports that it is backing off with leases in hand (its verifier is
// away, so it cannot finish them).
bool BackingOffWithLeases(const Service& worker) {
  absl::StatusOr<WorkerState> s = GetWorkerState(worker.address());
  return s.ok() && s->state == "backoff" && s->leases_in_flight > 0;
}

TEST(VerifierAwayTest, WorkersBackOffWhileTheVerifierIsAwayAndLoseNothing) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  SFPO_ASSERT_OK_AND_ASSIGN(const int reward_port, PickFreePort());
  const std::string reward_address = absl::StrCat("127.0.0.1:", reward_port);
  // Leases long enough to outlast the verifier's absence: nothing may expire.
  const std::vector<std::string> sets = {"run.total_steps=100000", "rollout.lease_timeout_s=60"};
  SFPO_ASSERT_OK_AND_ASSIGN(Service learner, run->StartLearner("127.0.0.1:0", sets, kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(
      Service worker, run->StartWorker("w0", learner.address(), reward_address, sets, kStartBound));

  // 1. No verifier yet: the worker leases, generates, and backs off on Score.
  ASSERT_TRUE(PollUntil([&] { return BackingOffWithLeases(worker); }, kStartBound))
      << worker.process->Stderr();
  EXPECT_TRUE(run->Steps().empty());

  // 2. The verifier comes up: training proceeds.
  {
    SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward(reward_address, kStartBound));
    ASSERT_TRUE(PollUntil([&] { return run->Steps().size() >= 2; }, kRunBound))
        << learner.process->Stderr();
    // 3. Killed mid-run: the worker is back to backing off with its leases.
    ASSERT_TRUE(reward.process->Signal(SIGKILL));
    SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult killed, reward.process->Wait(kRunBound));
    EXPECT_EQ(killed.term_signal, SIGKILL);
  }
  ASSERT_TRUE(PollUntil([&] { return BackingOffWithLeases(worker); }, kRunBound))
      << worker.process->Stderr();
  const size_t steps_while_away = run->Steps().size();

  // 4. Restarted on the same port: the worker's channel reconnects and training goes on.
  SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward(reward_address, kStartBound));
  ASSERT_TRUE(PollUntil([&] { return run->Steps().size() >= steps_while_away + 2; }, kRunBound))
      << learner.process->Stderr();
  // The worker drains (finishes or releases its leases) and exits; then the learner.
  ASSERT_TRUE(worker.process->Signal(SIGTERM));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult worker_done, worker.process->Wait(kRunBound));
  EXPECT_EQ(worker_done.exit_code, 0) << worker_done.err;
  ASSERT_TRUE(learner.process->Signal(SIGTERM));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult done, learner.process->Wait(kRunBound));
  EXPECT_EQ(done.exit_code, 0) << done.err;

  const std::vector<nlohmann::json> steps = run->Steps();
  ASSERT_GE(steps.size(), steps_while_away + 2);
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].value("step", -1), static_cast<int64_t>(i + 1));
    ExpectConsistentLedger(steps[i]);
  }
  // Nothing lost: every leased sample was scored; none expired, was refused or went stale.
  const nlohmann::json& last = steps.back();
  EXPECT_EQ(Samples(last, "expired"), 0) << last.dump();
  EXPECT_EQ(Samples(last, "rejected"), 0) << last.dump();
  EXPECT_EQ(Samples(last, "stale"), 0) << last.dump();
  EXPECT_EQ(Samples(last, "released"), 0) << last.dump();
  EXPECT_EQ(Samples(last, "scored"), Samples(last, "leased") - Samples(last, "in_flight"))
      << last.dump();
}

}  // namespace
}  // namespace system_test
}  // namespace sfpo
