// A rollout worker killed with SIGKILL while it holds leases: the learner expires them at the
// deadline and re-leases the prompts to another worker; no sample is counted twice and the run
// completes.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/system/system_harness.h"

namespace sfpo {
namespace system_test {
namespace {

// Bounds, not expectations: each is many times what a quiet machine needs.
constexpr absl::Duration kStartBound = absl::Seconds(60);
constexpr absl::Duration kRunBound = absl::Seconds(90);

TEST(WorkerKillTest, LeasesOfAKilledWorkerAreReissuedAndCountedOnce) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  // The verifier starts only after the kill, so the first worker is sure to be holding its
  // leases (scoring, backing off) when it dies.
  SFPO_ASSERT_OK_AND_ASSIGN(const int reward_port, PickFreePort());
  const std::string reward_address = absl::StrCat("127.0.0.1:", reward_port);
  SFPO_ASSERT_OK_AND_ASSIGN(
      Service learner,
      run->StartLearner("127.0.0.1:0", {"run.total_steps=3", "rollout.lease_timeout_s=6"},
                        kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(Service doomed, run->StartWorker("doomed", learner.address(),
                                                             reward_address, {}, kStartBound));
  WorkerState seen;
  ASSERT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<WorkerState> s = GetWorkerState(doomed.address());
        if (s.ok()) seen = *s;
        return s.ok() && s->leases_in_flight > 0 && s->state == "backoff";
      },
      kStartBound))
      << "the worker never held leases while the verifier was away; state " << seen.state
      << "\nworker stderr:\n"
      << doomed.process->Stderr();
  // A worker leases at most batch_prompts; this one holds all of them.
  EXPECT_EQ(seen.leases_in_flight, kBatchPrompts);
  ASSERT_TRUE(doomed.process->Signal(SIGKILL));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult killed, doomed.process->Wait(kRunBound));
  EXPECT_EQ(killed.term_signal, SIGKILL);

  SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward(reward_address, kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(Service survivor, run->StartWorker("survivor", learner.address(),
                                                               reward_address, {}, kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult done, learner.process->Wait(kRunBound));
  EXPECT_EQ(done.exit_code, 0) << done.err;

  const std::vector<nlohmann::json> steps = run->Steps();
  ASSERT_EQ(steps.size(), 3u);
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].value("step", -1), static_cast<int64_t>(i + 1));
    EXPECT_EQ(steps[i].value("policy_version", -1), static_cast<int64_t>(i + 1));
    ExpectConsistentLedger(steps[i]);
  }
  const nlohmann::json& last = steps.back();
  // The dead worker's leases expired (each re-leased once), and nothing else went astray:
  // synchronous mode drops nothing as stale and no submission was refused.
  EXPECT_EQ(Samples(last, "expired"), kBatchPrompts * kGroupSize) << last.dump();
  EXPECT_EQ(Samples(last, "stale"), 0) << last.dump();
  EXPECT_EQ(Samples(last, "rejected"), 0) << last.dump();
  EXPECT_EQ(Samples(last, "released"), 0) << last.dump();
  // The surviving worker hears "done" and exits by itself.
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult survivor_done,
                            survivor.process->Wait(kRunBound));
  EXPECT_EQ(survivor_done.exit_code, 0) << survivor_done.err;
}

}  // namespace
}  // namespace system_test
}  // namespace sfpo
