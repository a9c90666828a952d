#include "services/learner/algorithm/slow_fast.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "common/status_matchers.h"
#include "tests/services/learner/test_policies.h"

namespace sfpo {
namespace {

using testing::AsPolicyFn;
using testing::BigramPolicy;
using testing::RandomBatch;

constexpr int64_t kVocab = 9;

struct Fixture {
  BigramPolicy policy{kVocab, torch::kFloat64, 3};
  torch::optim::AdamW adam{policy->Trainable(),
                           torch::optim::AdamWOptions(0.05).weight_decay(0.01)};
  RolloutBatch batch;
  Fixture() {
    batch = RandomBatch(6, 4, 10, kVocab, 21);
    SFPO_CHECK_OK(PrepareBatch(&batch));
  }
};

UpdateOptions Options() {
  UpdateOptions o;
  o.mini_batch_groups = 2;  // 3 optimizer steps per pass
  o.micro_batch_tokens = 25;
  o.loss.entropy_coef = 0.01;
  return o;
}

void ExpectBitwiseEqual(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i], b[i]))
        << "parameter " << i << " differs by " << (a[i] - b[i]).abs().max().item<double>();
  }
}

// Moments of every parameter: {exp_avg, exp_avg_sq} per param, and step counts.
std::vector<torch::Tensor> Moments(torch::optim::AdamW& adam,
                                   const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) {
    auto& state = static_cast<torch::optim::AdamWParamState&>(
        *adam.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
    out.push_back(state.exp_avg().clone());
    out.push_back(state.exp_avg_sq().clone());
    out.push_back(torch::tensor(state.step()));
  }
  return out;
}

// One plain update pass on `b` (old_logp already set); then `a` and `b` agree bitwise, in the
// parameters and in the AdamW moments.
void PlainPassThenExpectSame(Fixture& a, Fixture& b) {
  SFPO_ASSERT_OK(
      RunUpdatePass(AsPolicyFn(b.policy), b.policy->Trainable(), &b.adam, b.batch, {}, Options())
          .status());
  ExpectBitwiseEqual(a.policy->Trainable(), b.policy->Trainable());
  ExpectBitwiseEqual(Moments(a.adam, a.policy->Trainable()),
                     Moments(b.adam, b.policy->Trainable()));
}

TEST(SlowFastTest, ZeroInnerStepsIsOnePlainGrpoPassBitwise) {
  Fixture a, b;
  SlowFastUpdater updater(a.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 0;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats stats,
                            updater.Step(AsPolicyFn(a.policy), &a.adam, &a.batch, Options(), sfpo));
  EXPECT_EQ(stats.passes.size(), 1u);
  EXPECT_EQ(updater.saved_bytes(), 0);  // GRPO keeps no copy

  SFPO_ASSERT_OK_AND_ASSIGN(b.batch.old_logp,
                            ComputeSequenceLogp(AsPolicyFn(b.policy), b.batch, 25));
  PlainPassThenExpectSame(a, b);
}

TEST(SlowFastTest, GrpoDistanceMeasuresTheStepWithoutChangingIt) {
  Fixture a, b;
  std::vector<torch::Tensor> before;
  for (const auto& p : a.policy->Trainable()) before.push_back(p.detach().clone());
  SlowFastUpdater with_copy(a.policy->Trainable()), without(b.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 0;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats plain,
                            without.Step(AsPolicyFn(b.policy), &b.adam, &b.batch, Options(), sfpo));
  EXPECT_TRUE(std::isnan(plain.theta_next_distance));
  sfpo.grpo_distance = true;
  SFPO_ASSERT_OK_AND_ASSIGN(
      SlowFastStepStats measured,
      with_copy.Step(AsPolicyFn(a.policy), &a.adam, &a.batch, Options(), sfpo));
  ExpectBitwiseEqual(a.policy->Trainable(), b.policy->Trainable());
  double sq = 0;
  int64_t param_bytes = 0;
  const std::vector<torch::Tensor> after = a.policy->Trainable();
  for (size_t i = 0; i < before.size(); ++i) {
    const torch::Tensor& p = after[i];
    sq += (p.detach().to(torch::kFloat64) - before[i].to(torch::kFloat64))
              .pow(2)
              .sum()
              .item<double>();
    param_bytes += p.numel() * p.element_size();
  }
  ASSERT_GT(sq, 0);
  EXPECT_NEAR(measured.theta_next_distance, std::sqrt(sq), 1e-9 * (1 + std::sqrt(sq)));
  EXPECT_EQ(with_copy.saved_bytes(), param_bytes);
  EXPECT_EQ(measured.theta_k_distance, 0.0);
}

