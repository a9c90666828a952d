// The learner's trainer: owns the policy's optimizer (AdamW), the learning-rate schedule, the
// SFPO updater and its entropy gate, the step and policy version, and an RNG for the group
// order of each pass; turns a batch of scored groups into one outer step (version v -> v+1);
// saves and restores all of it exactly (on CPU, a resumed run computes bitwise the same next
// step). Not thread-safe: one thread drives a Trainer.
#ifndef SFPO_SERVICES_LEARNER_TRAINER_H_
#define SFPO_SERVICES_LEARNER_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "services/learner/algorithm/advantages.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/algorithm/entropy_gate.h"
#include "services/learner/algorithm/lr_schedule.h"
#include "services/learner/algorithm/slow_fast.h"
#include "services/learner/algorithm/update_pass.h"
#include "services/learner/distributed/data_parallel.h"

namespace sfpo {

class PolicyImpl;           // common/model.h
class Collectives;          // services/learner/distributed/collectives.h
class DataParallelUpdater;  // services/learner/distributed/data_parallel.h

struct TrainerOptions {
  bool sfpo = true;  // false: GRPO (K = 0 on every step)
  SlowFastOptions slow_fast;
  EntropyGateOptions gate;
  UpdateOptions update;
  AdvantageOptions advantages;
  bool drop_zero_variance_groups = false;
  LrScheduleOptions lr;
  AdamWHyperparameters adam;
  double temperature = 1.0;    // the sampling temperature: log-probs are of logits / temperature
  bool shuffle_groups = true;  // a fresh group order per pass, from the trainer's RNG
  uint64_t seed = 0;
  // Data-parallel ranks only: the size of the gradient and parameter buckets.
  int64_t bucket_bytes = int64_t{25} << 20;
  bool overlap_reduce = true;  // DataParallelOptions::overlap_reduce
};

// Options from a run config (learner.*, sfpo.*, rollout.temperature, run.seed/total_steps).
// INVALID_ARGUMENT naming the key for a bad choice.
absl::StatusOr<TrainerOptions> TrainerOptionsFromConfig(const Config& config);

// What one outer step did.
struct StepDiagnostics {
  int64_t step = 0;            // the step just completed (0-based)
  int64_t policy_version = 0;  // the version the step produced
  bool sfpo_active = false;
  double gate_z = 0;        // NaN when not evaluated
  bool gate_fired = false;  // switched to GRPO before this step
  double lr = 0;
  int64_t groups = 0, sequences = 0, zero_variance_groups = 0, dropped_groups = 0;
  double reward_mean = 0;
  double entropy = 0;  // mean token entropy of the last pass
  SlowFastStepStats update;
  double advantage_seconds = 0, reference_seconds = 0, step_seconds = 0;
  // Data-parallel figures of this step (ranks = 1 and zeros without collectives).
  int ranks = 1;
  double all_reduce_seconds = 0;  // this rank's time inside all-reduces
  int64_t all_reduce_bytes = 0;   // payload this rank all-reduced
  double collective_seconds = 0;  // every collective (all-gathers and broadcasts included)
  int64_t collective_bytes = 0;
  double local_entropy = 0;  // this rank's own share's entropy (== entropy with one rank)
};

// One JSON object (one line) with every figure, NaN as null.
std::string StepDiagnosticsToJson(const StepDiagnostics& d);

// What a checkpoint carries beyond the model and optimizer, for the caller.
struct CheckpointExtras {
  int64_t data_cursor = 0;
  std::string caller_json = "{}";  // opaque JSON value (e.g. the lease ledger)
  std::string config_yaml;         // saved as config.yaml when not empty
};

class Trainer {
 public:
  // `policy`: the model to train (its parameters are updated in place). `reference`: a frozen
  // policy for the KL term, required when update.loss.kl_coef > 0. `collectives`: when set,
  // this trainer is one data-parallel rank (services/learner/distributed/data_parallel.h: the
  // same update as one rank on the whole batch, AdamW moments and theta_0 sharded); every rank
  // must then call Step and the checkpoint methods in lockstep with the same batches. It must
  // outlive the trainer. INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const TrainerOptions& options, std::shared_ptr<PolicyImpl> policy,
      std::shared_ptr<PolicyImpl> reference = nullptr, Collectives* collectives = nullptr);
  ~Trainer();

  // One outer step on `batch` (input_ids, response_mask, rewards, group_size; optional
  // behavior_logp). Computes advantages, counts (and optionally drops) zero-variance groups,
  // runs GRPO or SFPO as the gate decides. FAILED_PRECONDITION when dropping leaves no group;
  // INVALID_ARGUMENT for a malformed batch; INTERNAL for Torch failures.
  absl::StatusOr<StepDiagnostics> Step(RolloutBatch batch);

  int64_t step() const;            // outer steps completed
  int64_t policy_version() const;  // == step() unless restored from elsewhere
  bool sfpo_active() const;
  const EntropyGateState& gate_state() const;
  // Bytes of SFPO's saved parameter copy (0 for GRPO).
  int64_t saved_parameter_bytes() const;
  std::shared_ptr<PolicyImpl> policy() const;
  // The data-parallel updater (null without collectives).
  DataParallelUpdater* data_parallel() const;

  // Writes `root`/step_<step()> (model.safetensors, optimizer.pt, trainer_state.json and
  // config.yaml), atomically, keeping the newest `keep_last`. Returns the directory. A
  // data-parallel rank: every rank calls it (a collective); rank 0 writes the model and the
  // state, every rank its optimizer shard (optimizer_shard_<r>_of_<N>.pt instead of
  // optimizer.pt; `root` must be one shared directory); every rank returns the directory, or
  // an error when any rank failed.
  absl::StatusOr<std::string> SaveCheckpoint(const std::string& root, int64_t keep_last,
                                             const CheckpointExtras& extras);
  // Restores model, optimizer, step, version, RNG and gate from `dir`; fills `extras`
  // (config_yaml stays empty). DATA_LOSS for a truncated or corrupt checkpoint,
  // INVALID_ARGUMENT naming the parameter (or field) for a checkpoint of another model or
  // options. On error the trainer may be partly restored and should be discarded. Restores
  // from a checkpoint of any world size: the same world size reads its own shard (bitwise),
  // another consolidates the shards (or the one-rank optimizer.pt) and takes its slice; a
  // one-rank trainer consolidates a sharded checkpoint. A data-parallel rank: a collective.
  absl::Status LoadCheckpoint(const std::string& dir, CheckpointExtras* extras);

 private:
  absl::Status LoadCheckpointOnThisRank(const std::string& dir, CheckpointExtras* extras);

  struct State;
  explicit Trainer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_TRAINER_H_
