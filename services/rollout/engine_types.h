// Plain types of the generation engine's interface (no Torch), for the worker loop and its
// conversions.
#ifndef SFPO_SERVICES_ROLLOUT_ENGINE_TYPES_H_
#define SFPO_SERVICES_ROLLOUT_ENGINE_TYPES_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace sfpo {

// The sampler chain, applied in this order to each row's next-token logits:
//   temperature: logits / temperature; temperature == 0 is greedy (argmax);
//   top_k:       keep the k most likely tokens (<= 0 or >= vocab: off);
//   top_p:       of those, keep the smallest most-likely-first prefix whose probability mass
//                (renormalised after top-k) reaches top_p (1.0: off); the top token always stays;
//   sample from what is left, renormalised.
// The reported log-probability of a sampled token is always under the temperature-scaled FULL
// distribution, log softmax(logits / temperature)[token], before top-k/top-p, so that it equals
// ComputeTokenStats(policy, tokens, temperature) (the learner's recomputation). With
// temperature 0 it is the log-probability at temperature 1.
struct SamplingOptions {
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = -1;
  int max_new_tokens = 32;
  // Generation of a row stops after it samples one of these (included in its tokens). The
  // engine's eos token always stops.
  std::vector<int32_t> stop_tokens;
};

// INVALID_ARGUMENT naming the field: temperature < 0 or not finite, top_p outside (0, 1],
// max_new_tokens < 1, a stop token outside [0, vocab_size).
absl::Status ValidateSamplingOptions(const SamplingOptions& options, int64_t vocab_size);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, non-empty (include bos yourself if wanted)
  // Sampling randomness of this row: token i uses a uniform drawn from (seed, i) alone, so the
  // same seed gives the same tokens whatever else is in the batch.
  uint64_t seed = 0;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // the completion, ending with the stop/eos token if one came
  std::vector<float> logprobs;  // per token, see SamplingOptions
  // True when the row ended without a stop token: max_new_tokens reached, or the prompt plus
  // completion filled the model's max_position_embeddings.
  bool truncated = false;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_ENGINE_TYPES_H_
