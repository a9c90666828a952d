#include "services/learner/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/model.h"
#include "common/status_matchers.h"
#include "nlohmann/json.hpp"
#include "services/learner/checkpoint.h"
#include "tests/services/learner/test_policies.h"

namespace sfpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kVocab = 20;

ModelArch TinyArch(int64_t hidden = 16) {
  ModelArch a;
  a.vocab_size = kVocab;
  a.hidden_size = hidden;
  a.intermediate_size = 32;
  a.num_hidden_layers = 1;
  a.num_attention_heads = 2;
  a.num_key_value_heads = 1;
  a.max_position_embeddings = 32;
  return a;
}

Policy NewPolicy(uint64_t seed, int64_t hidden = 16) {
  Policy p(TinyArch(hidden));
  InitPolicyWeights(p, seed);
  return p;
}

TrainerOptions SfpoOptions() {
  TrainerOptions o;
  o.slow_fast.inner_steps = 2;
  o.slow_fast.alpha = 0.8;
  o.gate.window = 2;
  o.gate.threshold = 100.0;  // evaluated every step, never fires
  o.update.mini_batch_groups = 2;
  o.update.micro_batch_tokens = 40;
  o.update.loss.entropy_coef = 0.01;
  o.lr.base_lr = 1e-2;
  o.lr.warmup_steps = 1;
  o.lr.kind = LrScheduleKind::kCosine;
  o.lr.total_steps = 6;
  o.seed = 5;
  return o;
}

RolloutBatch Batch(uint64_t seed) { return testing::RandomBatch(4, 3, 10, kVocab, seed); }

std::vector<torch::Tensor> Params(const Trainer& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.policy()->parameters()) out.push_back(p.detach().clone());
  return out;
}

// Every diagnostic except timings.
std::string Figures(const StepDiagnostics& d) {
  nlohmann::json j = nlohmann::json::parse(StepDiagnosticsToJson(d));
  j.erase("seconds");
  return j.dump();
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            absl::StrCat("sfpo_trainer_test_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(TrainerTest, ResumedRunComputesBitwiseTheSameNextStep) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, Trainer::Create(SfpoOptions(), NewPolicy(1).ptr()));
  SFPO_ASSERT_OK(a->Step(Batch(10)).status());
  SFPO_ASSERT_OK(a->Step(Batch(11)).status());
  CheckpointExtras extras;
  extras.data_cursor = 42;
  extras.caller_json = R"({"ledger": [1, 2, 3]})";
  extras.config_yaml = "run:\n  seed: 5\n";
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, a->SaveCheckpoint(root_.string(), 3, extras));
  const std::vector<double> window_at_save = a->gate_state().window;
  ASSERT_EQ(window_at_save.size(), 2u);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "config.yaml"));
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics next_a, a->Step(Batch(12)));

  // A different initialisation, restored from the checkpoint.
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, Trainer::Create(SfpoOptions(), NewPolicy(99).ptr()));
  CheckpointExtras restored;
  SFPO_ASSERT_OK_AND_ASSIGN(std::string latest, FindLatestCheckpoint(root_.string()));
  SFPO_ASSERT_OK(b->LoadCheckpoint(latest, &restored));
  EXPECT_EQ(restored.data_cursor, 42);
  EXPECT_EQ(nlohmann::json::parse(restored.caller_json), nlohmann::json::parse(extras.caller_json));
  EXPECT_EQ(b->step(), 2);
  EXPECT_EQ(b->policy_version(), 2);
  EXPECT_EQ(b->gate_state().window, window_at_save);
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics next_b, b->Step(Batch(12)));

  EXPECT_EQ(Figures(next_a), Figures(next_b));
  const auto pa = Params(*a), pb = Params(*b);
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << i;
  EXPECT_EQ(a->gate_state().window, b->gate_state().window);
}

TEST_F(TrainerTest, CheckpointRoundTripRestoresModelStepAndGate) {
  TrainerOptions options = SfpoOptions();
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, Trainer::Create(options, NewPolicy(1).ptr()));
  for (uint64_t s = 0; s < 3; ++s) SFPO_ASSERT_OK(a->Step(Batch(20 + s)).status());
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, a->SaveCheckpoint(root_.string(), 3, {}));
  EXPECT_EQ(CheckpointStep(dir), 3);
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, Trainer::Create(options, NewPolicy(2).ptr()));
  SFPO_ASSERT_OK(b->LoadCheckpoint(dir, nullptr));
  EXPECT_EQ(b->step(), 3);
  EXPECT_EQ(b->gate_state().window, a->gate_state().window);
  EXPECT_EQ(b->gate_state().window.size(), 2u);
  const auto pa = Params(*a), pb = Params(*b);
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << i;
}

TEST_F(TrainerTest, TruncatedCheckpointIsAnErrorNamingTheFile) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, Trainer::Create(SfpoOptions(), NewPolicy(1).ptr()));
  SFPO_ASSERT_OK(a->Step(Batch(1)).status());
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, a->SaveCheckpoint(root_.string(), 3, {}));
  const fs::path model = fs::path(dir) / "model.safetensors";
  fs::resize_file(model, fs::file_size(model) / 2);
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, Trainer::Create(SfpoOptions(), NewPolicy(2).ptr()));
  EXPECT_THAT(b->LoadCheckpoint(dir, nullptr),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.safetensors is truncated")));
}

