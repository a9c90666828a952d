// The Trainer as data-parallel ranks (threads with Gloo on loopback) against one rank.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model.h"
#include "common/status.h"
#include "common/status_matchers.h"
#include "nlohmann/json.hpp"
#include "services/learner/algorithm/entropy_gate.h"
#include "services/learner/checkpoint.h"
#include "services/learner/distributed/data_parallel.h"
#include "services/learner/trainer.h"
#include "tests/services/learner/distributed/rank_threads.h"
#include "tests/services/learner/test_policies.h"

namespace sfpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kVocab = 20;

Policy NewPolicy(uint64_t seed) {
  ModelArch a;
  a.vocab_size = kVocab;
  a.hidden_size = 16;
  a.intermediate_size = 32;
  a.num_hidden_layers = 1;
  a.num_attention_heads = 2;
  a.num_key_value_heads = 1;
  a.max_position_embeddings = 32;
  Policy p(a);
  InitPolicyWeights(p, seed);
  return p;
}

TrainerOptions Options() {
  TrainerOptions o;
  o.slow_fast.inner_steps = 2;
  o.slow_fast.alpha = 0.8;
  o.gate.mode = GateMode::kStep;
  o.gate.stop_step = 1;  // step 0 is SFPO, step 1 GRPO
  o.update.mini_batch_groups = 3;
  o.update.micro_batch_tokens = 40;
  o.update.loss.entropy_coef = 0.01;
  o.lr.base_lr = 1e-2;
  o.seed = 5;
  o.bucket_bytes = 4096;  // several buckets
  return o;
}

RolloutBatch Batch(uint64_t seed) { return testing::RandomBatch(6, 3, 10, kVocab, seed); }

std::vector<torch::Tensor> Params(const Trainer& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.policy()->parameters()) out.push_back(p.detach().clone());
  return out;
}

double MaxDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

// What one rank saw.
struct RankRun {
  std::vector<StepDiagnostics> steps;
  std::vector<torch::Tensor> params;
  EntropyGateState gate;
};

// `steps` trainer steps on `world` ranks; `batches` are shared read-only (Step copies).
std::vector<RankRun> RunRanks(int world, const TrainerOptions& options,
                              const std::vector<RolloutBatch>& batches) {
  std::vector<Policy> policies;
  for (int r = 0; r < world; ++r) policies.push_back(NewPolicy(1 + r));  // rank 0's wins
  std::vector<RankRun> out(world);
  std::vector<absl::Status> st =
      testing::RunGlooRanks(world, [&](int rank, Collectives* c) -> absl::Status {
        SFPO_ASSIGN_OR_RETURN(auto t, Trainer::Create(options, policies[rank].ptr(), nullptr, c));
        for (const RolloutBatch& b : batches) {
          SFPO_ASSIGN_OR_RETURN(StepDiagnostics d, t->Step(b));
          out[rank].steps.push_back(d);
        }
        out[rank].params = Params(*t);
        out[rank].gate = t->gate_state();
        return absl::OkStatus();
      });
  for (int r = 0; r < world; ++r) EXPECT_THAT(st[r], IsOk()) << "rank " << r;
  return out;
}

TEST(DistributedTrainerTest, TwoAndThreeRanksMatchOneRankAfterAnSfpoAndAGrpoStep) {
  torch::set_num_threads(1);
  const std::vector<RolloutBatch> batches = {Batch(10), Batch(11)};
  TrainerOptions options = Options();
  options.slow_fast.grpo_distance = true;  // param_delta_norm on the GRPO step as well
  SFPO_ASSERT_OK_AND_ASSIGN(auto one, Trainer::Create(options, NewPolicy(1).ptr()));
  std::vector<std::vector<torch::Tensor>> before;
  std::vector<StepDiagnostics> ref;
  for (const RolloutBatch& b : batches) {
    before.push_back(Params(*one));
    SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d, one->Step(b));
    ref.push_back(d);
  }
  ASSERT_TRUE(ref[0].sfpo_active);
  ASSERT_FALSE(ref[1].sfpo_active);
  const std::vector<torch::Tensor> expected = Params(*one);
  ASSERT_GT(MaxDiff(before[0], expected), 1e-3);
  // Each step's ||theta_next - theta_0||, measured from the parameters around it.
  for (size_t s = 0; s < batches.size(); ++s) {
    const std::vector<torch::Tensor>& after = s + 1 < batches.size() ? before[s + 1] : expected;
    double sq = 0;
    for (size_t i = 0; i < after.size(); ++i) {
      sq += (after[i].to(torch::kFloat64) - before[s][i].to(torch::kFloat64))
                .pow(2)
                .sum()
                .item<double>();
    }
    EXPECT_NEAR(ref[s].update.theta_next_distance, std::sqrt(sq), 1e-6) << "step " << s;
  }
  for (int world : {2, 3}) {
    SCOPED_TRACE(absl::StrCat(world, " ranks"));
    const std::vector<RankRun> runs = RunRanks(world, options, batches);
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(runs[r].steps.size(), 2u);
      EXPECT_LE(MaxDiff(runs[r].params, expected), 1e-5) << "rank " << r;
      for (int s = 0; s < 2; ++s) {
        const StepDiagnostics& d = runs[r].steps[s];
        EXPECT_EQ(d.ranks, world);
        EXPECT_EQ(d.sfpo_active, ref[s].sfpo_active);
        EXPECT_NEAR(d.entropy, ref[s].entropy, 1e-5);
        EXPECT_NEAR(d.update.passes.back().loss, ref[s].update.passes.back().loss, 1e-5);
        EXPECT_NEAR(d.update.passes.back().grad_norm_max, ref[s].update.passes.back().grad_norm_max,
                    1e-4);
        EXPECT_GT(d.all_reduce_bytes, 0);
        EXPECT_GE(d.collective_bytes, d.all_reduce_bytes);
      }
      for (int s = 0; s < 2; ++s) {
        EXPECT_NEAR(runs[r].steps[s].update.theta_next_distance, ref[s].update.theta_next_distance,
                    1e-5)
            << "step " << s;
      }
    }
  }
}

