#include "services/learner/distributed/data_parallel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "common/status_matchers.h"
#include "services/learner/algorithm/slow_fast.h"
#include "tests/services/learner/distributed/rank_threads.h"
#include "tests/services/learner/test_policies.h"

namespace sfpo {
namespace {

using ::sfpo::testing::BigramPolicy;
using ::testing::HasSubstr;

constexpr int64_t kVocab = 12;  // table 144 + bias 12 = 156 parameters

TEST(ShardLayoutTest, GivesEveryElementToExactlyOneRank) {
  for (int world : {1, 2, 3, 4}) {
    for (int64_t bucket : {1, 5, 37, 1000}) {
      std::vector<int> owner(156, -1);
      int64_t shard_size = -1;
      for (int r = 0; r < world; ++r) {
        const ShardLayout l = ShardLayout::Make(156, bucket, world, r);
        if (shard_size >= 0) EXPECT_EQ(l.shard_size, shard_size);  // equal shards
        shard_size = l.shard_size;
        int64_t covered = 0;
        for (const ShardLayout::Bucket& b : l.buckets) {
          EXPECT_EQ(b.start, covered);
          covered += b.length;
          const auto [begin, end] = l.Owned(b);
          EXPECT_LE(end - begin, b.chunk);
          for (int64_t i = begin; i < end; ++i) {
            EXPECT_EQ(owner[i], -1) << "element " << i << " owned twice";
            owner[i] = r;
          }
        }
        EXPECT_EQ(covered, 156);
        // Padding is at most one element per rank per bucket.
        EXPECT_LE(l.shard_size * world, 156 + world * static_cast<int64_t>(l.buckets.size()));
      }
      for (int64_t i = 0; i < 156; ++i) EXPECT_GE(owner[i], 0) << "element " << i;
    }
  }
}

struct RunSetup {
  torch::Dtype dtype = torch::kFloat32;
  int64_t groups = 8, group_size = 3, max_len = 9;
  UpdateOptions update;
  DataParallelOptions dp;
  double lr = 0.05;
  RunSetup() {
    update.mini_batch_groups = 3;  // 8 groups: mini-batches of 3, 3, 2
    update.micro_batch_tokens = 20;
    update.loss.entropy_coef = 0.01;
    update.grad_clip = 0.5;
    dp.adam.weight_decay = 0.01;
  }
};

// What a run leaves: the parameters after each step, the flat optimizer state and theta_0.
struct RunResult {
  std::vector<torch::Tensor> params_after_grpo, params_after_sfpo;
  torch::Tensor exp_avg, exp_avg_sq, theta0;  // flat, consolidated
  int64_t adam_step = 0;
  std::vector<double> entropies;
  int64_t buckets_overlapped = 0;
};

RolloutBatch PreparedBatch(const RunSetup& s, uint64_t seed) {
  RolloutBatch b = testing::RandomBatch(s.groups, s.group_size, s.max_len, kVocab, seed);
  b.response_mask = b.response_mask.to(s.dtype);
  EXPECT_THAT(PrepareBatch(&b), IsOk());
  return b;
}

std::vector<torch::Tensor> Clone(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

GroupOrderFn Shuffler(uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  return [rng](int64_t n) {
    std::vector<int64_t> o(n);
    std::iota(o.begin(), o.end(), 0);
    std::shuffle(o.begin(), o.end(), *rng);
    return o;
  };
}

// One rank, unsharded: SlowFastUpdater with torch::optim::AdamW. A GRPO step, then an SFPO step
// (K = 2, alpha = 0.7).
RunResult RunReference(const RunSetup& s) {
  BigramPolicy policy(kVocab, s.dtype, 7);
  std::vector<torch::Tensor> params = policy->Trainable();
  torch::optim::AdamW adam(params, torch::optim::AdamWOptions(s.lr)
                                       .betas({s.dp.adam.beta1, s.dp.adam.beta2})
                                       .eps(s.dp.adam.eps)
                                       .weight_decay(s.dp.adam.weight_decay));
  SlowFastUpdater updater(params);
  GroupOrderFn order = Shuffler(11);
  RunResult out;
  RolloutBatch b1 = PreparedBatch(s, 1), b2 = PreparedBatch(s, 2);
  SlowFastOptions grpo;
  grpo.inner_steps = 0;
  auto st = updater.Step(testing::AsPolicyFn(policy), &adam, &b1, s.update, grpo, order);
  EXPECT_THAT(st.status(), IsOk());
  out.entropies.push_back(st->passes.back().entropy);
  out.params_after_grpo = Clone(params);
  out.theta0 = torch::cat({params[0].detach().reshape({-1}), params[1].detach().reshape({-1})});
  SlowFastOptions sfpo;
  sfpo.inner_steps = 2;
  sfpo.alpha = 0.7;
  st = updater.Step(testing::AsPolicyFn(policy), &adam, &b2, s.update, sfpo, order);
  EXPECT_THAT(st.status(), IsOk());
  out.entropies.push_back(st->passes.back().entropy);
  out.params_after_sfpo = Clone(params);
  std::vector<torch::Tensor> m, v;
  for (const torch::Tensor& p : params) {
    auto& state = static_cast<torch::optim::AdamWParamState&>(
        *adam.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
    m.push_back(state.exp_avg().reshape({-1}));
    v.push_back(state.exp_avg_sq().reshape({-1}));
    out.adam_step = state.step();
  }
  out.exp_avg = torch::cat(m);
  out.exp_avg_sq = torch::cat(v);
  return out;
}

// The same two steps on `world` ranks (threads, Gloo), sharded.
std::vector<RunResult> RunDataParallel(const RunSetup& s, int world) {
  std::vector<BigramPolicy> policies;
  std::vector<RolloutBatch> b1, b2;
  for (int r = 0; r < world; ++r) {
    // Rank 0 keeps the reference's initial weights; the others start elsewhere and must receive
    // rank 0's through the broadcast.
    policies.emplace_back(kVocab, s.dtype, r == 0 ? 7 : 100 + r);
    b1.push_back(PreparedBatch(s, 1));
    b2.push_back(PreparedBatch(s, 2));
  }
  std::vector<RunResult> out(world);
  std::vector<absl::Status> statuses =
      testing::RunGlooRanks(world, [&](int rank, Collectives* c) -> absl::Status {
        RunResult& res = out[rank];
        std::vector<torch::Tensor> params = policies[rank]->Trainable();
        SFPO_ASSIGN_OR_RETURN(auto dp, DataParallelUpdater::Create(params, c, s.dp));
        GroupOrderFn order = Shuffler(11);
        SlowFastOptions grpo;
        grpo.inner_steps = 0;
        PolicyFn fn = testing::AsPolicyFn(policies[rank]);
        SFPO_ASSIGN_OR_RETURN(SlowFastStepStats st,
                              dp->Step(fn, &b1[rank], s.update, grpo, order, s.lr));
        res.entropies.push_back(st.passes.back().entropy);
        res.params_after_grpo = Clone(params);
        SlowFastOptions sfpo;
        sfpo.inner_steps = 2;
        sfpo.alpha = 0.7;
        SFPO_ASSIGN_OR_RETURN(st, dp->Step(fn, &b2[rank], s.update, sfpo, order, s.lr));
        res.entropies.push_back(st.passes.back().entropy);
        res.params_after_sfpo = Clone(params);
        const ShardState state = dp->state();
        res.adam_step = state.adam_step;
        res.buckets_overlapped = dp->buckets_overlapped();
        SFPO_ASSIGN_OR_RETURN(res.exp_avg, dp->GatherFull(state.exp_avg));
        SFPO_ASSIGN_OR_RETURN(res.exp_avg_sq, dp->GatherFull(state.exp_avg_sq));
        SFPO_ASSIGN_OR_RETURN(res.theta0, dp->GatherFull(state.theta0));
        // SFPO's extra memory on this rank: its shard of theta_0, about 1/N of the parameters.
        EXPECT_LE(dp->saved_bytes(), dp->parameter_bytes() / world + 8 * world * 8);
        return absl::OkStatus();
      });
  for (int r = 0; r < world; ++r) EXPECT_THAT(statuses[r], IsOk()) << "rank " << r;
  return out;
}

double MaxDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m,
                 (a[i].to(torch::kFloat64) - b[i].to(torch::kFloat64)).abs().max().item<double>());
  }
  return m;
}

class DataParallelMatchesOneRank : public ::testing::TestWithParam<std::tuple<int, torch::Dtype>> {
};

TEST_P(DataParallelMatchesOneRank, AfterAGrpoAndAnSfpoStep) {
  torch::set_num_threads(1);
  const auto [world, dtype] = GetParam();
  RunSetup s;
  s.dtype = dtype;
  s.dp.bucket_bytes = 37 * torch::elementSize(dtype);  // buckets straddle the two parameters
  const double tol = dtype == torch::kFloat64 ? 1e-10 : 1e-5;
  const RunResult ref = RunReference(s);
  const std::vector<RunResult> ranks = RunDataParallel(s, world);
  ASSERT_EQ(ranks.size(), static_cast<size_t>(world));
  // The SFPO step moved the parameters, so equality is not vacuous.
  ASSERT_GT(MaxDiff(ref.params_after_grpo, ref.params_after_sfpo), 100 * tol);
  for (int r = 0; r < world; ++r) {
    SCOPED_TRACE(::testing::Message() << "rank " << r);
    ASSERT_EQ(ranks[r].params_after_sfpo.size(), 2u);
    EXPECT_LE(MaxDiff(ranks[r].params_after_grpo, ref.params_after_grpo), tol);
    EXPECT_LE(MaxDiff(ranks[r].params_after_sfpo, ref.params_after_sfpo), tol);
    // Pass statistics (the gate's entropy) are the global ones on every rank.
    EXPECT_NEAR(ranks[r].entropies[0], ref.entropies[0], tol);
    EXPECT_NEAR(ranks[r].entropies[1], ref.entropies[1], tol);
    // The sharded state, all-gathered, is the unsharded one.
    EXPECT_EQ(ranks[r].adam_step, ref.adam_step);
    EXPECT_LE(MaxDiff({ranks[r].theta0}, {ref.theta0}), tol);
    EXPECT_LE(MaxDiff({ranks[r].exp_avg}, {ref.exp_avg}), tol);
    EXPECT_LE(MaxDiff({ranks[r].exp_avg_sq}, {ref.exp_avg_sq}), tol);
  }
}

INSTANTIATE_TEST_SUITE_P(RanksAndDtypes, DataParallelMatchesOneRank,
                         ::testing::Combine(::testing::Values(2, 3),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)));

