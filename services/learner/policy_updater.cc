#include "services/learner/policy_updater.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/model.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/torch_util.h"
#include "common/weights_torch.h"
#include "services/learner/algorithm/advantages.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/algorithm/entropy_gate.h"
#include "services/learner/algorithm/lr_schedule.h"
#include "services/learner/algorithm/slow_fast.h"
#include "services/learner/algorithm/update_pass.h"
#include "services/learner/checkpoint.h"

namespace sfpo {
namespace {

class TorchPolicyUpdater final : public PolicyUpdater {
 public:
  static absl::StatusOr<std::unique_ptr<PolicyUpdater>> Create(const PolicyUpdaterOptions& o) {
    const Config& c = o.config;
    SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(c.model.config));
    auto u = std::unique_ptr<TorchPolicyUpdater>(new TorchPolicyUpdater(o, arch));
    InitPolicyWeights(u->policy_, static_cast<uint64_t>(c.run.seed));
    if (!c.model.init.empty()) SFPO_RETURN_IF_ERROR(LoadPolicy(u->policy_, c.model.init));
    SFPO_ASSIGN_OR_RETURN(u->gate_, EntropyGate::Create(u->GateOptions()));
    SFPO_ASSIGN_OR_RETURN(u->update_.loss.kl_estimator,
                          ParseKlEstimator(c.learner.kl_estimator));
    SFPO_ASSIGN_OR_RETURN(u->update_.aggregation, ParseLossAggregation(c.learner.loss_agg));
    SFPO_ASSIGN_OR_RETURN(u->schedule_.kind, ParseLrSchedule(c.learner.schedule));
    return std::unique_ptr<PolicyUpdater>(std::move(u));
  }

  absl::StatusOr<UpdateReport> Update(const std::vector<AcceptedGroup>& groups,
                                      int64_t step) override {
    UpdateReport report;
    SFPO_ASSIGN_OR_RETURN(RolloutBatch batch, BuildBatch(groups, &report));
    const bool sfpo_step = config_.learner.algorithm == "sfpo" && gate_->Decide(step);
    const double lr = LearningRateAt(schedule_, step);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    SlowFastOptions sf;
    sf.inner_steps = sfpo_step ? config_.sfpo.inner_steps : 0;
    sf.alpha = config_.sfpo.alpha;
    sf.behavior_as_old_logp = config_.rollout.max_staleness > 0;
    const double temperature = config_.rollout.temperature > 0 ? config_.rollout.temperature : 1.0;
    Policy policy = policy_;
    PolicyFn fn = [policy, temperature](const at::Tensor& ids) mutable {
      TokenStats s = ComputeTokenStats(policy, ids, temperature);
      return PolicyOutput{s.logp, s.entropy};
    };
    SFPO_ASSIGN_OR_RETURN(SlowFastStepStats stats,
                          updater_.Step(fn, optimizer_.get(), &batch, update_, sf));
    if (!gate_->sfpo_active()) updater_.ReleaseSavedParameters();
    const PassStats& last = stats.passes.back();
    gate_->Record(last.entropy);
    report.entropy = last.entropy;
    report.entropy_zscore = gate_->last_z();
    report.sfpo_active = sfpo_step;
    report.clip_fraction = last.clip_fraction;
    report.approx_kl = last.approx_kl;
    report.grad_norm = last.grad_norm_mean;
    report.logprob_mismatch = stats.behavior_logp_abs_diff;
    report.param_delta_norm = stats.theta_next_distance;
    report.fast_delta_norm = stats.theta_k_distance;
    report.lr = lr;
    report.seconds["old_logprob"] = stats.old_logprob_seconds;
    report.seconds["fast"] = stats.fast_seconds;
    report.seconds["reposition"] = stats.reposition_seconds;
    report.seconds["slow"] = stats.slow_seconds;
    return report;
  }

  absl::StatusOr<PackedWeights> Pack(int64_t version) override {
    absl::StatusOr<PackedWeights> out;
    SFPO_RETURN_IF_ERROR(TorchCall([&] {
      out = PackModuleWeights(*policy_, wire_dtype_, version, chunk_bytes_);
    }));
    return out;
  }

  absl::Status SaveCheckpoint(int64_t step, const std::string& extra) override {
    TrainerCheckpoint ckpt;
    ckpt.step = step;
    ckpt.gate = gate_->state();
    ckpt.extra_json = extra;
    return checkpoints_->Save(ckpt, policy_, *optimizer_);
  }

  absl::StatusOr<std::pair<int64_t, std::string>> RestoreLatest() override {
    SFPO_ASSIGN_OR_RETURN(TrainerCheckpoint ckpt, checkpoints_->LoadLatest(policy_, optimizer_.get()));
    SFPO_RETURN_IF_ERROR(gate_->Restore(ckpt.gate));
    return std::make_pair(ckpt.step, ckpt.extra_json);
  }

  absl::StatusOr<EvalReport> Evaluate() override {
    if (!evaluate_) return absl::UnimplementedError("evaluation is not configured");
    SFPO_ASSIGN_OR_RETURN(PackedWeights w, Pack(-1 + 0));
    return evaluate_(w);
  }

