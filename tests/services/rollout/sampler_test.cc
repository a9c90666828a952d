#include "services/rollout/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <vector>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

// One row of logits = log(probs), so softmax gives back probs.
torch::Tensor LogitsOf(const std::vector<double>& probs) {
  return torch::tensor(probs, torch::kFloat64).log().to(torch::kFloat32).unsqueeze(0);
}

std::set<int64_t> KeptTokens(const torch::Tensor& filtered) {
  std::set<int64_t> kept;
  for (int64_t i = 0; i < filtered.size(1); ++i) {
    if (std::isfinite(filtered[0][i].item<float>())) kept.insert(i);
  }
  return kept;
}

SamplingOptions Options(double temperature, int top_k, double top_p) {
  SamplingOptions options;
  options.temperature = temperature;
  options.top_k = top_k;
  options.top_p = top_p;
  return options;
}

// Hand-built distribution, deliberately not in sorted order:
//   token: 0     1     2     3     4     5
//   prob:  0.05  0.30  0.10  0.35  0.15  0.05
const std::vector<double> kProbs = {0.05, 0.30, 0.10, 0.35, 0.15, 0.05};

TEST(SamplerTest, TopKKeepsExactlyTheKMostLikelyTokens) {
  torch::Tensor logits = LogitsOf(kProbs);
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, 1, 1.0))), (std::set<int64_t>{3}));
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, 3, 1.0))), (std::set<int64_t>{1, 3, 4}));
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, 6, 1.0))).size(), 6u);
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, -1, 1.0))).size(), 6u);
}

TEST(SamplerTest, TopPKeepsTheSmallestPrefixReachingP) {
  torch::Tensor logits = LogitsOf(kProbs);
  // Sorted: 3 (.35), 1 (.30 -> .65), 4 (.15 -> .80), 2 (.10 -> .90), 0/5 (.05 each).
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, -1, 0.2))), (std::set<int64_t>{3}));
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, -1, 0.5))), (std::set<int64_t>{1, 3}));
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, -1, 0.7))), (std::set<int64_t>{1, 3, 4}));
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, -1, 0.85))),
            (std::set<int64_t>{1, 2, 3, 4}));
}

TEST(SamplerTest, TopPAppliesToTheTopKRenormalisedMass) {
  torch::Tensor logits = LogitsOf(kProbs);
  // top-k 2 leaves 3 (.35/.65 = .54) and 1 (.46): p = 0.5 keeps only token 3, p = 0.6 both.
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, 2, 0.5))), (std::set<int64_t>{3}));
  EXPECT_EQ(KeptTokens(FilterLogits(logits, Options(1.0, 2, 0.6))), (std::set<int64_t>{1, 3}));
}

TEST(SamplerTest, SamplingDrawsOnlyKeptTokensAndReportsFullDistributionLogprobs) {
  const int64_t n = 2000;
  torch::Tensor logits = LogitsOf(kProbs).repeat({n, 1});
  torch::Tensor uniforms = torch::empty({n}, torch::kFloat64);
  for (int64_t i = 0; i < n; ++i) uniforms[i] = UniformForStep(7, i);
  // top-k keeps {3, 1, 4} (mass .80); renormalised, 4 starts at .65/.80 = .8125 < .85: kept.
  SamplingOptions options = Options(1.0, 3, 0.85);
  SampledTokens sampled = SampleTokens(logits, options, uniforms);
  std::vector<int64_t> counts(6, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t token = sampled.tokens[i].item<int64_t>();
    ++counts[token];
    EXPECT_NEAR(sampled.logprobs[i].item<float>(), std::log(kProbs[token]), 1e-5);
  }
  EXPECT_EQ(counts[0] + counts[2] + counts[5], 0);
  EXPECT_NEAR(counts[1] / double(n), 0.30 / 0.80, 0.04);
  EXPECT_NEAR(counts[3] / double(n), 0.35 / 0.80, 0.04);
  EXPECT_NEAR(counts[4] / double(n), 0.15 / 0.80, 0.04);
}

TEST(SamplerTest, UnfilteredSamplingFollowsTheTemperatureScaledDistribution) {
  const int64_t n = 4000;
  torch::Tensor logits = LogitsOf(kProbs).repeat({n, 1});
  torch::Tensor uniforms = torch::empty({n}, torch::kFloat64);
  for (int64_t i = 0; i < n; ++i) uniforms[i] = UniformForStep(3, i);
  SampledTokens sampled = SampleTokens(logits, Options(0.5, -1, 1.0), uniforms);
  // At temperature 0.5 the distribution is probs^2 renormalised.
  double z = 0;
  for (double p : kProbs) z += p * p;
  std::vector<int64_t> counts(6, 0);
  for (int64_t i = 0; i < n; ++i) ++counts[sampled.tokens[i].item<int64_t>()];
  for (int t = 0; t < 6; ++t) {
    EXPECT_NEAR(counts[t] / double(n), kProbs[t] * kProbs[t] / z, 0.03) << "token " << t;
  }
  const int64_t first = sampled.tokens[0].item<int64_t>();
  EXPECT_NEAR(sampled.logprobs[0].item<float>(), std::log(kProbs[first] * kProbs[first] / z), 1e-5);
}

TEST(SamplerTest, InverseCdfPicksTheTokenWhoseIntervalHoldsTheUniform) {
  torch::Tensor logits = LogitsOf({0.5, 0.25, 0.25}).repeat({4, 1});
  torch::Tensor uniforms = torch::tensor({0.0, 0.49, 0.6, 0.99}, torch::kFloat64);
  SampledTokens sampled = SampleTokens(logits, Options(1.0, -1, 1.0), uniforms);
  EXPECT_TRUE(torch::equal(sampled.tokens, torch::tensor({0, 0, 1, 2}, torch::kInt64)));
}

TEST(SamplerTest, TemperatureZeroIsArgmaxWithTemperatureOneLogprob) {
  torch::Tensor logits = torch::tensor({{0.1f, 2.0f, -1.0f}, {3.0f, 0.0f, 2.9f}});
  SampledTokens sampled = SampleTokens(logits, Options(0.0, -1, 1.0), torch::zeros({2}, torch::kFloat64));
  EXPECT_TRUE(torch::equal(sampled.tokens, torch::tensor({1, 0}, torch::kInt64)));
  EXPECT_NEAR(sampled.logprobs[0].item<float>(),
              torch::log_softmax(logits[0], 0)[1].item<float>(), 1e-6);
}

TEST(SamplerTest, UniformsAreInRangeAndDependOnSeedAndStep) {
  EXPECT_EQ(UniformForStep(1, 2), UniformForStep(1, 2));
  EXPECT_NE(UniformForStep(1, 2), UniformForStep(2, 2));
  EXPECT_NE(UniformForStep(1, 2), UniformForStep(1, 3));
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = UniformForStep(i % 17, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.01);
}

TEST(SamplerTest, ValidateRejectsBadOptionsNamingTheField) {
  SFPO_EXPECT_OK(ValidateSamplingOptions(SamplingOptions(), 10));
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_THAT(ValidateSamplingOptions(o, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("temperature")));
  o = SamplingOptions();
  o.top_p = 0;
  EXPECT_THAT(ValidateSamplingOptions(o, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p")));
  o = SamplingOptions();
  o.max_new_tokens = 0;
  EXPECT_THAT(ValidateSamplingOptions(o, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_new_tokens")));
  o = SamplingOptions();
  o.stop_tokens = {10};
  EXPECT_THAT(ValidateSamplingOptions(o, 10), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stop token 10")));
}

}  // namespace
}  // namespace sfpo
