#include "services/learner/algorithm/update_pass.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "common/status_matchers.h"
#include "tests/services/learner/test_policies.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;
using testing::AsPolicyFn;
using testing::BigramPolicy;
using testing::RandomBatch;

// ---- A 2 sequences x 2 response tokens case, computed by hand in scalar double arithmetic.

constexpr int kV = 3;
const double kTable[kV][kV] = {{0.5, -0.2, 0.1}, {0.3, 0.0, -0.4}, {-0.1, 0.2, 0.6}};
const int64_t kIds[2][3] = {{0, 1, 2}, {0, 2, 1}};
const double kAdv[2] = {1.0, -0.5};
// old_logp = logp - delta, so r = exp(delta): 1.35 (clipped above, A > 0), 1.05, 0.67 (clipped
// below, A < 0), 1.105.
const double kDelta[2][3] = {{0, 0.3, 0.05}, {0, -0.4, 0.1}};
const double kRefShift[2][3] = {{0, 0.2, -0.1}, {0, 0.05, 0.3}};  // ref_logp = logp - shift

struct HandResult {
  double loss = 0;
  double grad_table[kV][kV] = {};
  double grad_bias[kV] = {};
  double clipped = 0, tokens = 0, entropy = 0;
};

void Softmax(const double* z, double* p) {
  double m = std::max({z[0], z[1], z[2]}), s = 0;
  for (int j = 0; j < kV; ++j) s += (p[j] = std::exp(z[j] - m));
  for (int j = 0; j < kV; ++j) p[j] /= s;
}

double LogpByHand(int prev, int tok) {
  double p[kV];
  Softmax(kTable[prev], p);
  return std::log(p[tok]);
}

// weight[b][t]: aggregation weight of each response token (0: not a response token).
HandResult ByHand(const double weight[2][3], const LossOptions& o) {
  HandResult h;
  for (int b = 0; b < 2; ++b) {
    for (int t = 1; t < 3; ++t) {
      if (weight[b][t] == 0) continue;
      const int prev = static_cast<int>(kIds[b][t - 1]), tok = static_cast<int>(kIds[b][t]);
      double p[kV];
      Softmax(kTable[prev], p);
      double ent = 0;
      for (int j = 0; j < kV; ++j) ent -= p[j] * std::log(p[j]);
      const double logp = std::log(p[tok]);
      const double old = logp - kDelta[b][t];
      const double r = std::exp(logp - old);
      const double a = kAdv[b];
      const double rc = std::min(std::max(r, 1 - o.clip_low), 1 + o.clip_high);
      const double unclipped = -a * r, clipped = -a * rc;
      const double pg = std::max(unclipped, clipped);
      const bool clip_active = clipped > unclipped;
      const double d = -kRefShift[b][t];  // ref - logp
      const double k3 = std::exp(d) - d - 1;
      const double w = weight[b][t];
      h.loss += w * (pg - o.entropy_coef * ent + o.kl_coef * k3);
      h.tokens += 1;
      h.clipped += clip_active;
      h.entropy += ent;
      // dL/dlogp and dL/dH of this token.
      const double g_logp = w * ((clip_active ? 0.0 : -a * r) + o.kl_coef * (1 - std::exp(d)));
      const double g_ent = -w * o.entropy_coef;
      for (int j = 0; j < kV; ++j) {
        const double dz = g_logp * ((j == tok) - p[j]) + g_ent * (-p[j] * (std::log(p[j]) + ent));
        h.grad_table[prev][j] += dz;
        h.grad_bias[j] += dz;
      }
    }
  }
  return h;
}

struct HandCase {
  BigramPolicy policy{kV, torch::kFloat64, 0};
  RolloutBatch batch;
};

void BuildHandCase(HandCase* c, const double mask[2][3]) {
  {
    torch::NoGradGuard no_grad;
    c->policy->table.copy_(torch::from_blob(const_cast<double*>(&kTable[0][0]), {kV, kV},
                                            torch::kFloat64));
    c->policy->bias.zero_();
  }
  RolloutBatch& batch = c->batch;
  batch.group_size = 2;
  batch.input_ids = torch::from_blob(const_cast<int64_t*>(&kIds[0][0]), {2, 3}, torch::kInt64).clone();
  batch.response_mask =
      torch::from_blob(const_cast<double*>(&mask[0][0]), {2, 3}, torch::kFloat64).clone();
  batch.advantages = torch::tensor({kAdv[0], kAdv[1]}, torch::kFloat64);
  batch.old_logp = torch::zeros({2, 3}, torch::kFloat64);
  batch.ref_logp = torch::zeros({2, 3}, torch::kFloat64);
  for (int b = 0; b < 2; ++b) {
    for (int t = 1; t < 3; ++t) {
      const double logp = LogpByHand(static_cast<int>(kIds[b][t - 1]), static_cast<int>(kIds[b][t]));
      batch.old_logp[b][t] = logp - kDelta[b][t];
      batch.ref_logp[b][t] = logp - kRefShift[b][t];
    }
  }
  SFPO_CHECK_OK(PrepareBatch(&batch));
}

