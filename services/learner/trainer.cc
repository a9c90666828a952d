#include "services/learner/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/model.h"
#include "common/status.h"
#include "common/torch_util.h"
#include "nlohmann/json.hpp"
#include "services/learner/checkpoint.h"
#include "services/learner/distributed/collectives.h"
#include "services/learner/distributed/data_parallel.h"
#include "services/learner/distributed/shard_checkpoint.h"

namespace sfpo {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kStateFormat[] = "sfpo-trainer-state/1";
constexpr char kModelFile[] = "model.safetensors";
constexpr char kOptimizerFile[] = "optimizer.pt";

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string OptimizerKey(const at::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

namespace fs = std::filesystem;

// The moments of torch's AdamW as full flat [total] tensors (zeros for parameters without
// state) and its step (the largest of any parameter's).
void AdamStateToFlat(const std::vector<at::Tensor>& params, torch::optim::AdamW& adam,
                     int64_t* step, at::Tensor* exp_avg, at::Tensor* exp_avg_sq) {
  std::vector<at::Tensor> m, v;
  *step = 0;
  for (const at::Tensor& p : params) {
    auto it = adam.state().find(OptimizerKey(p));
    if (it == adam.state().end()) {
      m.push_back(torch::zeros({p.numel()}, p.options().requires_grad(false)));
      v.push_back(torch::zeros({p.numel()}, p.options().requires_grad(false)));
      continue;
    }
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    *step = std::max<int64_t>(*step, st.step());
    m.push_back(st.exp_avg().reshape({-1}));
    v.push_back(st.exp_avg_sq().reshape({-1}));
  }
  *exp_avg = torch::cat(m);
  *exp_avg_sq = torch::cat(v);
}

// torch's AdamW state from full flat moments (none when step is 0).
void FlatToAdamState(const std::vector<at::Tensor>& params, torch::optim::AdamW& adam, int64_t step,
                     const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq) {
  adam.state().clear();
  if (step == 0) return;
  int64_t offset = 0;
  for (const at::Tensor& p : params) {
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(step);
    st->exp_avg(exp_avg.narrow(0, offset, p.numel()).view(p.sizes()).to(p.options()).clone());
    st->exp_avg_sq(exp_avg_sq.narrow(0, offset, p.numel()).view(p.sizes()).to(p.options()).clone());
    adam.state()[OptimizerKey(p)] = std::move(st);
    offset += p.numel();
  }
}

// Restores the optimizer from the shard files of an "adamw-sharded" checkpoint into `dp` (a
// data-parallel rank) or `adam` (one rank).
absl::Status LoadShardedOptimizer(const std::string& dir, const json& opt,
                                  const std::vector<at::Tensor>& params, torch::optim::AdamW& adam,
                                  DataParallelUpdater* dp) {
  const int world = opt.value("world_size", 0);
  const int64_t bucket = opt.value("bucket_elements", int64_t{0});
  const int64_t total = opt.value("total", int64_t{-1});
  int64_t model_total = 0;
  for (const at::Tensor& p : params) model_total += p.numel();
  if (world < 1 || bucket < 1 || total != model_total) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, "/", kTrainerStateFile, ": sharded optimizer of world size ", world, ", bucket ",
        bucket, ", ", total, " elements does not fit this model of ", model_total, " elements"));
  }
  if (dp != nullptr && dp->layout().world_size == world && dp->layout().bucket_elements == bucket) {
    const std::string path = absl::StrCat(dir, "/", ShardFileName(dp->layout().rank, world));
    SFPO_ASSIGN_OR_RETURN(ShardState shard, ReadShardFile(path));
    absl::Status st = dp->LoadShardState(shard);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat(path, ": ", st.message()));
    return absl::OkStatus();
  }
  std::vector<at::Tensor> m, v;
  int64_t step = -1;
  for (int r = 0; r < world; ++r) {
    const std::string path = absl::StrCat(dir, "/", ShardFileName(r, world));
    SFPO_ASSIGN_OR_RETURN(ShardState shard, ReadShardFile(path));
    if (step >= 0 && shard.adam_step != step) {
      return absl::DataLossError(
          absl::StrCat(path, ": AdamW step ", shard.adam_step, ", other shards ", step));
    }
    step = shard.adam_step;
    m.push_back(shard.exp_avg);
    v.push_back(shard.exp_avg_sq);
  }
  SFPO_ASSIGN_OR_RETURN(at::Tensor full_m, ConsolidateShards(m, total, bucket));
  SFPO_ASSIGN_OR_RETURN(at::Tensor full_v, ConsolidateShards(v, total, bucket));
  if (dp != nullptr) return dp->LoadFullState(step, full_m, full_v, at::Tensor());
  return TorchCall([&] { FlatToAdamState(params, adam, step, full_m, full_v); });
}