// Reducing buckets during the backward pass changes when they are reduced, not what: the same
// parameters and state, bitwise, as reducing them all after it.
TEST(DataParallelUpdaterTest, OverlappedReductionIsBitwiseTheReductionAfterBackward) {
  torch::set_num_threads(1);
  for (int world : {2, 3}) {
    SCOPED_TRACE(::testing::Message() << world << " ranks");
    RunSetup s;
    s.dp.bucket_bytes = 11 * 4;  // many buckets, some straddling the two parameters
    s.dp.overlap_reduce = false;
    const std::vector<RunResult> after = RunDataParallel(s, world);
    s.dp.overlap_reduce = true;
    const std::vector<RunResult> during = RunDataParallel(s, world);
    ASSERT_EQ(after.size(), static_cast<size_t>(world));
    ASSERT_EQ(during.size(), static_cast<size_t>(world));
    for (int r = 0; r < world; ++r) {
      SCOPED_TRACE(::testing::Message() << "rank " << r);
      EXPECT_EQ(after[r].buckets_overlapped, 0);
      EXPECT_GT(during[r].buckets_overlapped, 0);
      ASSERT_EQ(during[r].params_after_sfpo.size(), after[r].params_after_sfpo.size());
      for (size_t i = 0; i < after[r].params_after_sfpo.size(); ++i) {
        EXPECT_TRUE(torch::equal(during[r].params_after_grpo[i], after[r].params_after_grpo[i]));
        EXPECT_TRUE(torch::equal(during[r].params_after_sfpo[i], after[r].params_after_sfpo[i]));
      }
      EXPECT_TRUE(torch::equal(during[r].exp_avg, after[r].exp_avg));
      EXPECT_TRUE(torch::equal(during[r].exp_avg_sq, after[r].exp_avg_sq));
    }
  }
}

