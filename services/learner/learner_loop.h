// The learner's outer loop: wait for a batch of scored groups, update the policy, publish the
// new version, checkpoint, evaluate, log. Torch-free: the model side is a PolicyUpdater.
#ifndef SFPO_SERVICES_LEARNER_LEARNER_LOOP_H_
#define SFPO_SERVICES_LEARNER_LEARNER_LOOP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/weights_codec.h"
#include "services/learner/lease_table.h"
#include "services/learner/learner_metrics.h"
#include "services/learner/step_log.h"
#include "services/learner/weight_board.h"

namespace sfpo {

// What the model side reports about one update; copied into the StepRecord.
struct UpdateReport {
  double entropy = 0;
  double entropy_zscore = 0;
  bool sfpo_active = false;
  double clip_fraction = 0;
  double approx_kl = 0;
  double grad_norm = 0;
  double logprob_mismatch = 0;
  double param_delta_norm = 0;
  double fast_delta_norm = 0;
  double lr = 0;
  int64_t zero_variance_groups = 0;
  int64_t samples_trained = 0;
  std::map<std::string, double> seconds;  // old_logprob, fast, reposition, slow
  // Data-parallel ranks (1: a single rank; the rest zero/empty).
  int64_t ranks = 1;
  double all_reduce_seconds = 0;           // rank 0's time inside all-reduces this step
  int64_t all_reduce_bytes = 0;            // payload rank 0 all-reduced this step
  std::vector<double> rank_step_seconds;   // each rank's trainer step seconds, by rank
};

struct EvalReport {
  double sampled_accuracy = 0;
  double greedy_accuracy = 0;
};

// The model side of the learner. Called from the loop thread only.
class PolicyUpdater {
 public:
  virtual ~PolicyUpdater() = default;
  // Runs outer step `step` (0-based) on `batch` (GRPO or SFPO as configured).
  virtual absl::StatusOr<UpdateReport> Update(const std::vector<AcceptedGroup>& batch,
                                              int64_t step) = 0;
  // The current parameters as wire version `version`.
  virtual absl::StatusOr<PackedWeights> Pack(int64_t version) = 0;
  // Writes a checkpoint for `step` (completed steps) carrying `extra` (the loop's own state as
  // JSON) atomically under the run directory.
  virtual absl::Status SaveCheckpoint(int64_t step, const std::string& extra) = 0;
  // Restores the newest valid checkpoint, if any: returns (step, extra), or NOT_FOUND.
  virtual absl::StatusOr<std::pair<int64_t, std::string>> RestoreLatest() = 0;
  // Held-out accuracy; UNIMPLEMENTED when evaluation is not available.
  virtual absl::StatusOr<EvalReport> Evaluate() = 0;
};

struct LearnerLoopOptions {
  int64_t total_steps = 1;
  int32_t batch_prompts = 16;
  int32_t group_size = 8;
  int64_t checkpoint_every = 0;  // 0: only at the end
  int64_t eval_every = 0;        // 0: never
  bool resume = false;
  std::string output_dir;
  // How long to wait for one batch before giving up with an error (workers all gone).
  absl::Duration batch_timeout = absl::Minutes(30);
  bool progress = true;        // print a progress line per step to stderr
};

// Runs on its own thread. Thread-safe.
class LearnerLoop {
 public:
  // `leases`, `board` and `metrics` (may be null) must outlive the loop.
  static absl::StatusOr<std::unique_ptr<LearnerLoop>> Create(
      LearnerLoopOptions options, std::unique_ptr<PolicyUpdater> updater, LeaseTable* leases,
      WeightBoard* board, LearnerMetrics* metrics);
  ~LearnerLoop();

  // Restores (with resume), publishes the current version, starts the thread.
  absl::Status Start();
  // Asks the loop to stop after the current stage, checkpointing unless `checkpoint` is false
  // (SIGTERM checkpoints; a failed start does not). Non-blocking.
  void RequestStop(bool checkpoint = true);
  // Blocks until the loop ends; returns its status (OK after total_steps or a requested stop).
  absl::Status Wait();
  bool done() const { return done_.load(); }
  int64_t step() const { return step_.load(); }

 private:
  LearnerLoop(LearnerLoopOptions options, std::unique_ptr<PolicyUpdater> updater,
              LeaseTable* leases, WeightBoard* board, LearnerMetrics* metrics,
              std::unique_ptr<StepLog> log);
  absl::Status Run();
  absl::Status Checkpoint(int64_t steps_done);
  std::string ExtraState() const;
  absl::Status RestoreExtra(const std::string& json);

  const LearnerLoopOptions options_;
  std::unique_ptr<PolicyUpdater> updater_;
  LeaseTable* leases_;
  WeightBoard* board_;
  LearnerMetrics* metrics_;
  std::unique_ptr<StepLog> log_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> checkpoint_on_stop_{true};
  std::atomic<bool> done_{false};
  std::atomic<int64_t> step_{0};
  int64_t version_ = 0;
  double wallclock_offset_s_ = 0;
  int64_t rollouts_total_ = 0;
  std::thread thread_;
  absl::Notification finished_;
  absl::Status status_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_LEARNER_LOOP_H_