// On CPU parameters host memory is where they already are: theta0_on_host is the same step.
TEST(SlowFastTest, Theta0OnHostIsTheSameStepOnCpu) {
  Fixture a, b;
  SlowFastUpdater host(a.policy->Trainable()), device(b.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 2;
  sfpo.alpha = 0.6;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats d,
                            device.Step(AsPolicyFn(b.policy), &b.adam, &b.batch, Options(), sfpo));
  sfpo.theta0_on_host = true;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats h,
                            host.Step(AsPolicyFn(a.policy), &a.adam, &a.batch, Options(), sfpo));
  ExpectBitwiseEqual(a.policy->Trainable(), b.policy->Trainable());
  EXPECT_EQ(h.theta_next_distance, d.theta_next_distance);
  EXPECT_EQ(host.saved_bytes(), device.saved_bytes());
}

TEST(SlowFastTest, AlphaOneEqualsKPlusOnePlainPasses) {
  Fixture a, b;
  SlowFastUpdater updater(a.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 3;
  sfpo.alpha = 1.0;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats stats,
                            updater.Step(AsPolicyFn(a.policy), &a.adam, &a.batch, Options(), sfpo));
  EXPECT_EQ(stats.passes.size(), 4u);

  SFPO_ASSERT_OK_AND_ASSIGN(b.batch.old_logp,
                            ComputeSequenceLogp(AsPolicyFn(b.policy), b.batch, 25));
  for (int k = 0; k < 4; ++k) {
    SFPO_ASSERT_OK(
        RunUpdatePass(AsPolicyFn(b.policy), b.policy->Trainable(), &b.adam, b.batch, {}, Options())
            .status());
  }
  ExpectBitwiseEqual(a.policy->Trainable(), b.policy->Trainable());
}

TEST(SlowFastTest, AlphaZeroStartsTheSlowPassFromTheta0) {
  Fixture a, b;
  SlowFastUpdater updater(a.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 2;
  sfpo.alpha = 0.0;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats stats,
                            updater.Step(AsPolicyFn(a.policy), &a.adam, &a.batch, Options(), sfpo));
  EXPECT_GT(stats.theta_k_distance, 0.0);

  // By hand: remember theta_0, two passes (moments move on), put theta_0 back, one pass.
  std::vector<torch::Tensor> theta0;
  for (const auto& p : b.policy->Trainable()) theta0.push_back(p.detach().clone());
  SFPO_ASSERT_OK_AND_ASSIGN(b.batch.old_logp,
                            ComputeSequenceLogp(AsPolicyFn(b.policy), b.batch, 25));
  for (int k = 0; k < 2; ++k) {
    SFPO_ASSERT_OK(
        RunUpdatePass(AsPolicyFn(b.policy), b.policy->Trainable(), &b.adam, b.batch, {}, Options())
            .status());
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < theta0.size(); ++i) b.policy->Trainable()[i].copy_(theta0[i]);
  }
  PlainPassThenExpectSame(a, b);
}

