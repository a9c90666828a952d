#include "common/model.h"

#include <c10/core/InferenceMode.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelArch SmallArch(bool tied) {
  ModelArch arch;
  arch.vocab_size = 37;
  arch.hidden_size = 32;
  arch.intermediate_size = 48;
  arch.num_hidden_layers = 2;
  arch.num_attention_heads = 4;
  arch.num_key_value_heads = 2;
  arch.max_position_embeddings = 64;
  arch.rope_theta = 5000.0;
  arch.rms_norm_eps = 1e-5;
  arch.tie_word_embeddings = tied;
  return arch;
}

// Random weights with O(1) norms and biases, so every parameter matters in the comparison.
Policy MakePolicy(const ModelArch& arch, uint64_t seed) {
  Policy policy(arch);
  InitPolicyWeights(policy, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& p : policy->parameters()) {
    if (p.dim() == 1) p.copy_(1.0 + 0.3 * torch::randn(p.sizes()));
    else p.mul_(5.0);
  }
  return policy;
}

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/sfpo_model_test_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

torch::Tensor RandomIds(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(vocab, {b, t}, torch::kInt64);
}

TEST(PolicyTest, ParameterNamesAreHuggingFaceQwen2Names) {
  ModelArch arch = SmallArch(/*tied=*/false);
  arch.num_hidden_layers = 1;
  Policy policy(arch);
  std::vector<std::string> names;
  for (const auto& item : policy->named_parameters()) names.push_back(item.key());
  EXPECT_THAT(names, ElementsAre("model.embed_tokens.weight",
                                 "model.layers.0.self_attn.q_proj.weight",
                                 "model.layers.0.self_attn.q_proj.bias",
                                 "model.layers.0.self_attn.k_proj.weight",
                                 "model.layers.0.self_attn.k_proj.bias",
                                 "model.layers.0.self_attn.v_proj.weight",
                                 "model.layers.0.self_attn.v_proj.bias",
                                 "model.layers.0.self_attn.o_proj.weight",
                                 "model.layers.0.mlp.gate_proj.weight",
                                 "model.layers.0.mlp.up_proj.weight",
                                 "model.layers.0.mlp.down_proj.weight",
                                 "model.layers.0.input_layernorm.weight",
                                 "model.layers.0.post_attention_layernorm.weight",
                                 "model.norm.weight", "lm_head.weight"));
  int64_t count = 0;
  for (const auto& p : policy->parameters()) count += p.numel();
  EXPECT_EQ(count, ParameterCount(arch));
}

TEST(PolicyTest, TiedModelHasNoLmHeadAndCountsMatch) {
  Policy policy(SmallArch(/*tied=*/true));
  int64_t count = 0;
  for (const auto& item : policy->named_parameters()) {
    EXPECT_NE(item.key(), "lm_head.weight");
    count += item.value().numel();
  }
  EXPECT_EQ(count, ParameterCount(SmallArch(true)));
}

