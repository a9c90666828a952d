#include "services/learner/learner_metrics.h"

#include <cmath>
#include <limits>
#include <memory>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/observability/exposition.h"

namespace sfpo {
namespace {

using ::sfpo::testing::Exposition;
using ::testing::Optional;

Exposition Scrape(prometheus::Registry& registry) {
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  absl::StatusOr<Exposition> e = testing::ParseExposition(text);
  EXPECT_TRUE(e.ok()) << e.status() << "\n" << text;
  return e.ok() ? *e : Exposition();
}

StepRecord Record(int64_t step) {
  StepRecord r;
  r.step = step;
  r.policy_version = step;
  r.rollouts_total = 16 * step;
  r.wallclock_s = 2.0 * static_cast<double>(step);
  r.reward_mean = 0.125 * static_cast<double>(step);
  r.train_accuracy = 0.25;
  r.entropy = 1.5;
  r.entropy_zscore = std::numeric_limits<double>::quiet_NaN();
  r.sfpo_active = step < 2;
  r.seconds = {{"wait_batch", 0.5}, {"slow", 0.25}};
  r.ledger.leased = 20 * step;
  r.ledger.scored = 18 * step;
  r.ledger.trained = 16 * step;
  return r;
}

TEST(LearnerMetricsTest, ExportsEveryFamilyBeforeTheFirstStep) {
  prometheus::Registry registry;
  LearnerMetrics metrics(registry);
  const Exposition e = Scrape(registry);
  EXPECT_THAT(e.Value("sfpo_learner_steps_total"), Optional(0.0));
  EXPECT_THAT(e.Value("sfpo_samples_total", {{"state", "trained"}}), Optional(0.0));
  EXPECT_THAT(e.Value("sfpo_step_seconds_count", {{"stage", "checkpoint"}}), Optional(0.0));
  EXPECT_THAT(e.Value("sfpo_accuracy", {{"split", "eval_sampled"}}), Optional(0.0));
}

TEST(LearnerMetricsTest, FollowsTheStepRecords) {
  prometheus::Registry registry;
  LearnerMetrics metrics(registry);
  metrics.OnStep(Record(1));
  StepRecord second = Record(2);
  second.accuracy = 0.75;
  metrics.OnStep(second);
  const Exposition e = Scrape(registry);
  EXPECT_THAT(e.Value("sfpo_learner_steps_total"), Optional(2.0));
  EXPECT_THAT(e.Value("sfpo_rollouts_total"), Optional(32.0));
  EXPECT_THAT(e.Value("sfpo_policy_version"), Optional(2.0));
  EXPECT_THAT(e.Value("sfpo_run_wallclock_seconds"), Optional(4.0));
  EXPECT_THAT(e.Value("sfpo_reward_mean"), Optional(0.25));
  EXPECT_THAT(e.Value("sfpo_accuracy", {{"split", "eval_sampled"}}), Optional(0.75));
  EXPECT_THAT(e.Value("sfpo_accuracy", {{"split", "train"}}), Optional(0.25));
  EXPECT_THAT(e.Value("sfpo_sfpo_active"), Optional(0.0));
  ASSERT_TRUE(e.Value("sfpo_entropy_zscore").has_value());
  EXPECT_TRUE(std::isnan(*e.Value("sfpo_entropy_zscore")));
  EXPECT_THAT(e.Value("sfpo_samples_total", {{"state", "leased"}}), Optional(40.0));
  EXPECT_THAT(e.Value("sfpo_samples_total", {{"state", "scored"}}), Optional(36.0));
  EXPECT_THAT(e.Value("sfpo_samples_total", {{"state", "trained"}}), Optional(32.0));
  EXPECT_THAT(e.Value("sfpo_step_seconds_count", {{"stage", "wait_batch"}}), Optional(2.0));
  EXPECT_THAT(e.Value("sfpo_step_seconds_sum", {{"stage", "slow"}}), Optional(0.5));
  EXPECT_THAT(e.Value("sfpo_step_seconds_count", {{"stage", "fast"}}), Optional(0.0));
}

TEST(LearnerMetricsTest, LedgerCountersNeverGoBack) {
  prometheus::Registry registry;
  LearnerMetrics metrics(registry);
  LedgerCounts counts;
  counts.scored = 10;
  metrics.SetLedger(counts);
  counts.scored = 7;  // e.g. a resumed run's smaller ledger
  metrics.SetLedger(counts);
  EXPECT_THAT(Scrape(registry).Value("sfpo_samples_total", {{"state", "scored"}}), Optional(10.0));
  counts.scored = 12;
  metrics.SetLedger(counts);
  EXPECT_THAT(Scrape(registry).Value("sfpo_samples_total", {{"state", "scored"}}), Optional(12.0));
}

TEST(LearnerMetricsTest, StalenessIsAHistogramOfVersions) {
  prometheus::Registry registry;
  LearnerMetrics metrics(registry);
  metrics.ObserveStaleness(0);
  metrics.ObserveStaleness(0);
  metrics.ObserveStaleness(3);
  const Exposition e = Scrape(registry);
  EXPECT_THAT(e.Value("sfpo_policy_staleness_count"), Optional(3.0));
  EXPECT_THAT(e.Value("sfpo_policy_staleness_sum"), Optional(3.0));
  EXPECT_THAT(e.Value("sfpo_policy_staleness_bucket", {{"le", "0"}}), Optional(2.0));
}

}  // namespace
}  // namespace sfpo
