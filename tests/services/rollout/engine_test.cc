#include "services/rollout/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

ModelArch TestArch() {
  ModelArch arch;
  arch.vocab_size = 29;
  arch.hidden_size = 32;
  arch.intermediate_size = 64;
  arch.num_hidden_layers = 2;
  arch.num_attention_heads = 4;
  arch.num_key_value_heads = 2;
  arch.max_position_embeddings = 48;
  arch.tie_word_embeddings = false;
  return arch;
}

// Weights large enough that the next-token distributions are far from uniform.
Policy MakePolicy(uint64_t seed) {
  Policy policy(TestArch());
  InitPolicyWeights(policy, seed);
  torch::NoGradGuard no_grad;
  for (auto& item : policy->named_parameters()) {
    if (item.value().dim() == 2) item.value().mul_(15.0);
  }
  return policy;
}

std::unique_ptr<GenerationEngine> MakeEngine(Policy policy, EngineOptions options = {}) {
  options.eos_id = -1;  // random weights: no eos unless a test asks for one
  auto engine = GenerationEngine::Create(std::move(policy), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return std::move(engine).value();
}

std::vector<GenerationRequest> Requests() {
  return {{{1, 5, 7, 9, 11}, 100}, {{1, 4}, 101}, {{1, 3, 3, 3, 8, 12, 20, 28}, 102}, {{2}, 103}};
}

SamplingOptions Sampling(double temperature, int top_k, double top_p, int max_new) {
  SamplingOptions s;
  s.temperature = temperature;
  s.top_k = top_k;
  s.top_p = top_p;
  s.max_new_tokens = max_new;
  return s;
}

// prompt + completion as a [1, T] tensor.
torch::Tensor Sequence(const std::vector<int32_t>& prompt, const std::vector<int32_t>& tokens) {
  std::vector<int64_t> all(prompt.begin(), prompt.end());
  all.insert(all.end(), tokens.begin(), tokens.end());
  return torch::tensor(all, torch::kInt64).unsqueeze(0);
}

TEST(GenerationEngineTest, LogprobsEqualTheLearnersComputeTokenStats) {
  Policy policy = MakePolicy(1);
  auto engine = MakeEngine(policy);
  for (const SamplingOptions& sampling :
       {Sampling(1.0, -1, 1.0, 12), Sampling(0.7, 5, 0.9, 12), Sampling(1.3, -1, 0.8, 12)}) {
    SFPO_ASSERT_OK_AND_ASSIGN(auto results, engine->Generate(Requests(), sampling));
    ASSERT_EQ(results.size(), 4u);
    for (size_t i = 0; i < results.size(); ++i) {
      const auto prompt = Requests()[i].prompt;
      ASSERT_EQ(results[i].tokens.size(), 12u);
      ASSERT_EQ(results[i].logprobs.size(), 12u);
      EXPECT_TRUE(results[i].truncated);
      torch::NoGradGuard no_grad;
      TokenStats stats = ComputeTokenStats(policy, Sequence(prompt, results[i].tokens),
                                           sampling.temperature);
      for (size_t j = 0; j < results[i].tokens.size(); ++j) {
        EXPECT_NEAR(results[i].logprobs[j], stats.logp[0][prompt.size() + j].item<float>(), 2e-5)
            << "request " << i << " token " << j;
      }
    }
  }
}

TEST(GenerationEngineTest, TemperatureZeroIsGreedyArgmaxOfTheFullForward) {
  Policy policy = MakePolicy(2);
  auto engine = MakeEngine(policy);
  SFPO_ASSERT_OK_AND_ASSIGN(auto results, engine->Generate(Requests(), Sampling(0.0, -1, 1.0, 10)));
  torch::NoGradGuard no_grad;
  std::set<int32_t> distinct;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto prompt = Requests()[i].prompt;
    torch::Tensor logits = policy->forward(Sequence(prompt, results[i].tokens))[0];
    for (size_t j = 0; j < results[i].tokens.size(); ++j) {
      EXPECT_EQ(results[i].tokens[j], logits[prompt.size() - 1 + j].argmax().item<int64_t>())
          << "request " << i << " token " << j;
      distinct.insert(results[i].tokens[j]);
    }
  }
  EXPECT_GT(distinct.size(), 1u);  // not a degenerate model
}

TEST(GenerationEngineTest, SameSeedGivesSameTokensWhateverTheBatch) {
  Policy policy = MakePolicy(3);
  auto engine = MakeEngine(policy);
  const SamplingOptions sampling = Sampling(1.0, -1, 1.0, 16);
  SFPO_ASSERT_OK_AND_ASSIGN(auto first, engine->Generate(Requests(), sampling));
  SFPO_ASSERT_OK_AND_ASSIGN(auto second, engine->Generate(Requests(), sampling));
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i].tokens, second[i].tokens);
  // Request 2 alone, and in another batch at another row.
  auto reqs = Requests();
  SFPO_ASSERT_OK_AND_ASSIGN(auto alone, engine->Generate({reqs[2]}, sampling));
  SFPO_ASSERT_OK_AND_ASSIGN(auto other, engine->Generate({reqs[3], reqs[0], reqs[2]}, sampling));
  EXPECT_EQ(alone[0].tokens, first[2].tokens);
  EXPECT_EQ(other[2].tokens, first[2].tokens);
  // Another seed, another completion.
  reqs[2].seed = 999;
  SFPO_ASSERT_OK_AND_ASSIGN(auto reseeded, engine->Generate({reqs[2]}, sampling));
  EXPECT_NE(reseeded[0].tokens, first[2].tokens);
}