// Writes the model with SavePolicy, has /usr/bin/python3 parse the safetensors bytes and run an
// independent Qwen2 forward, and compares the logits.
void ExpectForwardMatchesPython(bool tied) {
  const ModelArch arch = SmallArch(tied);
  Policy policy = MakePolicy(arch, tied ? 11 : 12);
  const std::string dir = MakeTempDir();
  SFPO_ASSERT_OK(SavePolicy(policy, dir));
  WriteFile(dir + "/config.json", ModelArchToHfConfigJson(arch));
  torch::Tensor ids = RandomIds(3, 9, arch.vocab_size, 5);
  std::ostringstream ids_json;
  ids_json << "[";
  for (int64_t b = 0; b < ids.size(0); ++b) {
    ids_json << (b ? ",[" : "[");
    for (int64_t t = 0; t < ids.size(1); ++t) ids_json << (t ? "," : "") << ids[b][t].item<int64_t>();
    ids_json << "]";
  }
  ids_json << "]";
  WriteFile(dir + "/input_ids.json", ids_json.str());

  // ctest's environment when it carries the variable, else the source tree this was built from.
  const char* source = std::getenv("SFPO_SOURCE_DIR");
  if (source == nullptr) source = SFPO_TEST_SOURCE_DIR;
  const std::string command = absl::StrCat("/usr/bin/python3 ", source,
                                           "/tests/common/qwen2_reference.py ", dir);
  const int rc = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << command;

  torch::Tensor logits = policy->forward(ids).detach();
  std::ifstream in(dir + "/logits.bin", std::ios::binary);
  std::vector<float> expected(logits.numel());
  in.read(reinterpret_cast<char*>(expected.data()), expected.size() * sizeof(float));
  ASSERT_TRUE(in.good());
  torch::Tensor reference = torch::from_blob(expected.data(), logits.sizes(), torch::kFloat32);
  EXPECT_GT(reference.abs().max().item<float>(), 1.0f);  // not a degenerate comparison
  EXPECT_LT((logits - reference).abs().max().item<float>(), 1e-4);
}

TEST(PolicyTest, ForwardMatchesIndependentPythonTorchQwen2Untied) { ExpectForwardMatchesPython(false); }
TEST(PolicyTest, ForwardMatchesIndependentPythonTorchQwen2Tied) { ExpectForwardMatchesPython(true); }

TEST(PolicyTest, KvCacheDecodingMatchesFullRecomputation) {
  const ModelArch arch = SmallArch(false);
  Policy policy = MakePolicy(arch, 3);
  // Three rows with prompts of 5, 2 and 7 tokens, left-padded to 7, then 6 decode steps.
  const std::vector<int64_t> lengths = {5, 2, 7};
  const int64_t b = 3, p = 7, steps = 6, cap = p + steps;
  torch::Tensor full = RandomIds(b, p + steps, arch.vocab_size, 9);  // row's tokens, unpadded
  torch::Tensor ids = torch::zeros({b, p}, torch::kInt64);
  torch::Tensor pos = torch::zeros({b, p}, torch::kInt64);
  torch::Tensor valid = torch::ones({b, cap}, torch::kBool);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t pad = p - lengths[r];
    ids[r].narrow(0, pad, lengths[r]).copy_(full[r].narrow(0, 0, lengths[r]));
    pos[r].narrow(0, pad, lengths[r]).copy_(torch::arange(lengths[r]));
    valid[r].narrow(0, 0, pad).fill_(false);
  }
  KvCache cache = policy->NewKvCache(b, cap);
  std::vector<torch::Tensor> cached = {policy->ForwardCached(ids, pos, valid, 0, &cache)};
  for (int64_t s = 0; s < steps; ++s) {
    torch::Tensor next = torch::zeros({b, 1}, torch::kInt64);
    torch::Tensor next_pos = torch::zeros({b, 1}, torch::kInt64);
    for (int64_t r = 0; r < b; ++r) {
      next[r][0] = full[r][lengths[r] + s];
      next_pos[r][0] = lengths[r] + s;
    }
    cached.push_back(policy->ForwardCached(next, next_pos, valid, p + s, &cache));
  }
  torch::NoGradGuard no_grad;
  for (int64_t r = 0; r < b; ++r) {
    torch::Tensor reference = policy->forward(full[r].narrow(0, 0, lengths[r] + steps).unsqueeze(0))[0];
    for (int64_t s = 0; s <= steps; ++s) {
      torch::Tensor expected = reference[lengths[r] - 1 + s];
      EXPECT_LT((cached[s][r] - expected).abs().max().item<float>(), 1e-5)
          << "row " << r << " step " << s;
    }
  }
}