TEST(DataParallelUpdaterTest, OneRankShardedAdamWIsTorchAdamW) {
  torch::set_num_threads(1);
  RunSetup s;
  s.dtype = torch::kFloat64;
  s.update.grad_clip = 0;  // no clip: the gradients are identical, so is every AdamW step
  const RunResult ref = RunReference(s);
  BigramPolicy policy(kVocab, s.dtype, 7);
  std::unique_ptr<Collectives> local = MakeLocalCollectives();
  std::vector<torch::Tensor> params = policy->Trainable();
  auto dp = DataParallelUpdater::Create(params, local.get(), s.dp);
  ASSERT_THAT(dp.status(), IsOk());
  GroupOrderFn order = Shuffler(11);
  RolloutBatch b1 = PreparedBatch(s, 1), b2 = PreparedBatch(s, 2);
  SlowFastOptions grpo;
  grpo.inner_steps = 0;
  ASSERT_THAT((*dp)->Step(testing::AsPolicyFn(policy), &b1, s.update, grpo, order, s.lr).status(),
              IsOk());
  SlowFastOptions sfpo;
  sfpo.inner_steps = 2;
  sfpo.alpha = 0.7;
  ASSERT_THAT((*dp)->Step(testing::AsPolicyFn(policy), &b2, s.update, sfpo, order, s.lr).status(),
              IsOk());
  EXPECT_EQ(MaxDiff(Clone(params), ref.params_after_sfpo), 0.0);
  EXPECT_TRUE(torch::equal((*dp)->state().exp_avg, ref.exp_avg));
  EXPECT_TRUE(torch::equal((*dp)->state().exp_avg_sq, ref.exp_avg_sq));
  EXPECT_EQ((*dp)->saved_bytes(), (*dp)->parameter_bytes());
}

TEST(DataParallelUpdaterTest, RejectsParametersOfMixedDtypes) {
  std::unique_ptr<Collectives> local = MakeLocalCollectives();
  std::vector<torch::Tensor> params = {torch::zeros({3}, torch::kFloat32).requires_grad_(),
                                       torch::zeros({3}, torch::kFloat64).requires_grad_()};
  EXPECT_THAT(DataParallelUpdater::Create(params, local.get(), {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("one floating dtype")));
}

TEST(DataParallelUpdaterTest, LoadFullStateRejectsAWrongSize) {
  std::unique_ptr<Collectives> local = MakeLocalCollectives();
  std::vector<torch::Tensor> params = {torch::zeros({3}).requires_grad_()};
  auto dp = DataParallelUpdater::Create(params, local.get(), {});
  ASSERT_THAT(dp.status(), IsOk());
  EXPECT_THAT((*dp)->LoadFullState(1, torch::zeros({4}), torch::zeros({3}), torch::Tensor()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4 elements")));
}

}  // namespace
}  // namespace sfpo
