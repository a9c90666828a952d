// The learner's model side: a Qwen2 policy trained by the Trainer (GRPO/SFPO, AdamW, entropy
// gate, checkpoints), packed into wire versions. Implements PolicyUpdater for the torch-free
// loop; turns scored groups into padded tensors.
#ifndef SFPO_SERVICES_LEARNER_POLICY_UPDATER_H_
#define SFPO_SERVICES_LEARNER_POLICY_UPDATER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/weights_codec.h"
#include "services/learner/learner_loop.h"

namespace sfpo {

struct PolicyUpdaterOptions {
  Config config;  // model, learner, sfpo, rollout.temperature and run sections are read
  WireDType wire_dtype = WireDType::kF32;
  uint32_t chunk_bytes = 1 << 20;
  int32_t pad_id = 0;
  // Held-out evaluation of a packed version; null disables it (Evaluate is UNIMPLEMENTED).
  std::function<absl::StatusOr<EvalReport>(const PackedWeights&)> evaluate;
};

absl::StatusOr<std::unique_ptr<PolicyUpdater>> MakeTorchPolicyUpdater(
    const PolicyUpdaterOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_POLICY_UPDATER_H_
