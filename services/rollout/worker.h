// The rollout worker's loop: lease -> generate -> score -> submit, with weights swapped in
// between generation batches. Pure of gRPC and torch: it talks to the learner, the verifier and
// the model through the interfaces below (gRPC clients and the torch engine implement them).
#ifndef SFPO_SERVICES_ROLLOUT_WORKER_H_
#define SFPO_SERVICES_ROLLOUT_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/rl_types.h"
#include "common/weights_codec.h"

namespace sfpo {

struct LeaseReply {
  std::vector<Lease> leases;
  int64_t current_version = -1;
  absl::Duration retry_after = absl::Milliseconds(50);
  bool done = false;
};

// The learner as the worker sees it. Implementations are thread-safe.
class LearnerClient {
 public:
  virtual ~LearnerClient() = default;
  virtual absl::StatusOr<LeaseReply> LeaseWork(int max_leases, int64_t worker_version) = 0;
  // One status per group: OK when accepted, else the learner's reason. An error for the call
  // itself (learner unreachable) is the outer status.
  virtual absl::StatusOr<std::vector<absl::Status>> Submit(
      const std::vector<ScoredGroup>& groups) = 0;
  virtual absl::Status Release(const std::vector<uint64_t>& lease_ids) = 0;
  // Streams every version newer than `have_version` to `on_version`, verified, until `stop`
  // is set (returns OK) or the stream fails (returns the error; the caller reconnects).
  // A version that fails verification ends the stream with DATA_LOSS.
  virtual absl::Status WatchWeights(int64_t have_version,
                                    const std::function<void(PackedWeights)>& on_version,
                                    const std::atomic<bool>& stop) = 0;
};

struct ScoreRequestItem {
  std::string task;
  std::string prompt;
  std::string completion;
  std::string gold;
};

struct ScoreOutcome {
  SampleVerdict verdict = SampleVerdict::kUnspecified;
  float reward = 0;
  std::string extracted;
  std::string reason;
};

class RewardClient {
 public:
  virtual ~RewardClient() = default;
  // One outcome per item, same order.
  virtual absl::StatusOr<std::vector<ScoreOutcome>> Score(
      const std::vector<ScoreRequestItem>& items) = 0;
};

struct GeneratedSample {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string text;  // decoded, special tokens removed
  bool truncated = false;
};

// The model side. Called from the worker's loop thread only.
class Generator {
 public:
  virtual ~Generator() = default;
  // group_size samples per lease, sampled with the lease's parameters (sample i seeded with
  // sampling.seed + i). Result [lease][sample].
  virtual absl::StatusOr<std::vector<std::vector<GeneratedSample>>> Generate(
      const std::vector<Lease>& leases) = 0;
  // Swaps in a verified version (names/shapes must match).
  virtual absl::Status ApplyWeights(const PackedWeights& weights) = 0;
};

struct WorkerOptions {
  std::string worker_id = "worker-0";
  int max_leases = 8;  // leases generated together
  absl::Duration backoff_initial = absl::Milliseconds(50);
  absl::Duration backoff_max = absl::Seconds(2);
  // Called with durations/counts for metrics; may be null.
  std::function<void(absl::Duration generate, int64_t sequences, int64_t tokens)> on_generated;
  std::function<void(int64_t version, absl::Duration apply)> on_weights_applied;
  std::function<void()> on_weights_failed;
  // Time the loop spent without work because the policy version it needs is not there yet:
  // before the first version, while the learner hands out no leases (in synchronous mode: the
  // batch is complete and the learner is training), and while leases wait for their weights.
  std::function<void(absl::Duration)> on_wait_weights;
  // Each change of the number of leases held: the new level, and how many of them were just
  // leased (0 when leases were submitted, released or dropped).
  std::function<void(uint32_t in_flight, uint32_t newly_leased)> on_leases;
  uint64_t seed = 0;  // jitter
};

struct WorkerStatusSnapshot {
  int64_t policy_version = -1;
  uint32_t leases_in_flight = 0;
  uint64_t sequences_generated = 0;
  uint64_t tokens_generated = 0;
  uint64_t groups_submitted = 0;
  uint64_t groups_rejected = 0;
  uint64_t weight_failures = 0;
  uint64_t leases_released = 0;
  bool draining = false;
  std::string state = "starting";
};

// Runs the loop on its own threads (one for work, one for the weight stream). Thread-safe.
// The first unrecoverable error (a Generator failure) stops the worker; status() reports it.
class RolloutWorker {
 public:
  RolloutWorker(WorkerOptions options, std::shared_ptr<LearnerClient> learner,
                std::shared_ptr<RewardClient> reward, std::unique_ptr<Generator> generator);
  ~RolloutWorker();

  void Start();
  // Stops taking leases; the batch in progress is finished if it can be, else its leases are
  // released. Non-blocking.
  void Drain();
  // Stops at once, releasing leases in flight. Blocks until the threads have exited.
  void Stop();
  // Blocks until the worker has stopped (the learner said done, Drain finished, or an error).
  void Wait();
  bool stopped() const;
  absl::Status status() const;
  WorkerStatusSnapshot snapshot() const;

 private:
  void WorkLoop();
  void WeightsLoop();
  // Sleeps up to `d`, returning early once stopping. Returns false if stopping.
  bool Pause(absl::Duration d);
  absl::Duration NextBackoff(absl::Duration* current);
  void SetState(const std::string& s);
  // Applies a pending version, if any. Returns false on an unrecoverable error.
  bool ApplyPendingWeights();
  void Finish(absl::Status status);
  // Sets the level in the snapshot, then tells options_.on_leases (outside mu_).
  void SetLeasesInFlight(uint32_t in_flight, uint32_t newly_leased);

  const WorkerOptions options_;
  std::shared_ptr<LearnerClient> learner_;
  std::shared_ptr<RewardClient> reward_;
  std::unique_ptr<Generator> generator_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> stream_stop_{false};
  mutable absl::Mutex mu_;
  std::unique_ptr<PackedWeights> pending_ ABSL_GUARDED_BY(mu_);
  WorkerStatusSnapshot snap_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t rng_ ABSL_GUARDED_BY(mu_);
  std::thread work_thread_;
  std::thread weights_thread_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_WORKER_H_
