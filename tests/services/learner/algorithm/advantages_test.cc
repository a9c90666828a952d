#include "services/learner/algorithm/advantages.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(GroupAdvantagesTest, NormalisesByUnbiasedStdAndCountsZeroVarianceGroups) {
  const torch::Tensor rewards =
      torch::tensor({1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 3.0}, torch::kFloat64);
  SFPO_ASSERT_OK_AND_ASSIGN(GroupAdvantages a, ComputeGroupAdvantages(rewards, 4, {}));
  const double std0 = std::sqrt(1.0 / 3.0);  // unbiased std of {1,0,0,1}
  const double std2 = std::sqrt((3 * 0.75 * 0.75 + 2.25 * 2.25) / 3.0);
  const double expected[] = {0.5 / (std0 + 1e-6), -0.5 / (std0 + 1e-6),
                             -0.5 / (std0 + 1e-6), 0.5 / (std0 + 1e-6),
                             0, 0, 0, 0,
                             -0.75 / (std2 + 1e-6), -0.75 / (std2 + 1e-6),
                             -0.75 / (std2 + 1e-6), 2.25 / (std2 + 1e-6)};
  for (int i = 0; i < 12; ++i) {
    EXPECT_NEAR(a.advantages[i].item<double>(), expected[i], 1e-12) << i;
  }
  EXPECT_EQ(a.zero_variance_groups, 1);
  EXPECT_THAT(a.informative_groups, ElementsAre(0, 2));
}

TEST(GroupAdvantagesTest, WithoutStdNormalisationOnlyCentres) {
  const torch::Tensor rewards = torch::tensor({2.0, 0.0, 1.0}, torch::kFloat64);
  AdvantageOptions options;
  options.normalize_std = false;
  SFPO_ASSERT_OK_AND_ASSIGN(GroupAdvantages a, ComputeGroupAdvantages(rewards, 3, options));
  EXPECT_DOUBLE_EQ(a.advantages[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(a.advantages[1].item<double>(), -1.0);
  EXPECT_DOUBLE_EQ(a.advantages[2].item<double>(), 0.0);
}

TEST(GroupAdvantagesTest, RejectsBadShapesAndValues) {
  EXPECT_THAT(ComputeGroupAdvantages(torch::zeros({5}, torch::kFloat64), 2, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiple of group_size")));
  EXPECT_THAT(ComputeGroupAdvantages(torch::zeros({3}, torch::kFloat64), 1, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("group_size >= 2")));
  EXPECT_THAT(
      ComputeGroupAdvantages(torch::tensor({1.0, std::nan("")}, torch::kFloat64), 2, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-finite")));
  EXPECT_THAT(ComputeGroupAdvantages(torch::zeros({2, 2}, torch::kFloat64), 2, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1-d")));
}

}  // namespace
}  // namespace sfpo