TEST_F(TrainerTest, CheckpointOfAnotherModelIsAnErrorNamingTheParameter) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, Trainer::Create(SfpoOptions(), NewPolicy(1).ptr()));
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, a->SaveCheckpoint(root_.string(), 3, {}));
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, Trainer::Create(SfpoOptions(), NewPolicy(2, 32).ptr()));
  EXPECT_THAT(b->LoadCheckpoint(dir, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model.embed_tokens.weight has shape [20, 16]")));
}

TEST_F(TrainerTest, StepGateSwitchesToGrpoAndFreesTheSavedCopy) {
  TrainerOptions options = SfpoOptions();
  options.gate.mode = GateMode::kStep;
  options.gate.stop_step = 1;
  SFPO_ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(options, NewPolicy(1).ptr()));
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics first, t->Step(Batch(1)));
  EXPECT_TRUE(first.sfpo_active);
  EXPECT_EQ(first.update.passes.size(), 3u);
  int64_t param_bytes = 0;
  for (const auto& p : t->policy()->parameters()) param_bytes += p.numel() * p.element_size();
  EXPECT_EQ(t->saved_parameter_bytes(), param_bytes);
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics second, t->Step(Batch(2)));
  EXPECT_FALSE(second.sfpo_active);
  EXPECT_TRUE(second.gate_fired);
  EXPECT_EQ(second.update.passes.size(), 1u);
  EXPECT_EQ(t->saved_parameter_bytes(), 0);
  EXPECT_EQ(second.policy_version, 2);
}

TEST_F(TrainerTest, GrpoRunsOnePassPerStep) {
  TrainerOptions options = SfpoOptions();
  options.sfpo = false;
  SFPO_ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(options, NewPolicy(1).ptr()));
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d, t->Step(Batch(1)));
  EXPECT_FALSE(d.sfpo_active);
  EXPECT_EQ(d.update.passes.size(), 1u);
  EXPECT_EQ(d.update.passes[0].optimizer_steps, 2);  // 4 groups, 2 per mini-batch
  EXPECT_DOUBLE_EQ(d.lr, 1e-2);  // warmup 1: the first step runs at the full rate
}

TEST_F(TrainerTest, DropsZeroVarianceGroupsWhenAsked) {
  TrainerOptions options = SfpoOptions();
  options.drop_zero_variance_groups = true;
  SFPO_ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(options, NewPolicy(1).ptr()));
  RolloutBatch batch = Batch(3);
  batch.rewards = torch::tensor({1., 1., 1., 0., 1., 0., 0., 0., 0., 1., 0., 0.}, torch::kFloat64);
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d, t->Step(batch));
  EXPECT_EQ(d.zero_variance_groups, 2);
  EXPECT_EQ(d.dropped_groups, 2);
  EXPECT_EQ(d.sequences, 6);
  batch.rewards = torch::zeros({12}, torch::kFloat64);
  EXPECT_THAT(t->Step(batch), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("refill")));
}

TEST_F(TrainerTest, KlToAReferenceNeedsTheReference) {
  TrainerOptions options = SfpoOptions();
  options.update.loss.kl_coef = 0.1;
  options.update.mini_batch_groups = 4;  // the first pass measures at theta_0 = reference
  EXPECT_THAT(Trainer::Create(options, NewPolicy(1).ptr()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reference")));
  SFPO_ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(options, NewPolicy(1).ptr(), NewPolicy(1).ptr()));
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d, t->Step(Batch(4)));
  EXPECT_DOUBLE_EQ(d.update.passes[0].ref_kl, 0.0);  // starts at the reference
  EXPECT_GT(d.update.passes.back().ref_kl, 0.0);
}

TEST_F(TrainerTest, OptionsComeFromTheConfig) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config config, ParseConfig("", "test", {"learner.algorithm=grpo",
                                                                   "sfpo.gate=step"}));
  SFPO_ASSERT_OK_AND_ASSIGN(TrainerOptions o, TrainerOptionsFromConfig(config));
  EXPECT_FALSE(o.sfpo);
  EXPECT_EQ(o.gate.mode, GateMode::kStep);
  EXPECT_EQ(o.slow_fast.inner_steps, 3);
  EXPECT_DOUBLE_EQ(o.slow_fast.alpha, 0.8);
  EXPECT_EQ(o.update.mini_batch_groups, 64);
  config.learner.loss_agg = "median";
  EXPECT_THAT(TrainerOptionsFromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loss_agg")));
}

TEST_F(TrainerTest, DiagnosticsJsonCarriesPerPassFiguresAndStageSeconds) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(SfpoOptions(), NewPolicy(1).ptr()));
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d, t->Step(Batch(1)));
  nlohmann::json j = nlohmann::json::parse(StepDiagnosticsToJson(d));
  EXPECT_EQ(j["passes"].size(), 3u);
  EXPECT_TRUE(j["gate_z"].is_null());  // window not yet full
  EXPECT_GT(j["theta_k_distance"].get<double>(), 0.0);
  for (const char* stage : {"old_logprob", "fast", "reposition", "slow", "step"}) {
    EXPECT_TRUE(j["seconds"].contains(stage)) << stage;
  }
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d2, t->Step(Batch(2)));
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d3, t->Step(Batch(3)));
  EXPECT_FALSE(std::isnan(d3.gate_z));  // window of 2 is full from the third step on
}

}  // namespace
}  // namespace sfpo