// z-scores a gate on `series` would see before each step (NaN while the window fills).
std::vector<double> GateZ(const std::vector<double>& series, size_t window) {
  std::vector<double> z(series.size() + 1, std::nan(""));
  for (size_t s = window; s <= series.size(); ++s) {
    z[s] =
        EntropyGate::ZScore(std::vector<double>(series.begin() + (s - window), series.begin() + s));
  }
  return z;
}

// The first step at which a gate with threshold tau fires on z (-1: never).
int FirstFiring(const std::vector<double>& z, double tau) {
  for (size_t s = 0; s < z.size(); ++s) {
    if (!std::isnan(z[s]) && z[s] >= tau) return static_cast<int>(s);
  }
  return -1;
}

TEST(DistributedTrainerTest, EveryRankSwitchesOnTheSameStepThoughOneRanksOwnEntropyWouldEarlier) {
  torch::set_num_threads(1);
  constexpr int kWorld = 2, kSteps = 7;
  constexpr size_t kWindow = 3;
  std::vector<RolloutBatch> batches;
  for (int s = 0; s < kSteps; ++s) batches.push_back(Batch(40 + s));
  TrainerOptions options = Options();
  options.sfpo = false;  // the same updates whatever the gate decides
  options.gate.mode = GateMode::kNone;
  options.update.mini_batch_groups = 6;
  options.lr.base_lr = 5e-2;
  // First run: record the global and each rank's own entropy of every step.
  const std::vector<RankRun> probe = RunRanks(kWorld, options, batches);
  ASSERT_EQ(probe[0].steps.size(), static_cast<size_t>(kSteps));
  std::vector<double> global;
  std::vector<std::vector<double>> local(kWorld);
  for (int s = 0; s < kSteps; ++s) {
    global.push_back(probe[0].steps[s].entropy);
    for (int r = 0; r < kWorld; ++r) {
      EXPECT_EQ(probe[r].steps[s].entropy, global.back()) << "rank " << r << " step " << s;
      local[r].push_back(probe[r].steps[s].local_entropy);
    }
  }
  // A threshold at which one rank's own estimate fires strictly before the global one.
  const std::vector<double> zg = GateZ(global, kWindow);
  double tau = std::nan("");
  int lone_rank = -1, lone_step = -1;
  for (int r = 0; r < kWorld && lone_rank < 0; ++r) {
    const std::vector<double> zl = GateZ(local[r], kWindow);
    for (size_t s = kWindow; s < zl.size() && lone_rank < 0; ++s) {
      const double candidate = zl[s] - 1e-3;
      if (FirstFiring(zl, candidate) != static_cast<int>(s)) continue;
      const int g = FirstFiring(zg, candidate);
      if (g == -1 || g > static_cast<int>(s)) {
        tau = candidate;
        lone_rank = r;
        lone_step = static_cast<int>(s);
      }
    }
  }
  ASSERT_GE(lone_rank, 0) << "no step where one rank's own entropy fires alone";
  const int global_step = FirstFiring(zg, tau);

  options.sfpo = true;
  options.slow_fast.inner_steps = 0;  // SFPO with K = 0: the same updates as the probe
  options.gate.mode = GateMode::kEntropy;
  options.gate.window = kWindow;
  options.gate.threshold = tau;
  const std::vector<RankRun> runs = RunRanks(kWorld, options, batches);
  for (int r = 0; r < kWorld; ++r) {
    SCOPED_TRACE(absl::StrCat("rank ", r));
    ASSERT_EQ(runs[r].steps.size(), static_cast<size_t>(kSteps));
    EXPECT_EQ(runs[r].gate.switched_at_step, runs[0].gate.switched_at_step);
    EXPECT_EQ(runs[r].gate.switched_at_step, global_step);
    EXPECT_NE(runs[r].gate.switched_at_step, lone_step);
    for (int s = 0; s < kSteps; ++s) {
      EXPECT_EQ(runs[r].steps[s].sfpo_active, runs[0].steps[s].sfpo_active) << "step " << s;
    }
  }
}