json PassToJson(const PassStats& p) {
  return {{"loss", p.loss},
          {"pg_loss", p.pg_loss},
          {"entropy", p.entropy},
          {"clip_fraction", p.clip_fraction},
          {"approx_kl", p.approx_kl},
          {"ref_kl", p.ref_kl},
          {"grad_norm_mean", p.grad_norm_mean},
          {"grad_norm_max", p.grad_norm_max},
          {"optimizer_steps", p.optimizer_steps},
          {"micro_batches", p.micro_batches},
          {"tokens", p.tokens}};
}

}  // namespace

absl::StatusOr<TrainerOptions> TrainerOptionsFromConfig(const Config& config) {
  TrainerOptions o;
  const LearnerConfig& l = config.learner;
  if (l.algorithm != "sfpo" && l.algorithm != "grpo") {
    return absl::InvalidArgumentError(absl::StrCat("learner.algorithm: unknown algorithm '",
                                                   l.algorithm, "' (expected sfpo or grpo)"));
  }
  o.sfpo = l.algorithm == "sfpo";
  o.slow_fast.inner_steps = config.sfpo.inner_steps;
  o.slow_fast.alpha = config.sfpo.alpha;
  o.slow_fast.behavior_as_old_logp = config.rollout.max_staleness > 0;
  o.slow_fast.grpo_distance = l.param_delta_norm;
  o.slow_fast.theta0_on_host = config.sfpo.theta0_device == "host";
  SFPO_ASSIGN_OR_RETURN(o.gate.mode, ParseGateMode(config.sfpo.gate));
  o.gate.window = config.sfpo.gate_window;
  o.gate.threshold = config.sfpo.gate_threshold;
  o.gate.stop_step = config.sfpo.stop_step;
  o.update.loss.clip_low = l.clip_low;
  o.update.loss.clip_high = l.clip_high;
  o.update.loss.entropy_coef = l.entropy_coef;
  o.update.loss.kl_coef = l.kl_coef;
  SFPO_ASSIGN_OR_RETURN(o.update.loss.kl_estimator, ParseKlEstimator(l.kl_estimator));
  SFPO_ASSIGN_OR_RETURN(o.update.aggregation, ParseLossAggregation(l.loss_agg));
  o.update.mini_batch_groups = l.mini_batch_prompts;
  o.update.micro_batch_tokens = l.micro_batch_tokens;
  o.update.grad_clip = l.grad_clip;
  o.advantages.normalize_std = l.normalize_adv_std;
  o.drop_zero_variance_groups = l.drop_zero_variance_groups;
  o.lr.base_lr = l.lr;
  o.lr.warmup_steps = l.warmup_steps;
  SFPO_ASSIGN_OR_RETURN(o.lr.kind, ParseLrSchedule(l.schedule));
  o.lr.total_steps = config.run.total_steps;
  o.adam.beta1 = l.adam_beta1;
  o.adam.beta2 = l.adam_beta2;
  o.adam.eps = l.adam_eps;
  o.adam.weight_decay = l.weight_decay;
  o.temperature = config.rollout.temperature;
  o.seed = static_cast<uint64_t>(config.run.seed);
  o.bucket_bytes = config.learner.bucket_mb << 20;
  o.overlap_reduce = config.learner.overlap_grad_reduce;
  return o;
}

