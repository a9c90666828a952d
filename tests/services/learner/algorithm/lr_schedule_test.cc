#include "services/learner/algorithm/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

TEST(LrScheduleTest, ConstantWithoutWarmupIsBaseFromTheFirstStep) {
  LrScheduleOptions o;
  o.base_lr = 1e-3;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 1e-3);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 1000), 1e-3);
}

TEST(LrScheduleTest, WarmupFirstStepIsNotZeroAndReachesBase) {
  LrScheduleOptions o;
  o.base_lr = 1.0;
  o.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 0.25);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 1), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 3), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 4), 1.0);
}

TEST(LrScheduleTest, CosineDecaysFromBaseToFloorAfterWarmup) {
  LrScheduleOptions o;
  o.base_lr = 2.0;
  o.warmup_steps = 2;
  o.kind = LrScheduleKind::kCosine;
  o.total_steps = 6;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 2), 2.0);
  // progress 2/4: halfway between 2.0 and 0.2.
  EXPECT_NEAR(LearningRateAt(o, 4), 1.1, 1e-12);
  EXPECT_GT(LearningRateAt(o, 5), 0.2);
  EXPECT_NEAR(LearningRateAt(o, 100), 0.2, 1e-12);
}

TEST(LrScheduleTest, UnknownScheduleIsAnError) {
  EXPECT_THAT(ParseLrSchedule("linear"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("linear")));
}

}  // namespace
}  // namespace sfpo