// Every diagnostic except timings (and, across ranks, each rank's own entropy).
std::string Figures(const StepDiagnostics& d, bool across_ranks = false) {
  nlohmann::json j = nlohmann::json::parse(StepDiagnosticsToJson(d));
  if (across_ranks) j.erase("local_entropy");
  for (const char* key : {"seconds", "all_reduce_seconds", "collective_seconds"}) j.erase(key);
  return j.dump();
}

// `fn(rank, trainer)` on `world` ranks whose policies start from seed 100 + rank.
std::vector<absl::Status> WithTrainerRanks(int world, const TrainerOptions& options,
                                           const std::function<absl::Status(int, Trainer&)>& fn) {
  std::vector<Policy> policies;
  for (int r = 0; r < world; ++r) policies.push_back(NewPolicy(100 + r));
  return testing::RunGlooRanks(world, [&](int rank, Collectives* c) -> absl::Status {
    SFPO_ASSIGN_OR_RETURN(auto t, Trainer::Create(options, policies[rank].ptr(), nullptr, c));
    return fn(rank, *t);
  });
}

class DistributedCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    root_ = fs::temp_directory_path() /
            absl::StrCat("sfpo_dist_ckpt_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Batches are made before any rank thread starts (RandomBatch seeds Torch's global RNG).
  const RolloutBatch& B(uint64_t seed) {
    auto it = batches_.find(seed);
    SFPO_CHECK(it != batches_.end());
    return it->second;
  }
  void MakeBatches(std::initializer_list<uint64_t> seeds) {
    for (uint64_t s : seeds) batches_.emplace(s, Batch(s));
  }
  std::map<uint64_t, RolloutBatch> batches_;

  static TrainerOptions SfpoOptions() {
    TrainerOptions o = Options();
    o.gate.mode = GateMode::kEntropy;
    o.gate.window = 2;
    o.gate.threshold = 100.0;  // evaluated every step, never fires
    return o;
  }

  fs::path root_;
};