TEST(GenerationEngineTest, BatchesLargerThanMaxBatchSizeRunInChunksWithSameResults) {
  Policy policy = MakePolicy(4);
  EngineOptions small;
  small.max_batch_size = 3;
  auto chunked = MakeEngine(policy, small);
  auto whole = MakeEngine(policy);
  std::vector<GenerationRequest> reqs = Requests();
  for (auto r : Requests()) {
    r.seed += 50;
    reqs.push_back(r);
  }
  const SamplingOptions sampling = Sampling(0.9, -1, 1.0, 8);
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, chunked->Generate(reqs, sampling));
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, whole->Generate(reqs, sampling));
  ASSERT_EQ(a.size(), reqs.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].tokens, b[i].tokens) << i;
  EXPECT_EQ(chunked->last_stats().generated_tokens, 8 * static_cast<int64_t>(reqs.size()));
}

TEST(GenerationEngineTest, StopTokensAndEosEndARowAndAreIncluded) {
  Policy policy = MakePolicy(5);
  auto engine = MakeEngine(policy);
  const auto reqs = Requests();
  SFPO_ASSERT_OK_AND_ASSIGN(auto greedy, engine->Generate(reqs, Sampling(0.0, -1, 1.0, 10)));
  // Stop at the greedy completion's third token of request 0.
  SamplingOptions stopping = Sampling(0.0, -1, 1.0, 10);
  stopping.stop_tokens = {greedy[0].tokens[2]};
  SFPO_ASSERT_OK_AND_ASSIGN(auto stopped, engine->Generate(reqs, stopping));
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto it = std::find(greedy[i].tokens.begin(), greedy[i].tokens.end(), greedy[0].tokens[2]);
    const size_t expected = it == greedy[i].tokens.end() ? 10 : (it - greedy[i].tokens.begin()) + 1;
    EXPECT_EQ(stopped[i].tokens.size(), expected) << i;
    EXPECT_EQ(stopped[i].truncated, it == greedy[i].tokens.end()) << i;
    EXPECT_TRUE(std::equal(stopped[i].tokens.begin(), stopped[i].tokens.end(), greedy[i].tokens.begin()));
  }
  EXPECT_EQ(stopped[0].tokens.size(), 3u);
  EXPECT_FALSE(stopped[0].truncated);

  auto eos_engine = GenerationEngine::Create(policy, [&] {
    EngineOptions o;
    o.eos_id = greedy[1].tokens[0];
    return o;
  }());
  ASSERT_TRUE(eos_engine.ok());
  SFPO_ASSERT_OK_AND_ASSIGN(auto eos, (*eos_engine)->Generate({reqs[1]}, Sampling(0.0, -1, 1.0, 10)));
  EXPECT_EQ(eos[0].tokens, std::vector<int32_t>{greedy[1].tokens[0]});
  EXPECT_FALSE(eos[0].truncated);
}

TEST(GenerationEngineTest, RowsStopWhenTheyFillTheModelsPositions) {
  auto engine = MakeEngine(MakePolicy(6));
  GenerationRequest near_full{std::vector<int32_t>(45, 4), 1};  // 48 positions
  SFPO_ASSERT_OK_AND_ASSIGN(auto results,
                            engine->Generate({near_full, Requests()[0]}, Sampling(1.0, -1, 1.0, 10)));
  EXPECT_EQ(results[0].tokens.size(), 3u);
  EXPECT_TRUE(results[0].truncated);
  EXPECT_EQ(results[1].tokens.size(), 10u);
}

TEST(GenerationEngineTest, WeightsCopiedIntoThePolicyBetweenCallsAreUsed) {
  Policy policy = MakePolicy(7);
  Policy newer = MakePolicy(8);
  auto engine = MakeEngine(policy);
  auto reference = MakeEngine(newer);
  const SamplingOptions greedy = Sampling(0.0, -1, 1.0, 10);
  SFPO_ASSERT_OK_AND_ASSIGN(auto before, engine->Generate(Requests(), greedy));
  {
    torch::NoGradGuard no_grad;
    auto src = newer->named_parameters();
    for (auto& item : policy->named_parameters()) item.value().copy_(src[item.key()]);
  }
  SFPO_ASSERT_OK_AND_ASSIGN(auto after, engine->Generate(Requests(), greedy));
  SFPO_ASSERT_OK_AND_ASSIGN(auto expected, reference->Generate(Requests(), greedy));
  bool changed = false;
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].tokens, expected[i].tokens);
    changed |= after[i].tokens != before[i].tokens;
  }
  EXPECT_TRUE(changed);
}

TEST(GenerationEngineTest, RejectsBadRequestsNamingTheRequest) {
  auto engine = MakeEngine(MakePolicy(9));
  const SamplingOptions sampling = Sampling(1.0, -1, 1.0, 4);
  EXPECT_THAT(engine->Generate({{{1, 2}, 0}, {{}, 0}}, sampling),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("request 1 has an empty prompt")));
  EXPECT_THAT(engine->Generate({{{1, 29}, 0}}, sampling),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token 29 outside the vocabulary")));
  EXPECT_THAT(engine->Generate({{std::vector<int32_t>(48, 1), 0}}, sampling),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("48 tokens")));
  EXPECT_THAT(engine->Generate({{{1}, 0}}, Sampling(1.0, -1, 1.5, 4)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p")));
  EngineOptions bad;
  bad.eos_id = 29;
  EXPECT_THAT(GenerationEngine::Create(MakePolicy(9), bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("eos_id 29")));
  SFPO_ASSERT_OK_AND_ASSIGN(auto none, engine->Generate({}, sampling));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace sfpo