 private:
  TorchPolicyUpdater(const PolicyUpdaterOptions& o, const ModelArch& arch)
      : config_(o.config),
        wire_dtype_(o.wire_dtype),
        chunk_bytes_(o.chunk_bytes),
        pad_id_(o.pad_id),
        evaluate_(o.evaluate),
        policy_(arch),
        updater_(Parameters()) {
    const LearnerConfig& l = config_.learner;
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        policy_->parameters(), torch::optim::AdamWOptions(l.lr)
                                   .betas({l.adam_beta1, l.adam_beta2})
                                   .eps(l.adam_eps)
                                   .weight_decay(l.weight_decay));
    update_.loss.clip_low = l.clip_low;
    update_.loss.clip_high = l.clip_high;
    update_.loss.entropy_coef = l.entropy_coef;
    update_.loss.kl_coef = l.kl_coef;
    update_.mini_batch_groups = l.mini_batch_prompts;
    update_.micro_batch_tokens = l.micro_batch_tokens;
    update_.grad_clip = l.grad_clip;
    schedule_.base_lr = l.lr;
    schedule_.warmup_steps = l.warmup_steps;
    schedule_.total_steps = config_.run.total_steps;
    CheckpointOptions co;
    co.dir = config_.run.output_dir;
    co.keep_last = config_.run.keep_checkpoints;
    checkpoints_ = std::make_unique<CheckpointManager>(co);
  }

  std::vector<at::Tensor> Parameters() { return policy_->parameters(); }

  EntropyGateOptions GateOptions() const {
    EntropyGateOptions g;
    g.window = config_.sfpo.gate_window;
    g.threshold = config_.sfpo.gate_threshold;
    g.stop_step = config_.sfpo.stop_step;
    g.mode = config_.sfpo.gate == "entropy" ? GateMode::kEntropy
             : config_.sfpo.gate == "step"  ? GateMode::kStep
                                            : GateMode::kNone;
    return g;
  }

  // Groups -> padded tensors: rows are prompt + response, right-padded with pad_id.
  absl::StatusOr<RolloutBatch> BuildBatch(const std::vector<AcceptedGroup>& groups,
                                          UpdateReport* report) {
    if (groups.empty()) return absl::InvalidArgumentError("empty batch");
    const int64_t g_size = static_cast<int64_t>(groups[0].group.completions.size());
    int64_t rows = 0, width = 0;
    for (const AcceptedGroup& g : groups) {
      if (static_cast<int64_t>(g.group.completions.size()) != g_size) {
        return absl::InvalidArgumentError("groups of different sizes in one batch");
      }
      for (const Completion& c : g.group.completions) {
        width = std::max<int64_t>(width, g.lease.prompt_tokens.size() + c.tokens.size());
        ++rows;
      }
    }
    const int64_t max_positions = policy_->arch().max_position_embeddings;
    if (width > max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("a sequence of ", width,
                                                     " tokens exceeds the model's ",
                                                     max_positions, " positions"));
    }
    auto ids = torch::full({rows, width}, pad_id_, torch::kInt64);
    auto mask = torch::zeros({rows, width}, torch::kFloat32);
    auto behavior = torch::zeros({rows, width}, torch::kFloat32);
    auto rewards = torch::zeros({rows}, torch::kFloat64);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<float, 2>();
    auto beh_a = behavior.accessor<float, 2>();
    auto rew_a = rewards.accessor<double, 1>();
    int64_t r = 0;
    for (const AcceptedGroup& g : groups) {
      const auto& prompt = g.lease.prompt_tokens;
      for (const Completion& c : g.group.completions) {
        int64_t t = 0;
        for (int32_t tok : prompt) ids_a[r][t++] = tok;
        for (size_t i = 0; i < c.tokens.size(); ++i, ++t) {
          ids_a[r][t] = c.tokens[i];
          mask_a[r][t] = 1.0f;
          beh_a[r][t] = c.logprobs[i];
        }
        rew_a[r] = c.reward;
        ++r;
      }
    }
    RolloutBatch batch;
    batch.group_size = g_size;
    batch.input_ids = ids;
    batch.response_mask = mask;
    batch.rewards = rewards;
    batch.behavior_logp = behavior;
    AdvantageOptions ao;
    ao.normalize_std = config_.learner.normalize_adv_std;
    SFPO_ASSIGN_OR_RETURN(GroupAdvantages adv, ComputeGroupAdvantages(rewards, g_size, ao));
    batch.advantages = adv.advantages;
    report->zero_variance_groups = adv.zero_variance_groups;
    report->samples_trained = rows;
    if (config_.learner.drop_zero_variance_groups &&
        adv.informative_groups.size() < groups.size() && !adv.informative_groups.empty()) {
      batch = SelectGroups(batch, adv.informative_groups);
    }
    SFPO_RETURN_IF_ERROR(PrepareBatch(&batch));
    return batch;
  }

  Config config_;
  WireDType wire_dtype_;
  uint32_t chunk_bytes_;
  int32_t pad_id_;
  std::function<absl::StatusOr<EvalReport>(const PackedWeights&)> evaluate_;
  Policy policy_;
  SlowFastUpdater updater_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  UpdateOptions update_;
  LrScheduleOptions schedule_;
  std::optional<EntropyGate> gate_;
  std::unique_ptr<CheckpointManager> checkpoints_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PolicyUpdater>> MakeTorchPolicyUpdater(
    const PolicyUpdaterOptions& options) {
  std::unique_ptr<PolicyUpdater> out;
  absl::Status st = TorchCall([&] {
    auto made = TorchPolicyUpdater::Create(options);
    if (made.ok()) out = std::move(*made);
    return made.status();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace sfpo
