#include "services/learner/policy_updater.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/torch_util.h"
#include "common/weights_torch.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/checkpoint.h"
#include "services/learner/distributed/collectives.h"
#include "services/learner/distributed/rank_commands.h"
#include "services/learner/trainer.h"

namespace sfpo {
namespace {

// The policy (initialised from run.seed or model.init) and its trainer, on `collectives` when
// set.
absl::Status BuildTrainer(const PolicyUpdaterOptions& o, Collectives* collectives, Policy* policy,
                          std::unique_ptr<Trainer>* trainer) {
  SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(o.config.model.config));
  SFPO_ASSIGN_OR_RETURN(TrainerOptions to, TrainerOptionsFromConfig(o.config));
  *policy = Policy(arch);
  InitPolicyWeights(*policy, static_cast<uint64_t>(o.config.run.seed));
  if (!o.config.model.init.empty()) SFPO_RETURN_IF_ERROR(LoadPolicy(*policy, o.config.model.init));
  SFPO_ASSIGN_OR_RETURN(*trainer, Trainer::Create(to, policy->ptr(), nullptr, collectives));
  return absl::OkStatus();
}

// Every rank's trainer step seconds, by rank (a collective).
absl::StatusOr<std::vector<double>> GatherStepSeconds(Collectives* c, double seconds) {
  at::Tensor mine, all;
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    mine = torch::tensor({seconds}, torch::kFloat64);
    all = torch::zeros({c->world_size()}, torch::kFloat64);
  }));
  SFPO_RETURN_IF_ERROR(c->AllGather(mine, all));
  return std::vector<double>(all.data_ptr<double>(), all.data_ptr<double>() + all.numel());
}

class TorchPolicyUpdater final : public PolicyUpdater {
 public:
  static absl::StatusOr<std::unique_ptr<PolicyUpdater>> Create(const PolicyUpdaterOptions& o) {
    std::unique_ptr<Collectives> collectives;
    if (o.make_collectives) {
      SFPO_ASSIGN_OR_RETURN(collectives, o.make_collectives());
      if (collectives->rank() != 0) {
        return absl::InvalidArgumentError(absl::StrCat("the learner service runs rank 0; rank ",
                                                       collectives->rank(), " runs as a follower"));
      }
    }
    Policy policy(nullptr);
    std::unique_ptr<Trainer> trainer;
    SFPO_RETURN_IF_ERROR(BuildTrainer(o, collectives.get(), &policy, &trainer));
    return std::unique_ptr<PolicyUpdater>(
        new TorchPolicyUpdater(o, std::move(collectives), std::move(policy), std::move(trainer)));
  }

  ~TorchPolicyUpdater() override {
    absl::Status st = TellFollowers({RankCommand::Kind::kStop});
    if (!st.ok()) SFPO_LOG(WARNING) << "could not stop the other learner ranks: " << st;
  }

  absl::StatusOr<UpdateReport> Update(const std::vector<AcceptedGroup>& groups,
                                      int64_t step) override {
    if (step != trainer_->step()) {
      return absl::InternalError(
          absl::StrCat("learner loop at step ", step, ", trainer at ", trainer_->step()));
    }
    SFPO_ASSIGN_OR_RETURN(RolloutBatch batch, BuildBatch(groups));
    SFPO_RETURN_IF_ERROR(TellFollowers({RankCommand::Kind::kStep, step, "", batch}));
    absl::StatusOr<StepDiagnostics> d;
    SFPO_RETURN_IF_ERROR(TorchCall([&] { d = trainer_->Step(std::move(batch)); }));
    if (!d.ok()) return d.status();
    UpdateReport r;
    const PassStats& last = d->update.passes.back();
    r.entropy = d->entropy;
    r.entropy_zscore = d->gate_z;
    r.sfpo_active = d->sfpo_active;
    r.clip_fraction = last.clip_fraction;
    r.approx_kl = last.approx_kl;
    r.grad_norm = last.grad_norm_mean;
    r.logprob_mismatch = d->update.behavior_logp_abs_diff;
    r.param_delta_norm = d->update.theta_next_distance;
    r.fast_delta_norm = d->update.theta_k_distance;
    r.lr = d->lr;
    r.zero_variance_groups = d->zero_variance_groups;
    r.samples_trained = d->sequences;
    r.seconds["old_logprob"] = d->update.old_logprob_seconds;
    r.seconds["fast"] = d->update.fast_seconds;
    r.seconds["reposition"] = d->update.reposition_seconds;
    r.seconds["slow"] = d->update.slow_seconds;
    r.ranks = d->ranks;
    r.all_reduce_seconds = d->all_reduce_seconds;
    r.all_reduce_bytes = d->all_reduce_bytes;
    if (collectives_ != nullptr) {
      SFPO_ASSIGN_OR_RETURN(r.rank_step_seconds,
                            GatherStepSeconds(collectives_.get(), d->step_seconds));
    } else {
      r.rank_step_seconds = {d->step_seconds};
    }
    return r;
  }