TEST(SlowFastTest, RepositionTouchesNeitherBuffersNorOptimizerMoments) {
  Fixture s;
  SFPO_ASSERT_OK_AND_ASSIGN(s.batch.old_logp,
                            ComputeSequenceLogp(AsPolicyFn(s.policy), s.batch, 25));
  const std::vector<torch::Tensor> params = s.policy->Trainable();
  std::vector<torch::Tensor> theta0;
  SaveParameters(params, &theta0);
  SFPO_ASSERT_OK(
      RunUpdatePass(AsPolicyFn(s.policy), params, &s.adam, s.batch, {}, Options()).status());
  std::vector<torch::Tensor> theta_k;
  for (const auto& p : params) theta_k.push_back(p.detach().clone());
  const std::vector<torch::Tensor> moments = Moments(s.adam, params);
  const torch::Tensor buffer = s.policy->counter.clone();
  for (const auto& m : moments) ASSERT_GT(m.abs().max().item<double>(), 0.0);

  Reposition(params, theta0, 0.3);
  ExpectBitwiseEqual(Moments(s.adam, params), moments);
  EXPECT_TRUE(torch::equal(s.policy->counter, buffer));
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor expected = theta0[i] + 0.3 * (theta_k[i] - theta0[i]);
    EXPECT_LT((params[i] - expected).abs().max().item<double>(), 1e-15);
  }
  // The distance is the norm of the difference, computed without a full temporary.
  double sq = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    sq += (params[i] - theta0[i]).square().sum().item<double>();
  }
  EXPECT_NEAR(DistanceToSaved(params, theta0), std::sqrt(sq), 1e-12);
}

TEST(SlowFastTest, KeepsOneSavedCopyAllocatedOnceAcrossSteps) {
  Fixture s;
  SlowFastUpdater updater(s.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 2;
  SFPO_ASSERT_OK(updater.Step(AsPolicyFn(s.policy), &s.adam, &s.batch, Options(), sfpo).status());
  const std::vector<const void*> first = updater.saved_data_pointers();
  int64_t param_bytes = 0;
  for (const auto& p : s.policy->Trainable()) param_bytes += p.numel() * p.element_size();
  EXPECT_EQ(updater.saved_bytes(), param_bytes);
  SFPO_ASSERT_OK(updater.Step(AsPolicyFn(s.policy), &s.adam, &s.batch, Options(), sfpo).status());
  EXPECT_EQ(updater.saved_data_pointers(), first);
  updater.ReleaseSavedParameters();
  EXPECT_EQ(updater.saved_bytes(), 0);
}

TEST(SlowFastTest, ReportsPerPassDiagnostics) {
  Fixture s;
  SlowFastUpdater updater(s.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 3;
  sfpo.alpha = 0.5;
  SFPO_ASSERT_OK_AND_ASSIGN(SlowFastStepStats stats,
                            updater.Step(AsPolicyFn(s.policy), &s.adam, &s.batch, Options(), sfpo));
  ASSERT_EQ(stats.passes.size(), 4u);
  // The first pass starts at theta_0: ratios are 1, nothing clipped, KL 0 on its first
  // mini-batch; later passes move away from theta_0.
  EXPECT_LT(stats.passes[0].approx_kl, stats.passes[2].approx_kl);
  EXPECT_GT(stats.passes[2].approx_kl, 0.0);
  for (const PassStats& p : stats.passes) {
    EXPECT_EQ(p.optimizer_steps, 3);
    EXPECT_GT(p.entropy, 0.0);
    EXPECT_GT(p.grad_norm_max, 0.0);
    EXPECT_GE(p.clip_fraction, 0.0);
    EXPECT_LE(p.clip_fraction, 1.0);
  }
  EXPECT_GT(stats.theta_k_distance, 0.0);
  EXPECT_GT(stats.theta_next_distance, 0.0);
}

TEST(SlowFastTest, RejectsAlphaOutsideTheUnitInterval) {
  Fixture s;
  SlowFastUpdater updater(s.policy->Trainable());
  SlowFastOptions sfpo;
  sfpo.alpha = 1.5;
  EXPECT_THAT(updater.Step(AsPolicyFn(s.policy), &s.adam, &s.batch, Options(), sfpo),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("alpha")));
}

}  // namespace
}  // namespace sfpo