TEST_F(DistributedCheckpointTest, TwoRanksResumeBitwiseOnTwoAndToFloatToleranceOnOneAndThree) {
  MakeBatches({20, 21, 22});
  const TrainerOptions options = SfpoOptions();
  std::vector<std::vector<torch::Tensor>> expected(2);
  std::vector<StepDiagnostics> expected_step(2);
  std::vector<std::string> dirs(2);
  CheckpointExtras extras;
  extras.data_cursor = 7;
  extras.caller_json = R"({"ledger": [4]})";
  std::vector<absl::Status> st = WithTrainerRanks(2, options, [&](int rank, Trainer& t) {
    for (uint64_t b : {20, 21}) SFPO_RETURN_IF_ERROR(t.Step(B(b)).status());
    SFPO_ASSIGN_OR_RETURN(dirs[rank], t.SaveCheckpoint(root_.string(), 3, extras));
    SFPO_ASSIGN_OR_RETURN(expected_step[rank], t.Step(B(22)));
    expected[rank] = Params(t);
    return absl::OkStatus();
  });
  for (int r = 0; r < 2; ++r) ASSERT_THAT(st[r], IsOk()) << "rank " << r;
  EXPECT_EQ(dirs[0], dirs[1]);
  ASSERT_TRUE(expected_step[0].sfpo_active);
  EXPECT_EQ(Figures(expected_step[0], true), Figures(expected_step[1], true));
  for (const char* f : {"model.safetensors", "optimizer_shard_0_of_2.pt",
                        "optimizer_shard_1_of_2.pt", "trainer_state.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(dirs[0]) / f)) << f;
  }
  EXPECT_FALSE(fs::exists(fs::path(dirs[0]) / "optimizer.pt"));
  EXPECT_EQ(ListCheckpoints(root_.string()).size(), 1u);
  for (const auto& entry : fs::directory_iterator(root_)) {
    EXPECT_EQ(entry.path().filename().string().rfind(".shards", 0), std::string::npos)
        << "staging left behind: " << entry.path();
  }

  // Same world size: bitwise.
  std::vector<std::vector<torch::Tensor>> resumed(2);
  std::vector<StepDiagnostics> resumed_step(2);
  st = WithTrainerRanks(2, options, [&](int rank, Trainer& t) {
    CheckpointExtras got;
    SFPO_RETURN_IF_ERROR(t.LoadCheckpoint(dirs[0], &got));
    EXPECT_EQ(got.data_cursor, 7);
    EXPECT_EQ(t.step(), 2);
    SFPO_ASSIGN_OR_RETURN(resumed_step[rank], t.Step(B(22)));
    resumed[rank] = Params(t);
    return absl::OkStatus();
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_THAT(st[r], IsOk()) << "rank " << r;
    EXPECT_EQ(Figures(resumed_step[r]), Figures(expected_step[r])) << "rank " << r;
    for (size_t i = 0; i < expected[r].size(); ++i) {
      EXPECT_TRUE(torch::equal(resumed[r][i], expected[r][i])) << "rank " << r << " param " << i;
    }
  }

  // One rank (torch's AdamW, consolidated moments): float tolerance.
  SFPO_ASSERT_OK_AND_ASSIGN(auto one, Trainer::Create(options, NewPolicy(5).ptr()));
  ASSERT_THAT(one->LoadCheckpoint(dirs[0], nullptr), IsOk());
  SFPO_ASSERT_OK_AND_ASSIGN(StepDiagnostics d1, one->Step(B(22)));
  EXPECT_NEAR(d1.entropy, expected_step[0].entropy, 1e-5);
  EXPECT_LE(MaxDiff(Params(*one), expected[0]), 1e-5);

  // Three ranks (re-sharded): float tolerance.
  std::vector<std::vector<torch::Tensor>> three(3);
  st = WithTrainerRanks(3, options, [&](int rank, Trainer& t) {
    SFPO_RETURN_IF_ERROR(t.LoadCheckpoint(dirs[0], nullptr));
    SFPO_RETURN_IF_ERROR(t.Step(B(22)).status());
    three[rank] = Params(t);
    return absl::OkStatus();
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_THAT(st[r], IsOk()) << "rank " << r;
    EXPECT_LE(MaxDiff(three[r], expected[0]), 1e-5) << "rank " << r;
  }
}

TEST_F(DistributedCheckpointTest, AOneRankCheckpointResumesOnTwoRanks) {
  MakeBatches({30, 31, 32});
  const TrainerOptions options = SfpoOptions();
  SFPO_ASSERT_OK_AND_ASSIGN(auto one, Trainer::Create(options, NewPolicy(1).ptr()));
  for (uint64_t b : {30, 31}) SFPO_ASSERT_OK(one->Step(B(b)).status());
  SFPO_ASSERT_OK_AND_ASSIGN(std::string dir, one->SaveCheckpoint(root_.string(), 3, {}));
  SFPO_ASSERT_OK(one->Step(B(32)).status());
  const std::vector<torch::Tensor> expected = Params(*one);
  std::vector<std::vector<torch::Tensor>> two(2);
  std::vector<absl::Status> st = WithTrainerRanks(2, options, [&](int rank, Trainer& t) {
    SFPO_RETURN_IF_ERROR(t.LoadCheckpoint(dir, nullptr));
    SFPO_RETURN_IF_ERROR(t.Step(B(32)).status());
    two[rank] = Params(t);
    return absl::OkStatus();
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_THAT(st[r], IsOk()) << "rank " << r;
    EXPECT_LE(MaxDiff(two[r], expected), 1e-5) << "rank " << r;
  }
}

TEST_F(DistributedCheckpointTest, AMissingShardFailsEveryRankNamingTheFile) {
  MakeBatches({40});
  const TrainerOptions options = SfpoOptions();
  std::string dir;
  std::vector<absl::Status> st = WithTrainerRanks(2, options, [&](int rank, Trainer& t) {
    SFPO_RETURN_IF_ERROR(t.Step(B(40)).status());
    SFPO_ASSIGN_OR_RETURN(std::string d, t.SaveCheckpoint(root_.string(), 3, {}));
    if (rank == 0) dir = d;
    return absl::OkStatus();
  });
  for (int r = 0; r < 2; ++r) ASSERT_THAT(st[r], IsOk()) << "rank " << r;
  fs::resize_file(fs::path(dir) / "optimizer_shard_1_of_2.pt", 10);
  st =
      WithTrainerRanks(2, options, [&](int, Trainer& t) { return t.LoadCheckpoint(dir, nullptr); });
  for (int r = 0; r < 2; ++r) {
    EXPECT_THAT(st[r], StatusIs(absl::StatusCode::kDataLoss,
                                HasSubstr("optimizer_shard_1_of_2.pt is truncated")))
        << "rank " << r;
  }
}

}  // namespace
}  // namespace sfpo