std::string StepDiagnosticsToJson(const StepDiagnostics& d) {
  json passes = json::array();
  for (const PassStats& p : d.update.passes) passes.push_back(PassToJson(p));
  json j = {{"step", d.step},
            {"policy_version", d.policy_version},
            {"sfpo_active", d.sfpo_active},
            {"inner_steps", d.update.inner_steps},
            {"alpha", d.update.alpha},
            {"gate_z", d.gate_z},
            {"gate_fired", d.gate_fired},
            {"lr", d.lr},
            {"groups", d.groups},
            {"sequences", d.sequences},
            {"zero_variance_groups", d.zero_variance_groups},
            {"dropped_groups", d.dropped_groups},
            {"reward_mean", d.reward_mean},
            {"entropy", d.entropy},
            {"theta_k_distance", d.update.theta_k_distance},
            {"theta_next_distance", d.update.theta_next_distance},
            {"behavior_logp_abs_diff", d.update.behavior_logp_abs_diff},
            {"passes", passes},
            {"seconds",
             {{"advantages", d.advantage_seconds},
              {"reference", d.reference_seconds},
              {"old_logprob", d.update.old_logprob_seconds},
              {"fast", d.update.fast_seconds},
              {"reposition", d.update.reposition_seconds},
              {"slow", d.update.slow_seconds},
              {"step", d.step_seconds}}},
            {"ranks", d.ranks},
            {"all_reduce_seconds", d.all_reduce_seconds},
            {"all_reduce_bytes", d.all_reduce_bytes},
            {"collective_seconds", d.collective_seconds},
            {"collective_bytes", d.collective_bytes},
            {"local_entropy", d.local_entropy}};
  return j.dump();
}

struct Trainer::State {
  TrainerOptions options;
  Policy policy{nullptr};
  Policy reference{nullptr};
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
  std::unique_ptr<torch::optim::AdamW> adam;
  std::unique_ptr<SlowFastUpdater> updater;
  std::unique_ptr<EntropyGate> gate;
  std::unique_ptr<DataParallelUpdater> dp;  // set for data-parallel ranks
  std::mt19937_64 rng;
  int64_t step = 0;
  int64_t version = 0;

  PolicyFn PolicyFunction(Policy p) const {
    const double temperature = options.temperature;
    return [p, temperature](const at::Tensor& ids) mutable {
      TokenStats s = ComputeTokenStats(p, ids, temperature);
      return PolicyOutput{s.logp, s.entropy};
    };
  }
};

Trainer::Trainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options,
                                                         std::shared_ptr<PolicyImpl> policy,
                                                         std::shared_ptr<PolicyImpl> reference,
                                                         Collectives* collectives) {
  if (policy == nullptr) return absl::InvalidArgumentError("trainer needs a policy");
  if (options.update.loss.kl_coef > 0 && reference == nullptr) {
    return absl::InvalidArgumentError("learner.kl_coef > 0 needs a reference policy");
  }
  if (options.slow_fast.inner_steps < 0 || !(options.slow_fast.alpha >= 0) ||
      !(options.slow_fast.alpha <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sfpo.inner_steps must be >= 0 and sfpo.alpha in [0, 1], got ",
                     options.slow_fast.inner_steps, " and ", options.slow_fast.alpha));
  }
  if (!(options.lr.base_lr > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learner.lr must be > 0, got ", options.lr.base_lr));
  }
  auto state = std::make_unique<State>();
  state->options = options;
  SFPO_ASSIGN_OR_RETURN(EntropyGate gate, EntropyGate::Create(options.gate));
  state->gate = std::make_unique<EntropyGate>(std::move(gate));
  state->rng.seed(options.seed);
  SFPO_RETURN_IF_ERROR(TorchCall([&]() -> absl::Status {
    state->policy = Policy(std::move(policy));
    if (reference != nullptr) {
      state->reference = Policy(std::move(reference));
      state->reference->eval();
      for (auto& p : state->reference->parameters()) p.set_requires_grad(false);
    }
    for (const auto& item : state->policy->named_parameters(/*recurse=*/true)) {
      if (!item.value().requires_grad()) continue;
      state->names.push_back(item.key());
      state->params.push_back(item.value());
    }
    if (state->params.empty())
      return absl::InvalidArgumentError("policy has no trainable parameters");
    torch::optim::AdamWOptions adam(options.lr.base_lr);
    adam.betas({options.adam.beta1, options.adam.beta2})
        .eps(options.adam.eps)
        .weight_decay(options.adam.weight_decay);
    state->adam = std::make_unique<torch::optim::AdamW>(state->params, adam);
    state->updater = std::make_unique<SlowFastUpdater>(state->params);
    return absl::OkStatus();
  }));
  if (collectives != nullptr) {
    DataParallelOptions dp;
    dp.bucket_bytes = options.bucket_bytes;
    dp.overlap_reduce = options.overlap_reduce;
    dp.adam = options.adam;
    SFPO_ASSIGN_OR_RETURN(state->dp, DataParallelUpdater::Create(state->params, collectives, dp));
  }
  return std::unique_ptr<Trainer>(new Trainer(std::move(state)));
}