  absl::StatusOr<PackedWeights> Pack(int64_t version) override {
    absl::StatusOr<PackedWeights> out;
    SFPO_RETURN_IF_ERROR(
        TorchCall([&] { out = PackModuleWeights(*policy_, wire_dtype_, version, chunk_bytes_); }));
    return out;
  }

  absl::Status SaveCheckpoint(int64_t step, const std::string& extra) override {
    if (step != trainer_->step()) {
      return absl::InternalError(
          absl::StrCat("checkpoint for step ", step, " but the trainer is at ", trainer_->step()));
    }
    SFPO_RETURN_IF_ERROR(TellFollowers({RankCommand::Kind::kSave, step}));
    CheckpointExtras extras;
    extras.caller_json = extra;
    extras.config_yaml = config_yaml_;
    absl::StatusOr<std::string> dir;
    SFPO_RETURN_IF_ERROR(
        TorchCall([&] { dir = trainer_->SaveCheckpoint(output_dir_, keep_last_, extras); }));
    return dir.status();
  }

  absl::StatusOr<std::pair<int64_t, std::string>> RestoreLatest() override {
    absl::StatusOr<std::string> latest = FindLatestCheckpoint(output_dir_);
    SFPO_RETURN_IF_ERROR(
        TellFollowers({RankCommand::Kind::kRestore, 0, latest.ok() ? *latest : ""}));
    SFPO_ASSIGN_OR_RETURN(std::string dir, std::move(latest));
    CheckpointExtras extras;
    absl::Status loaded;
    SFPO_RETURN_IF_ERROR(TorchCall([&] { loaded = trainer_->LoadCheckpoint(dir, &extras); }));
    if (!loaded.ok()) {
      return absl::Status(loaded.code(), absl::StrCat(dir, ": ", loaded.message()));
    }
    return std::make_pair(trainer_->step(), extras.caller_json);
  }

  absl::StatusOr<EvalReport> Evaluate() override {
    if (!evaluate_) return absl::UnimplementedError("evaluation is not configured");
    SFPO_ASSIGN_OR_RETURN(PackedWeights w, Pack(trainer_->policy_version()));
    return evaluate_(w);
  }

 private:
  // Rank 0 announces `command` to the other learner ranks (nothing to do on one rank).
  absl::Status TellFollowers(const RankCommand& command) {
    if (collectives_ == nullptr) return absl::OkStatus();
    return SendCommand(collectives_.get(), command);
  }

  TorchPolicyUpdater(const PolicyUpdaterOptions& o, std::unique_ptr<Collectives> collectives,
                     Policy policy, std::unique_ptr<Trainer> trainer)
      : collectives_(std::move(collectives)),
        wire_dtype_(o.wire_dtype),
        chunk_bytes_(o.chunk_bytes),
        pad_id_(o.pad_id),
        output_dir_(o.config.run.output_dir),
        keep_last_(o.config.run.keep_checkpoints),
        config_yaml_(ConfigToYaml(o.config)),
        evaluate_(o.evaluate),
        policy_(std::move(policy)),
        trainer_(std::move(trainer)) {}

