#include "services/learner/algorithm/entropy_gate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

EntropyGate MakeGate(GateMode mode, int64_t window, double threshold, int64_t stop_step = 0) {
  EntropyGateOptions options;
  options.mode = mode;
  options.window = window;
  options.threshold = threshold;
  options.stop_step = stop_step;
  absl::StatusOr<EntropyGate> gate = EntropyGate::Create(options);
  SFPO_CHECK(gate.ok());
  return *gate;
}

TEST(EntropyGateTest, ZScoreIsOneSidedPopulationScoreOfTheNewestValue) {
  // mean 2, population std sqrt(2/3).
  EXPECT_NEAR(EntropyGate::ZScore({1.0, 2.0, 3.0}), 1.0 / (std::sqrt(2.0 / 3.0) + 1e-9), 1e-12);
  EXPECT_LT(EntropyGate::ZScore({3.0, 2.0, 1.0}), 0.0);
  EXPECT_DOUBLE_EQ(EntropyGate::ZScore({5.0, 5.0}), 0.0);
  EXPECT_TRUE(std::isnan(EntropyGate::ZScore({})));
}

TEST(EntropyGateTest, FiresExactlyWhenZReachesThresholdAndStaysOff) {
  // W = 4, tau = 1.5. Entropies: a flat start (z = 0), then a rise.
  EntropyGate gate = MakeGate(GateMode::kEntropy, 4, 1.5);
  const std::vector<double> series = {1.0, 1.0, 1.0, 1.0, 1.02, 1.1, 0.5, 0.5, 0.5, 0.5, 0.5};
  std::vector<double> window;
  bool fired = false;
  for (int64_t step = 0; step < static_cast<int64_t>(series.size()); ++step) {
    const bool active = gate.Decide(step);
    double z = std::nan("");
    if (window.size() == 4) z = EntropyGate::ZScore(window);
    const bool expect_fire_now = !fired && window.size() == 4 && z >= 1.5;
    if (expect_fire_now) fired = true;
    EXPECT_EQ(active, !fired) << "step " << step << " z " << z;
    EXPECT_EQ(gate.sfpo_active(), !fired);
    if (fired && expect_fire_now) {
      EXPECT_NEAR(gate.last_z(), z, 1e-12);
      EXPECT_EQ(gate.state().switched_at_step, step);
    }
    gate.Record(series[step]);
    window.push_back(series[step]);
    if (window.size() > 4) window.erase(window.begin());
  }
  // The series was built so that the switch happens, after the fifth value ([1,1,1,1.02]:
  // z = 1.732 >= 1.5), i.e. before step 5.
  EXPECT_TRUE(fired);
  EXPECT_EQ(gate.state().switched_at_step, 5);
  EXPECT_FALSE(gate.sfpo_active());
}

TEST(EntropyGateTest, DoesNotFireBelowThreshold) {
  EntropyGate gate = MakeGate(GateMode::kEntropy, 3, 1.5);
  // [1, 2, 3]: z = 1.2247 < 1.5.
  for (double h : {1.0, 2.0, 3.0}) {
    EXPECT_TRUE(gate.Decide(0));
    gate.Record(h);
  }
  EXPECT_TRUE(gate.Decide(3));
  EXPECT_NEAR(gate.last_z(), 1.224744871, 1e-6);
}

TEST(EntropyGateTest, NeverFiresBeforeTheWindowIsFull) {
  EntropyGate gate = MakeGate(GateMode::kEntropy, 5, 0.1);
  const std::vector<double> rising = {0.0, 10.0, 20.0, 30.0};
  for (size_t i = 0; i < rising.size(); ++i) {
    EXPECT_TRUE(gate.Decide(static_cast<int64_t>(i)));
    EXPECT_TRUE(std::isnan(gate.last_z()));
    gate.Record(rising[i]);
  }
  gate.Record(40.0);
  EXPECT_FALSE(gate.Decide(5));
}

TEST(EntropyGateTest, StepModeSwitchesAtStopStep) {
  EntropyGate gate = MakeGate(GateMode::kStep, 30, 1.0, /*stop_step=*/3);
  EXPECT_TRUE(gate.Decide(0));
  EXPECT_TRUE(gate.Decide(2));
  EXPECT_FALSE(gate.Decide(3));
  EXPECT_FALSE(gate.Decide(1));  // permanent
}

TEST(EntropyGateTest, NoneModeKeepsSfpoWhateverTheEntropy) {
  EntropyGate gate = MakeGate(GateMode::kNone, 2, 0.0);
  for (int step = 0; step < 10; ++step) {
    EXPECT_TRUE(gate.Decide(step));
    gate.Record(step * step);
  }
}

TEST(EntropyGateTest, RestoreRoundTripsAndRejectsOverlongWindow) {
  EntropyGate gate = MakeGate(GateMode::kEntropy, 3, 1.0);
  gate.Record(0.25);
  gate.Record(0.5);
  EntropyGate other = MakeGate(GateMode::kEntropy, 3, 1.0);
  SFPO_ASSERT_OK(other.Restore(gate.state()));
  EXPECT_EQ(other.state().window, gate.state().window);
  EntropyGateState too_long;
  too_long.window = {1, 2, 3, 4};
  EXPECT_THAT(other.Restore(too_long),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gate_window")));
}

TEST(EntropyGateTest, RejectsBadOptionsAndModes) {
  EntropyGateOptions options;
  options.window = 0;
  EXPECT_THAT(EntropyGate::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gate_window")));
  EXPECT_THAT(ParseGateMode("sometimes"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sometimes")));
}

}  // namespace
}  // namespace sfpo