int64_t Trainer::step() const { return state_->step; }
int64_t Trainer::policy_version() const { return state_->version; }
bool Trainer::sfpo_active() const { return state_->options.sfpo && state_->gate->sfpo_active(); }
const EntropyGateState& Trainer::gate_state() const { return state_->gate->state(); }
int64_t Trainer::saved_parameter_bytes() const {
  return state_->dp != nullptr ? state_->dp->saved_bytes() : state_->updater->saved_bytes();
}
DataParallelUpdater* Trainer::data_parallel() const { return state_->dp.get(); }
std::shared_ptr<PolicyImpl> Trainer::policy() const { return state_->policy.ptr(); }

absl::StatusOr<StepDiagnostics> Trainer::Step(RolloutBatch batch) {
  State& s = *state_;
  const Clock::time_point start = Clock::now();
  StepDiagnostics d;
  d.step = s.step;
  SFPO_RETURN_IF_ERROR(PrepareBatch(&batch));
  if (!batch.rewards.defined()) return absl::InvalidArgumentError("batch has no rewards");

  // Advantages per group; zero-variance groups counted and optionally dropped.
  Clock::time_point t = Clock::now();
  SFPO_ASSIGN_OR_RETURN(GroupAdvantages adv,
                        ComputeGroupAdvantages(batch.rewards.to(torch::kFloat64), batch.group_size,
                                               s.options.advantages));
  d.groups = batch.num_groups();
  d.zero_variance_groups = adv.zero_variance_groups;
  SFPO_RETURN_IF_ERROR(
      TorchCall([&] { d.reward_mean = batch.rewards.to(torch::kFloat64).mean().item<double>(); }));
  batch.advantages = adv.advantages;
  if (s.options.drop_zero_variance_groups && adv.zero_variance_groups > 0) {
    if (adv.informative_groups.empty()) {
      return absl::FailedPreconditionError(
          "every group has zero reward variance: nothing to learn from (refill the batch)");
    }
    d.dropped_groups = adv.zero_variance_groups;
    SFPO_RETURN_IF_ERROR(TorchCall([&] { batch = SelectGroups(batch, adv.informative_groups); }));
  }
  d.sequences = batch.num_sequences();
  const at::Device device = s.params.front().device();
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    for (at::Tensor* x :
         {&batch.input_ids, &batch.response_mask, &batch.advantages, &batch.behavior_logp}) {
      if (x->defined()) *x = x->to(device);
    }
  }));
  d.advantage_seconds = SecondsSince(t);

  t = Clock::now();
  const CollectiveStats before = s.dp != nullptr ? s.dp->collectives()->stats() : CollectiveStats{};
  if (s.options.update.loss.kl_coef > 0 && s.dp != nullptr) {
    SFPO_ASSIGN_OR_RETURN(batch.ref_logp, s.dp->SequenceLogp(s.PolicyFunction(s.reference), batch,
                                                             s.options.update.micro_batch_tokens));
  } else if (s.options.update.loss.kl_coef > 0) {
    SFPO_ASSIGN_OR_RETURN(batch.ref_logp, ComputeSequenceLogp(s.PolicyFunction(s.reference), batch,
                                                              s.options.update.micro_batch_tokens));
  }
  d.reference_seconds = SecondsSince(t);

  // Schedule and gate, both once per outer step.
  d.lr = LearningRateAt(s.options.lr, s.step);
  for (auto& group : s.adam->param_groups()) group.options().set_lr(d.lr);
  const bool was_active = s.gate->sfpo_active();
  d.sfpo_active = s.options.sfpo && s.gate->Decide(s.step);
  d.gate_z = s.gate->last_z();
  d.gate_fired = was_active && !s.gate->sfpo_active();
  if (!d.sfpo_active && !s.options.slow_fast.grpo_distance) {
    s.updater->ReleaseSavedParameters();
    if (s.dp != nullptr) s.dp->ReleaseSavedParameters();
  }

  SlowFastOptions sf = s.options.slow_fast;
  if (!d.sfpo_active) sf.inner_steps = 0;
  GroupOrderFn order = nullptr;
  if (s.options.shuffle_groups) {
    order = [&s](int64_t n) {
      std::vector<int64_t> o(n);
      std::iota(o.begin(), o.end(), 0);
      std::shuffle(o.begin(), o.end(), s.rng);
      return o;
    };
  }
  if (s.dp != nullptr) {
    SFPO_ASSIGN_OR_RETURN(d.update, s.dp->Step(s.PolicyFunction(s.policy), &batch, s.options.update,
                                               sf, order, d.lr));
    const CollectiveStats after = s.dp->collectives()->stats();
    d.ranks = s.dp->collectives()->world_size();
    d.all_reduce_seconds = after.all_reduce_seconds - before.all_reduce_seconds;
    d.all_reduce_bytes = after.all_reduce_bytes - before.all_reduce_bytes;
    d.collective_seconds = after.seconds - before.seconds;
    d.collective_bytes = after.bytes - before.bytes;
    d.local_entropy = s.dp->last_local_entropy();
  } else {
    SFPO_ASSIGN_OR_RETURN(d.update, s.updater->Step(s.PolicyFunction(s.policy), s.adam.get(),
                                                    &batch, s.options.update, sf, order));
  }
  d.entropy = d.update.passes.back().entropy;
  if (s.dp == nullptr) d.local_entropy = d.entropy;
  s.gate->Record(d.entropy);
  ++s.step;
  ++s.version;
  d.policy_version = s.version;
  d.step_seconds = SecondsSince(start);
  return d;
}

