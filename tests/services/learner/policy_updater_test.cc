// The learner's model side end to end: scored groups in, a policy that prefers the rewarded
// completions out.
#include "services/learner/policy_updater.h"

#include <torch/torch.h>

#include <filesystem>

#include "common/model.h"
#include "common/model_arch.h"
#include "common/status_matchers.h"
#include "common/weights_torch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

// Sum of log-probs of each group's completions under the packed weights: [groups][samples].
std::vector<std::vector<double>> CompletionLogp(const PackedWeights& w,
                                                const std::vector<AcceptedGroup>& groups) {
  Policy policy(LoadModelArch("tiny-char").value());
  EXPECT_TRUE(ApplyPackedWeights(w, *policy).ok());
  torch::NoGradGuard no_grad;
  std::vector<std::vector<double>> out;
  for (const AcceptedGroup& g : groups) {
    out.emplace_back();
    for (const Completion& c : g.group.completions) {
      std::vector<int64_t> ids(g.lease.prompt_tokens.begin(), g.lease.prompt_tokens.end());
      ids.insert(ids.end(), c.tokens.begin(), c.tokens.end());
      auto t = torch::tensor(ids, torch::kInt64).unsqueeze(0);
      TokenStats s = ComputeTokenStats(policy, t, 1.0);
      const int64_t p = static_cast<int64_t>(g.lease.prompt_tokens.size());
      out.back().push_back(s.logp[0].slice(0, p).sum().item<double>());
    }
  }
  return out;
}

std::vector<AcceptedGroup> MakeGroups() {
  std::vector<AcceptedGroup> groups;
  for (int g = 0; g < 4; ++g) {
    AcceptedGroup a;
    a.lease.lease_id = g + 1;
    a.lease.prompt_tokens = {1, 20 + g, 30 + g, 40};
    a.lease.group_size = 4;
    a.group.lease_id = g + 1;
    for (int i = 0; i < 4; ++i) {
      Completion c;
      c.tokens = {50 + 4 * g + i, 70 + g, 80 + 4 * g + i, 2};  // no token shared across groups
      c.logprobs = {-1, -1, -1, -1};
      // Rewarded: sample g % 4 of group g.
      c.reward = i == g % 4 ? 1.0f : 0.0f;
      a.group.completions.push_back(c);
    }
    groups.push_back(a);
  }
  return groups;
}

class PolicyUpdaterTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyUpdaterTest, AnUpdateRaisesRewardedCompletionsAboveTheirGroup) {
  PolicyUpdaterOptions o;
  o.config.learner.algorithm = GetParam();
  o.config.learner.lr = 1e-3;
  o.config.learner.mini_batch_prompts = 2;  // several optimizer steps, shuffled group order
  o.config.run.output_dir =
      (std::filesystem::temp_directory_path() / ("policy_updater_test_" + GetParam())).string();
  SFPO_ASSERT_OK_AND_ASSIGN(auto updater, MakeTorchPolicyUpdater(o));
  std::vector<AcceptedGroup> groups = MakeGroups();
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights before, updater->Pack(0));
  SFPO_ASSERT_OK_AND_ASSIGN(UpdateReport report, updater->Update(groups, 0));
  EXPECT_EQ(report.samples_trained, 16);
  EXPECT_EQ(report.sfpo_active, GetParam() == "sfpo");
  SFPO_ASSERT_OK_AND_ASSIGN(PackedWeights after, updater->Pack(1));
  auto lp0 = CompletionLogp(before, groups);
  auto lp1 = CompletionLogp(after, groups);
  for (int g = 0; g < 4; ++g) {
    const int good = g % 4;
    const double gain_good = lp1[g][good] - lp0[g][good];
    for (int i = 0; i < 4; ++i) {
      if (i == good) continue;
      EXPECT_GT(gain_good, lp1[g][i] - lp0[g][i]) << "group " << g << " sample " << i;
    }
  }
  std::filesystem::remove_all(o.config.run.output_dir);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PolicyUpdaterTest, ::testing::Values("grpo", "sfpo"));

}  // namespace
}  // namespace sfpo
