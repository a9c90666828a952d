// The composition root: builds each service's Options (model, tasks, trainer, engine) from the
// run config. Only the CLI layer includes this.
#ifndef SFPO_CLI_FACTORY_H_
#define SFPO_CLI_FACTORY_H_

#include "absl/status/statusor.h"
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

// Sets Torch's thread count from run.threads (0 leaves Torch's default).
void ConfigureThreads(const Config& config);

}  // namespace sfpo

#endif  // SFPO_CLI_FACTORY_H_