  // Groups -> rows of prompt + response, right-padded with pad_id:
  //   input_ids [N, T] int64, response_mask [N, T], rewards [N] f64, behavior_logp [N, T].
  absl::StatusOr<RolloutBatch> BuildBatch(const std::vector<AcceptedGroup>& groups) const {
    if (groups.empty()) return absl::InvalidArgumentError("empty batch");
    const size_t g_size = groups[0].group.completions.size();
    int64_t rows = 0, width = 0;
    for (const AcceptedGroup& g : groups) {
      if (g.group.completions.size() != g_size) {
        return absl::InvalidArgumentError("groups of different sizes in one batch");
      }
      for (const Completion& c : g.group.completions) {
        width = std::max<int64_t>(width, g.lease.prompt_tokens.size() + c.tokens.size());
        ++rows;
      }
    }
    const int64_t max_positions = policy_->arch().max_position_embeddings;
    if (width > max_positions) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a sequence of ", width, " tokens exceeds the model's ", max_positions, " positions"));
    }
    RolloutBatch batch;
    batch.group_size = static_cast<int64_t>(g_size);
    batch.input_ids = torch::full({rows, width}, pad_id_, torch::kInt64);
    batch.response_mask = torch::zeros({rows, width}, torch::kFloat32);
    batch.behavior_logp = torch::zeros({rows, width}, torch::kFloat32);
    batch.rewards = torch::zeros({rows}, torch::kFloat64);
    auto ids = batch.input_ids.accessor<int64_t, 2>();
    auto mask = batch.response_mask.accessor<float, 2>();
    auto beh = batch.behavior_logp.accessor<float, 2>();
    auto rew = batch.rewards.accessor<double, 1>();
    int64_t r = 0;
    for (const AcceptedGroup& g : groups) {
      for (const Completion& c : g.group.completions) {
        int64_t t = 0;
        for (int32_t tok : g.lease.prompt_tokens) ids[r][t++] = tok;
        for (size_t i = 0; i < c.tokens.size(); ++i, ++t) {
          ids[r][t] = c.tokens[i];
          mask[r][t] = 1.0f;
          beh[r][t] = c.logprobs[i];
        }
        rew[r] = c.reward;
        ++r;
      }
    }
    return batch;
  }

  std::unique_ptr<Collectives> collectives_;  // outlives trainer_ (declared first)
  const WireDType wire_dtype_;
  const uint32_t chunk_bytes_;
  const int32_t pad_id_;
  const std::string output_dir_;
  const int64_t keep_last_;
  const std::string config_yaml_;
  std::function<absl::StatusOr<EvalReport>(const PackedWeights&)> evaluate_;
  Policy policy_;
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PolicyUpdater>> MakeTorchPolicyUpdater(
    const PolicyUpdaterOptions& options) {
  absl::StatusOr<std::unique_ptr<PolicyUpdater>> out;
  SFPO_RETURN_IF_ERROR(TorchCall([&] { out = TorchPolicyUpdater::Create(options); }));
  return out;
}

absl::Status RunFollowerRank(const PolicyUpdaterOptions& o) {
  if (!o.make_collectives) return absl::InvalidArgumentError("a follower rank needs collectives");
  SFPO_ASSIGN_OR_RETURN(std::unique_ptr<Collectives> collectives, o.make_collectives());
  const int rank = collectives->rank();
  if (rank == 0) return absl::InvalidArgumentError("rank 0 is the leader, not a follower");
  Policy policy(nullptr);
  std::unique_ptr<Trainer> trainer;
  SFPO_RETURN_IF_ERROR(
      TorchCall([&] { return BuildTrainer(o, collectives.get(), &policy, &trainer); }));
  auto fail = [rank](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat("learner rank ", rank, ": ", st.message()));
  };
  while (true) {
    absl::StatusOr<RankCommand> command = ReceiveCommand(collectives.get(), o.follower_wait);
    if (!command.ok()) return fail(command.status());
    absl::Status st;
    switch (command->kind) {
      case RankCommand::Kind::kStop:
        return absl::OkStatus();
      case RankCommand::Kind::kStep: {
        if (command->step != trainer->step()) {
          return fail(absl::InternalError(
              absl::StrCat("leader at step ", command->step, ", this rank at ", trainer->step())));
        }
        absl::StatusOr<StepDiagnostics> d;
        st = TorchCall([&] { d = trainer->Step(std::move(command->batch)); });
        if (st.ok()) st = d.status();
        if (st.ok()) st = GatherStepSeconds(collectives.get(), d->step_seconds).status();
        break;
      }
      case RankCommand::Kind::kSave: {
        absl::StatusOr<std::string> dir;
        st = TorchCall([&] {
          dir = trainer->SaveCheckpoint(o.config.run.output_dir, o.config.run.keep_checkpoints, {});
        });
        if (st.ok()) st = dir.status();
        break;
      }
      case RankCommand::Kind::kRestore:
        if (!command->text.empty()) {
          st = TorchCall([&] { return trainer->LoadCheckpoint(command->text, nullptr); });
        }
        break;
    }
    if (!st.ok()) return fail(st);
  }
}

}  // namespace sfpo
