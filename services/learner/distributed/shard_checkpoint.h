// The sharded part of a data-parallel checkpoint: one file per rank with its shard of the AdamW
// moments (optimizer_shard_<r>_of_<N>.pt, a LibTorch archive with "step", "exp_avg" and
// "exp_avg_sq"), and the agreement step through which every rank learns whether every rank
// succeeded. SFPO's theta_0 is not stored: it is re-taken from the parameters at the start of
// every SFPO step, so between steps (when checkpoints are written) it carries no information.
#ifndef SFPO_SERVICES_LEARNER_DISTRIBUTED_SHARD_CHECKPOINT_H_
#define SFPO_SERVICES_LEARNER_DISTRIBUTED_SHARD_CHECKPOINT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/learner/distributed/collectives.h"
#include "services/learner/distributed/data_parallel.h"

namespace sfpo {

std::string ShardFileName(int rank, int world_size);

// Writes `state` (step and moments) to `path` through a temporary file and a rename. INTERNAL
// naming the path on failure.
absl::Status WriteShardFile(const ShardState& state, const std::string& path);
// DATA_LOSS naming the file when it is unreadable or lacks an entry.
absl::StatusOr<ShardState> ReadShardFile(const std::string& path);

// Collective: every rank passes its own outcome of `what`. Returns `local` when it failed;
// ABORTED naming the failed ranks when only others failed; the collective's error when the
// ranks cannot agree; OK when every rank succeeded.
absl::Status AgreeOnStatus(Collectives* collectives, const absl::Status& local,
                           const std::string& what);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_DISTRIBUTED_SHARD_CHECKPOINT_H_