void ExpectMatchesHand(HandCase& c, const UpdateOptions& options, const HandResult& h) {
  std::vector<MiniBatch> plan = PlanPass(c.batch, {}, options);
  ASSERT_EQ(plan.size(), 1u);
  PassAccumulator acc;
  SFPO_ASSERT_OK(AccumulateMiniBatchGradients(AsPolicyFn(c.policy), c.policy->Trainable(),
                                              c.batch, plan[0], options, &acc));
  EXPECT_NEAR(acc.loss, h.loss, 1e-12);
  EXPECT_DOUBLE_EQ(acc.tokens, h.tokens);
  EXPECT_DOUBLE_EQ(acc.clipped, h.clipped);
  EXPECT_NEAR(acc.entropy, h.entropy, 1e-12);
  for (int i = 0; i < kV; ++i) {
    for (int j = 0; j < kV; ++j) {
      EXPECT_NEAR(c.policy->table.grad()[i][j].item<double>(), h.grad_table[i][j], 1e-12)
          << i << "," << j;
    }
    EXPECT_NEAR(c.policy->bias.grad()[i].item<double>(), h.grad_bias[i], 1e-12) << i;
  }
}

UpdateOptions HandOptions() {
  UpdateOptions options;
  options.loss.clip_low = 0.2;
  options.loss.clip_high = 0.28;
  options.loss.entropy_coef = 0.01;
  options.loss.kl_coef = 0.1;
  options.loss.kl_estimator = KlEstimator::kK3;
  options.micro_batch_tokens = 3;  // one row per micro-batch
  return options;
}

TEST(UpdatePassTest, TokenMeanLossAndGradientsMatchHandComputedCase) {
  const double mask[2][3] = {{0, 1, 1}, {0, 1, 1}};
  HandCase c;
  BuildHandCase(&c, mask);
  const double w[2][3] = {{0, 0.25, 0.25}, {0, 0.25, 0.25}};
  const HandResult h = ByHand(w, HandOptions().loss);
  EXPECT_EQ(h.clipped, 2);  // the case exercises both clip bounds
  ExpectMatchesHand(c, HandOptions(), h);
}

TEST(UpdatePassTest, SequenceMeanWeightsEachSequenceEqually) {
  const double mask[2][3] = {{0, 1, 0}, {0, 1, 1}};  // sequence 0 has one response token
  HandCase c;
  BuildHandCase(&c, mask);
  const double w[2][3] = {{0, 0.5, 0}, {0, 0.25, 0.25}};
  UpdateOptions options = HandOptions();
  options.aggregation = LossAggregation::kSequenceMean;
  ExpectMatchesHand(c, options, ByHand(w, options.loss));
}

TEST(UpdatePassTest, K1EstimatorIsTheLogRatioToTheReference) {
  const double mask[2][3] = {{0, 1, 1}, {0, 1, 1}};
  HandCase c;
  BuildHandCase(&c, mask);
  UpdateOptions options = HandOptions();
  options.loss.kl_coef = 1.0;
  options.loss.entropy_coef = 0.0;
  options.loss.kl_estimator = KlEstimator::kK1;
  std::vector<MiniBatch> plan = PlanPass(c.batch, {}, options);
  PassAccumulator acc;
  SFPO_ASSERT_OK(AccumulateMiniBatchGradients(AsPolicyFn(c.policy), c.policy->Trainable(),
                                              c.batch, plan[0], options, &acc));
  // k1 = logp - ref = shift; mean over 4 tokens.
  EXPECT_NEAR(acc.ref_kl / acc.tokens, (0.2 - 0.1 + 0.05 + 0.3) / 4, 1e-12);
}

// ---- Micro-batch invariance.

std::vector<torch::Tensor> GradsWithBudget(const RolloutBatch& batch, UpdateOptions options,
                                           int64_t budget, int64_t* micro_batches) {
  BigramPolicy policy(7, torch::kFloat64, 11);
  options.micro_batch_tokens = budget;
  std::vector<MiniBatch> plan = PlanPass(batch, {2, 0, 3, 1}, options);
  SFPO_CHECK(plan.size() == 1);
  *micro_batches = static_cast<int64_t>(plan[0].micro_batches.size());
  PassAccumulator acc;
  SFPO_CHECK_OK(AccumulateMiniBatchGradients(AsPolicyFn(policy), policy->Trainable(), batch,
                                             plan[0], options, &acc));
  return {policy->table.grad().clone(), policy->bias.grad().clone()};
}

