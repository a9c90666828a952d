// The learner's model side: a Qwen2 policy trained by the Trainer (GRPO/SFPO, AdamW, entropy
// gate, checkpoints), packed into wire versions. Implements PolicyUpdater for the torch-free
// loop; turns scored groups into padded tensors.
#ifndef SFPO_SERVICES_LEARNER_POLICY_UPDATER_H_
#define SFPO_SERVICES_LEARNER_POLICY_UPDATER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/weights_codec.h"
#include "services/learner/learner_loop.h"

namespace sfpo {

class Collectives;  // services/learner/distributed/collectives.h

struct PolicyUpdaterOptions {
  Config config;  // model, learner, sfpo, rollout.temperature and run sections are read
  WireDType wire_dtype = WireDType::kF32;
  uint32_t chunk_bytes = 1 << 20;
  int32_t pad_id = 0;
  // Held-out evaluation of a packed version; null disables it (Evaluate is UNIMPLEMENTED).
  std::function<absl::StatusOr<EvalReport>(const PackedWeights&)> evaluate;
  // Data-parallel ranks (learner.ranks > 1): joins this process's rank. The updater behind the
  // learner loop must be rank 0, the leader: it announces every step (with its batch),
  // checkpoint and restore to the other ranks, which run RunFollowerRank. Null: one rank.
  std::function<absl::StatusOr<std::unique_ptr<Collectives>>()> make_collectives;
  // How long a follower waits for the leader's next command (the leader may be waiting for
  // rollouts, evaluating or checkpointing meanwhile).
  absl::Duration follower_wait = absl::Hours(2);
};

absl::StatusOr<std::unique_ptr<PolicyUpdater>> MakeTorchPolicyUpdater(
    const PolicyUpdaterOptions& options);

// A data-parallel rank other than 0 (options.make_collectives is required): builds the same
// trainer, then runs the leader's commands (a step on the broadcast batch, a checkpoint, a
// restore) until the leader stops. OK when the leader stopped; otherwise the first error (a
// failed collective names the rank that failed; a dead leader ends the wait with an error).
absl::Status RunFollowerRank(const PolicyUpdaterOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_POLICY_UPDATER_H_