absl::StatusOr<std::string> Trainer::SaveCheckpoint(const std::string& root, int64_t keep_last,
                                                    const CheckpointExtras& extras) {
  State& s = *state_;
  json caller = json::parse(extras.caller_json, nullptr, /*allow_exceptions=*/false);
  if (caller.is_discarded()) {
    return absl::InvalidArgumentError("checkpoint extras: caller_json is not valid JSON");
  }
  std::ostringstream rng;
  rng << s.rng;
  json params = json::array();
  json with_state = json::array();
  for (size_t i = 0; i < s.params.size(); ++i) {
    params.push_back({{"name", s.names[i]}, {"shape", s.params[i].sizes().vec()}});
    if (s.adam->state().count(OptimizerKey(s.params[i]))) with_state.push_back(i);
  }
  const EntropyGateState& gate = s.gate->state();
  json state = {{"format", kStateFormat},
                {"step", s.step},
                {"policy_version", s.version},
                {"data_cursor", extras.data_cursor},
                {"algorithm", s.options.sfpo ? "sfpo" : "grpo"},
                {"rng", rng.str()},
                {"gate",
                 {{"mode", GateModeName(s.options.gate.mode)},
                  {"window", gate.window},
                  {"sfpo_active", gate.sfpo_active},
                  {"switched_at_step", gate.switched_at_step}}},
                {"parameters", params},
                {"optimizer", {{"type", "adamw"}, {"params_with_state", with_state}}},
                {"extra", caller}};
  CheckpointWriteOptions write;
  write.root = root;
  write.step = s.step;
  write.keep_last = keep_last;
  auto write_config = [&](const std::string& dir) -> absl::Status {
    if (!extras.config_yaml.empty()) {
      std::ofstream out(dir + "/config.yaml", std::ios::trunc);
      out << extras.config_yaml;
      if (!out.good())
        return absl::InternalError(absl::StrCat("cannot write ", dir, "/config.yaml"));
    }
    return absl::OkStatus();
  };
  if (s.dp != nullptr) {
    // Every rank's shard goes to a staging directory, then rank 0 writes the checkpoint with
    // the model and moves the shards in (the manifest covers them all).
    const ShardLayout& l = s.dp->layout();
    Collectives* c = s.dp->collectives();
    json files = json::array();
    for (int r = 0; r < l.world_size; ++r) files.push_back(ShardFileName(r, l.world_size));
    state["optimizer"] = {{"type", "adamw-sharded"},
                          {"world_size", l.world_size},
                          {"bucket_elements", l.bucket_elements},
                          {"total", l.total},
                          {"files", files}};
    const std::string name = absl::StrFormat("step_%08d", s.step);
    const fs::path staging = fs::path(root) / absl::StrCat(".shards.", name);
    absl::Status local;
    if (l.rank != 0) {
      std::error_code ec;
      fs::create_directories(staging, ec);
      local = ec ? absl::InternalError(
                       absl::StrCat("cannot create ", staging.string(), ": ", ec.message()))
                 : WriteShardFile(s.dp->state(),
                                  (staging / ShardFileName(l.rank, l.world_size)).string());
    }
    SFPO_RETURN_IF_ERROR(AgreeOnStatus(c, local, "writing the optimizer shards"));
    absl::StatusOr<std::string> dir = (fs::path(root) / name).string();
    if (l.rank == 0) {
      dir = WriteCheckpoint(write, state.dump(), [&](const std::string& tmp) -> absl::Status {
        SFPO_RETURN_IF_ERROR(SavePolicy(s.policy, tmp + "/" + kModelFile));
        SFPO_RETURN_IF_ERROR(
            WriteShardFile(s.dp->state(), tmp + "/" + ShardFileName(0, l.world_size)));
        for (int r = 1; r < l.world_size; ++r) {
          const std::string file = ShardFileName(r, l.world_size);
          std::error_code ec;
          fs::rename(staging / file, fs::path(tmp) / file, ec);
          if (ec) {
            return absl::InternalError(absl::StrCat("cannot move ", (staging / file).string(),
                                                    " into the checkpoint: ", ec.message()));
          }
        }
        return write_config(tmp);
      });
      std::error_code ec;
      fs::remove_all(staging, ec);
    }
    SFPO_RETURN_IF_ERROR(AgreeOnStatus(c, dir.status(), "writing the checkpoint"));
    return dir;
  }
  return WriteCheckpoint(write, state.dump(), [&](const std::string& dir) -> absl::Status {
    SFPO_RETURN_IF_ERROR(SavePolicy(s.policy, dir + "/" + kModelFile));
    SFPO_RETURN_IF_ERROR(TorchCall([&] {
      torch::serialize::OutputArchive archive;
      for (size_t i = 0; i < s.params.size(); ++i) {
        auto it = s.adam->state().find(OptimizerKey(s.params[i]));
        if (it == s.adam->state().end()) continue;
        auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
        archive.write(absl::StrCat("p", i, "_step"), torch::tensor(st.step(), torch::kInt64));
        archive.write(absl::StrCat("p", i, "_exp_avg"), st.exp_avg());
        archive.write(absl::StrCat("p", i, "_exp_avg_sq"), st.exp_avg_sq());
      }
      archive.save_to(dir + "/" + kOptimizerFile);
    }));
    return write_config(dir);
  });
}

