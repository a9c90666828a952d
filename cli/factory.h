// The composition root: builds each service's Options (model, tasks, trainer, engine) from the
// run config. Only the CLI layer includes this.
#ifndef SFPO_CLI_FACTORY_H_
#define SFPO_CLI_FACTORY_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/config.h"
#include "services/learner/distributed/gloo_collectives.h"
#include "services/learner/learner_server.h"
#include "services/reward/reward_server.h"
#include "services/rollout/rollout_server.h"

namespace sfpo {

// listen/registry are left for the caller to set. `rank0`: this learner is rank 0 of
// data-parallel ranks joined through Gloo (required when learner.ranks > 1; its world_size must
// equal learner.ranks).
absl::StatusOr<LearnerServerOptions> BuildLearnerOptions(const Config& config,
                                                         const GlooOptions* rank0 = nullptr);
// Runs learner rank gloo.rank > 0 of learner.ranks until rank 0 stops it (see
// RunFollowerRank).
absl::Status RunLearnerFollower(const Config& config, const GlooOptions& gloo);
absl::StatusOr<RolloutServerOptions> BuildRolloutOptions(const Config& config);
RewardServerOptions BuildRewardOptions(const Config& config);

// Learner ranks 1..N-1 (learner.ranks = N > 1) as threads of this process, joined with rank 0
// (the learner service) through Gloo on a loopback rendezvous store this object hosts: `sfpo
// local`, and `sfpo learner` without --rendezvous (one process driving N ranks).
class LocalLearnerRanks {
 public:
  LocalLearnerRanks() = default;
  LocalLearnerRanks(const LocalLearnerRanks&) = delete;
  LocalLearnerRanks& operator=(const LocalLearnerRanks&) = delete;
  ~LocalLearnerRanks();

  // Starts the followers and fills *rank0 with rank 0's Gloo options.
  absl::Status Start(const Config& config, GlooOptions* rank0);
  bool started() const { return rendezvous_ != nullptr; }
  // Call after rank 0's updater is gone (it stops the others): waits up to 10 s for the
  // followers, then closes the store (which ends any follower still waiting) and joins them.
  // Returns the first follower's error.
  absl::Status Stop();

 private:
  std::unique_ptr<RendezvousServer> rendezvous_;
  std::vector<std::thread> threads_;
  std::vector<absl::Status> status_;
  std::vector<std::unique_ptr<absl::Notification>> done_;
};

// Sets Torch's thread count from run.threads (0 leaves Torch's default).
void ConfigureThreads(const Config& config);

}  // namespace sfpo

#endif  // SFPO_CLI_FACTORY_H_