class MicroBatchSplitTest : public ::testing::TestWithParam<LossAggregation> {};

TEST_P(MicroBatchSplitTest, AnySplitGivesTheSameGradient) {
  RolloutBatch batch = RandomBatch(4, 3, 9, 7, 5);
  SFPO_ASSERT_OK(PrepareBatch(&batch));
  {
    BigramPolicy policy(7, torch::kFloat64, 11);
    SFPO_ASSERT_OK_AND_ASSIGN(batch.old_logp, ComputeSequenceLogp(AsPolicyFn(policy), batch, 1000));
  }
  batch.old_logp = batch.old_logp + 0.3 * torch::randn(batch.old_logp.sizes(), torch::kFloat64);
  batch.ref_logp = batch.old_logp + 0.1 * torch::randn(batch.old_logp.sizes(), torch::kFloat64);
  UpdateOptions options;
  options.aggregation = GetParam();
  options.loss.kl_coef = 0.05;
  options.loss.entropy_coef = 0.01;
  options.mini_batch_groups = 4;
  int64_t one = 0, many = 0, some = 0;
  const auto whole = GradsWithBudget(batch, options, 1 << 20, &one);
  const auto alone = GradsWithBudget(batch, options, 1, &many);
  const auto mixed = GradsWithBudget(batch, options, 20, &some);
  EXPECT_EQ(one, 1);
  EXPECT_EQ(many, 12);
  EXPECT_GT(some, 1);
  EXPECT_LT(some, 12);
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_GT(whole[i].abs().max().item<double>(), 1e-4);
    EXPECT_LT((whole[i] - alone[i]).abs().max().item<double>(), 1e-6);
    EXPECT_LT((whole[i] - mixed[i]).abs().max().item<double>(), 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(Aggregations, MicroBatchSplitTest,
                         ::testing::Values(LossAggregation::kTokenMean,
                                           LossAggregation::kSequenceMean));

TEST(UpdatePassTest, PacksLongestFirstWithinTheTokenBudget) {
  const std::vector<int64_t> lengths = {5, 0, 3, 9, 3};
  std::vector<MicroBatch> micro = PackMicroBatches({0, 1, 2, 3, 4}, lengths, 10);
  ASSERT_EQ(micro.size(), 3u);
  EXPECT_EQ(micro[0].rows, std::vector<int64_t>({3}));  // 9 alone (2 * 9 > 10)
  EXPECT_EQ(micro[0].max_length, 9);
  EXPECT_EQ(micro[1].rows, std::vector<int64_t>({0, 2}));  // 2 * 5 <= 10; 3 * 5 > 10
  EXPECT_EQ(micro[1].max_length, 5);
  EXPECT_EQ(micro[2].rows, std::vector<int64_t>({4}));  // row 1 has no response: skipped
}

TEST(UpdatePassTest, RejectsUnpreparedBatchAndBadGroupOrder) {
  RolloutBatch batch = RandomBatch(2, 2, 6, 5, 1);
  BigramPolicy policy(5, torch::kFloat64, 1);
  torch::optim::SGD sgd(policy->Trainable(), torch::optim::SGDOptions(0.1));
  EXPECT_THAT(RunUpdatePass(AsPolicyFn(policy), policy->Trainable(), &sgd, batch, {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("PrepareBatch")));
  SFPO_ASSERT_OK(PrepareBatch(&batch));
  batch.old_logp = torch::zeros_like(batch.response_mask);
  EXPECT_THAT(RunUpdatePass(AsPolicyFn(policy), policy->Trainable(), &sgd, batch, {0, 0}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permutation")));
}

TEST(UpdatePassTest, PrepareBatchNamesTheBadField) {
  RolloutBatch batch = RandomBatch(2, 2, 6, 5, 1);
  batch.old_logp = torch::zeros({4, 5});
  EXPECT_THAT(PrepareBatch(&batch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("old_logp")));
  batch.old_logp = at::Tensor();
  batch.group_size = 3;
  EXPECT_THAT(PrepareBatch(&batch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("group_size")));
}

TEST(UpdatePassTest, TorchErrorsBecomeStatuses) {
  RolloutBatch batch = RandomBatch(1, 2, 6, 5, 1);
  SFPO_ASSERT_OK(PrepareBatch(&batch));
  BigramPolicy policy(3, torch::kFloat64, 1);  // vocabulary too small for the ids
  EXPECT_THAT(ComputeSequenceLogp(AsPolicyFn(policy), batch, 100),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("old_logp")));
}

}  // namespace
}  // namespace sfpo