absl::Status Trainer::LoadCheckpoint(const std::string& dir, CheckpointExtras* extras) {
  const absl::Status local = LoadCheckpointOnThisRank(dir, extras);
  if (state_->dp == nullptr) return local;
  return AgreeOnStatus(state_->dp->collectives(), local, "loading the checkpoint");
}

absl::Status Trainer::LoadCheckpointOnThisRank(const std::string& dir, CheckpointExtras* extras) {
  State& s = *state_;
  SFPO_ASSIGN_OR_RETURN(std::string text, ReadCheckpointState(dir));
  const std::string where = absl::StrCat(dir, "/", kTrainerStateFile);
  json state = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
  };
  if (!state.is_object() || state.value("format", "") != kStateFormat) {
    return bad(absl::StrCat("not a ", kStateFormat, " file"));
  }
  for (const char* key : {"step", "policy_version", "data_cursor"}) {
    if (!state.contains(key) || !state[key].is_number_integer()) {
      return bad(absl::StrCat("missing or non-integer \"", key, "\""));
    }
  }
  if (!state.contains("rng") || !state["rng"].is_string() || !state.contains("gate") ||
      !state["gate"].is_object() || !state.contains("parameters") ||
      !state["parameters"].is_array() || !state.contains("optimizer")) {
    return bad("missing rng, gate, parameters or optimizer");
  }
  // The model must be the one the checkpoint was taken from.
  const json& params = state["parameters"];
  if (params.size() != s.params.size()) {
    return bad(absl::StrCat("checkpoint has ", params.size(), " trainable parameters, the model ",
                            s.params.size()));
  }
  for (size_t i = 0; i < s.params.size(); ++i) {
    const std::string name = params[i].value("name", "");
    if (name != s.names[i]) {
      return bad(absl::StrCat("parameter ", i, " is '", name, "' in the checkpoint, '", s.names[i],
                              "' in the model"));
    }
    std::vector<int64_t> shape;
    if (params[i].contains("shape") && params[i]["shape"].is_array()) {
      shape = params[i]["shape"].get<std::vector<int64_t>>();
    }
    if (c10::IntArrayRef(shape) != s.params[i].sizes()) {
      return bad(absl::StrCat("parameter ", name, " has shape ", ShapeString(shape),
                              " in the checkpoint, ", ShapeString(s.params[i].sizes()),
                              " in the model"));
    }
  }
  EntropyGateState gate;
  const json& g = state["gate"];
  if (!g.contains("window") || !g["window"].is_array() || !g.contains("sfpo_active") ||
      !g["sfpo_active"].is_boolean()) {
    return bad("malformed gate state");
  }
  gate.window = g["window"].get<std::vector<double>>();
  gate.sfpo_active = g["sfpo_active"].get<bool>();
  gate.switched_at_step = g.value("switched_at_step", int64_t{-1});
  SFPO_RETURN_IF_ERROR(s.gate->Restore(gate));
  std::mt19937_64 rng;
  {
    std::istringstream in(state["rng"].get<std::string>());
    in >> rng;
    if (in.fail()) return bad("malformed rng state");
  }

  SFPO_RETURN_IF_ERROR(LoadPolicy(s.policy, absl::StrCat(dir, "/", kModelFile)));
  const json& opt = state["optimizer"];
  if (opt.value("type", "adamw") == "adamw-sharded") {
    SFPO_RETURN_IF_ERROR(LoadShardedOptimizer(dir, opt, s.params, *s.adam, s.dp.get()));
  } else {
    const json& with_state = opt.value("params_with_state", json::array());
    SFPO_RETURN_IF_ERROR(TorchCall([&]() -> absl::Status {
      torch::serialize::InputArchive archive;
      archive.load_from(absl::StrCat(dir, "/", kOptimizerFile));
      s.adam->state().clear();
      for (const json& index : with_state) {
        const size_t i = index.get<size_t>();
        if (i >= s.params.size()) return bad(absl::StrCat("optimizer state for parameter ", i));
        torch::Tensor step, exp_avg, exp_avg_sq;
        if (!archive.try_read(absl::StrCat("p", i, "_step"), step) ||
            !archive.try_read(absl::StrCat("p", i, "_exp_avg"), exp_avg) ||
            !archive.try_read(absl::StrCat("p", i, "_exp_avg_sq"), exp_avg_sq)) {
          return absl::InvalidArgumentError(absl::StrCat(
              dir, "/", kOptimizerFile, ": no AdamW state for parameter ", s.names[i]));
        }
        const at::Tensor& p = s.params[i];
        if (exp_avg.sizes() != p.sizes() || exp_avg_sq.sizes() != p.sizes() ||
            exp_avg.scalar_type() != p.scalar_type()) {
          return absl::InvalidArgumentError(
              absl::StrCat(dir, "/", kOptimizerFile, ": AdamW state of ", s.names[i], " has shape ",
                           ShapeString(exp_avg.sizes()), ", parameter ", ShapeString(p.sizes())));
        }
        auto st = std::make_unique<torch::optim::AdamWParamState>();
        st->step(step.item<int64_t>());
        st->exp_avg(exp_avg.to(p.device()).contiguous());
        st->exp_avg_sq(exp_avg_sq.to(p.device()).contiguous());
        s.adam->state()[OptimizerKey(p)] = std::move(st);
      }
      return absl::OkStatus();
    }));
    if (s.dp != nullptr) {
      // A one-rank checkpoint on data-parallel ranks: consolidated moments, re-sharded.
      int64_t step = 0;
      at::Tensor m, v;
      SFPO_RETURN_IF_ERROR(TorchCall([&] {
        AdamStateToFlat(s.params, *s.adam, &step, &m, &v);
        s.adam->state().clear();
      }));
      SFPO_RETURN_IF_ERROR(s.dp->LoadFullState(step, m, v, at::Tensor()));
    }
  }
  if (s.dp != nullptr) SFPO_RETURN_IF_ERROR(s.dp->SyncFromParameters());
  s.rng = rng;
  s.step = state["step"].get<int64_t>();
  s.version = state["policy_version"].get<int64_t>();
  if (!s.gate->sfpo_active() && !s.options.slow_fast.grpo_distance) {
    s.updater->ReleaseSavedParameters();
  }
  if (extras != nullptr) {
    extras->data_cursor = state["data_cursor"].get<int64_t>();
    extras->caller_json = state.contains("extra") ? state["extra"].dump() : "{}";
    extras->config_yaml.clear();
  }
  return absl::OkStatus();
}

}  // namespace sfpo
