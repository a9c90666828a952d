// How the leader (rank 0, the only rank that talks to workers) drives the other data-parallel
// ranks of a learner: every collective operation of the trainer is announced by a command (a
// small JSON message through Collectives::BroadcastMessage), and a step's batch follows as
// tensor broadcasts. Followers execute the commands in order until kStop.
#ifndef SFPO_SERVICES_LEARNER_DISTRIBUTED_RANK_COMMANDS_H_
#define SFPO_SERVICES_LEARNER_DISTRIBUTED_RANK_COMMANDS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/distributed/collectives.h"

namespace sfpo {

struct RankCommand {
  enum class Kind { kStop, kStep, kSave, kRestore };
  Kind kind = Kind::kStop;
  int64_t step = 0;
  std::string text;    // kRestore: the checkpoint directory ("" when there is none)
  RolloutBatch batch;  // kStep: input_ids, response_mask, rewards, group_size, behavior_logp
};

// Rank 0: announces `command` (and broadcasts its batch for kStep).
absl::Status SendCommand(Collectives* collectives, const RankCommand& command);
// Other ranks: waits up to `wait` for the next command and receives it (with its batch).
// INVALID_ARGUMENT for a malformed command.
absl::StatusOr<RankCommand> ReceiveCommand(Collectives* collectives, absl::Duration wait);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_DISTRIBUTED_RANK_COMMANDS_H_