TEST(PolicyTest, InPlaceWeightWritesReachTheFusedInferencePath) {
  const ModelArch arch = SmallArch(true);
  Policy policy = MakePolicy(arch, 4);
  Policy other = MakePolicy(arch, 5);
  torch::Tensor ids = RandomIds(2, 6, arch.vocab_size, 1);
  torch::Tensor pos = torch::arange(6).repeat({2, 1});
  torch::Tensor valid = torch::ones({2, 6}, torch::kBool);
  auto cached_last = [&](Policy& pol) {
    KvCache cache = pol->NewKvCache(2, 6);
    return pol->ForwardCached(ids, pos, valid, 0, &cache);
  };
  auto params = policy->named_parameters();
  auto other_params = other->named_parameters();
  {
    // The rollout worker's weight swap: copy_ under NoGradGuard. Half through .data().
    torch::NoGradGuard no_grad;
    int i = 0;
    for (auto& item : params) {
      if (i++ % 2) item.value().copy_(other_params[item.key()]);
      else item.value().data().copy_(other_params[item.key()]);
    }
  }
  EXPECT_LT((cached_last(policy) - cached_last(other)).abs().max().item<float>(), 1e-6);
  {
    // Storage replaced wholesale (what Module::to does): the fused buffers are rebuilt.
    torch::NoGradGuard no_grad;
    params["model.layers.1.self_attn.k_proj.weight"].set_data(
        torch::zeros_like(params["model.layers.1.self_attn.k_proj.weight"]));
    other_params["model.layers.1.self_attn.k_proj.weight"].zero_();
    params["model.layers.0.mlp.up_proj.weight"].set_data(other_params["model.layers.0.mlp.up_proj.weight"].clone() * 2);
    other_params["model.layers.0.mlp.up_proj.weight"].mul_(2);
  }
  torch::Tensor a = cached_last(policy);
  torch::Tensor full = policy->forward(ids).detach().select(1, 5);
  EXPECT_LT((a - cached_last(other)).abs().max().item<float>(), 1e-6);
  EXPECT_LT((a - full).abs().max().item<float>(), 1e-5);
}

TEST(PolicyTest, ComputeTokenStatsMatchesLogSoftmaxOfShiftedLogitsAndIsDifferentiable) {
  const ModelArch arch = SmallArch(false);
  Policy policy = MakePolicy(arch, 6);
  torch::Tensor ids = RandomIds(2, 5, arch.vocab_size, 2);
  const double temperature = 0.7;
  TokenStats stats = ComputeTokenStats(policy, ids, temperature);
  ASSERT_EQ(stats.logp.sizes(), ids.sizes());
  ASSERT_EQ(stats.entropy.sizes(), ids.sizes());
  torch::Tensor logits = policy->forward(ids).detach().to(torch::kFloat64);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(stats.logp[b][0].item<float>(), 0.0f);
    EXPECT_EQ(stats.entropy[b][0].item<float>(), 0.0f);
    for (int64_t t = 1; t < 5; ++t) {
      torch::Tensor z = logits[b][t - 1] / temperature;
      torch::Tensor logz = z - z.exp().sum().log();
      const double logp = logz[ids[b][t].item<int64_t>()].item<double>();
      const double entropy = -(logz.exp() * logz).sum().item<double>();
      EXPECT_NEAR(stats.logp[b][t].item<float>(), logp, 1e-5);
      EXPECT_NEAR(stats.entropy[b][t].item<float>(), entropy, 1e-5);
    }
  }
  (stats.logp.sum() + stats.entropy.sum()).backward();
  for (const auto& item : policy->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<float>(), 0.0f) << item.key();
  }
}

TEST(PolicyTest, InitPolicyWeightsIsDeterministicPerSeed) {
  const ModelArch arch = SmallArch(true);
  Policy a(arch), b(arch), c(arch);
  InitPolicyWeights(a, 42);
  InitPolicyWeights(b, 42);
  InitPolicyWeights(c, 43);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  for (const auto& item : pa) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  }
  const torch::Tensor& w = pa["model.layers.0.self_attn.q_proj.weight"];
  EXPECT_FALSE(torch::equal(w, pc["model.layers.0.self_attn.q_proj.weight"]));
  EXPECT_NEAR(w.std().item<float>(), 0.02, 0.004);
  EXPECT_TRUE(torch::equal(pa["model.norm.weight"], torch::ones({arch.hidden_size})));
  EXPECT_TRUE(torch::equal(pa["model.layers.1.self_attn.v_proj.bias"], torch::zeros({16})));
}

TEST(PolicyTest, SaveAndLoadRoundTripsEveryParameter) {
  const ModelArch arch = SmallArch(false);
  Policy saved = MakePolicy(arch, 7);
  Policy loaded(arch);
  const std::string dir = MakeTempDir();
  SFPO_ASSERT_OK(SavePolicy(saved, dir));
  SFPO_ASSERT_OK(LoadPolicy(loaded, dir));
  auto ps = saved->named_parameters();
  for (const auto& item : loaded->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), ps[item.key()])) << item.key();
  }
  torch::Tensor ids = RandomIds(1, 4, arch.vocab_size, 3);
  EXPECT_TRUE(torch::equal(saved->forward(ids), loaded->forward(ids)));
}

TEST(PolicyTest, LoadsShardedBf16AndF16Checkpoints) {
  const ModelArch arch = SmallArch(true);
  Policy saved = MakePolicy(arch, 8);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : saved->named_parameters()) named.emplace_back(item.key(), item.value());
  for (SafetensorsDtype dtype : {SafetensorsDtype::kBF16, SafetensorsDtype::kF16}) {
    const std::string dir = MakeTempDir();
    SFPO_ASSERT_OK(SaveTensorsSharded(named, dir, dtype, /*max_shard_bytes=*/4096));
    Policy loaded(arch);
    SFPO_ASSERT_OK(LoadPolicy(loaded, dir));
    const torch::ScalarType st = dtype == SafetensorsDtype::kBF16 ? torch::kBFloat16 : torch::kFloat16;
    for (const auto& [name, value] : named) {
      EXPECT_TRUE(torch::equal(loaded->named_parameters()[name], value.to(st).to(torch::kFloat32)))
          << name;
    }
  }
}

TEST(PolicyTest, LoadRejectsMissingUnexpectedAndMisshapenTensorsNamingFileAndTensor) {
  const ModelArch arch = SmallArch(true);
  Policy policy = MakePolicy(arch, 9);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : policy->named_parameters()) {
    named.emplace_back(item.key(), item.value().detach().clone());
  }
  const std::string dir = MakeTempDir();

  auto missing = named;
  missing.erase(missing.begin() + 3);
  SFPO_ASSERT_OK(SaveTensors(missing, dir + "/missing.safetensors", SafetensorsDtype::kF32));
  EXPECT_THAT(LoadPolicy(policy, dir + "/missing.safetensors"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("missing.safetensors"),
                                        HasSubstr(named[3].first), HasSubstr("missing"))));

  auto unexpected = named;
  unexpected.emplace_back("lm_head.weight", torch::zeros({arch.vocab_size, arch.hidden_size}));
  SFPO_ASSERT_OK(SaveTensors(unexpected, dir + "/extra.safetensors", SafetensorsDtype::kF32));
  EXPECT_THAT(LoadPolicy(policy, dir + "/extra.safetensors"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("extra.safetensors"),
                                        HasSubstr("\"lm_head.weight\" is unexpected"))));

  auto misshapen = named;
  misshapen[5].second = torch::zeros({3, 3});
  SFPO_ASSERT_OK(SaveTensors(misshapen, dir + "/shape.safetensors", SafetensorsDtype::kF32));
  EXPECT_THAT(LoadPolicy(policy, dir + "/shape.safetensors"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("shape.safetensors"), HasSubstr(named[5].first),
                                        HasSubstr("[3, 3]"))));
  // A failed load leaves the policy untouched.
  for (const auto& [name, value] : named) {
    EXPECT_TRUE(torch::equal(policy->named_parameters()[name], value)) << name;
  }
}

}  // namespace
}  // namespace sfpo
