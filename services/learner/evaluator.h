// Held-out evaluation of a policy version: sampled pass@1 (temperature 1) and greedy accuracy
// on a task's fixed test set, generated with the rollout engine and judged by the verifier
// core in process. Used by the learner every data.eval_every steps and by `sfpo eval`.
#ifndef SFPO_SERVICES_LEARNER_EVALUATOR_H_
#define SFPO_SERVICES_LEARNER_EVALUATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/weights_codec.h"
#include "services/learner/learner_loop.h"

namespace sfpo {

struct EvaluatorOptions {
  std::string model_config = "tiny-char";
  std::string task = "countdown3";  // built-in task or JSONL path
  int64_t problems = 1000;          // held-out problems (the task's test set, truncated)
  int32_t max_new_tokens = 32;
  uint64_t seed = 0;                // sampling seeds of the sampled pass
  double format_reward = 0.0;
};

// Not thread-safe: one caller at a time.
class Evaluator {
 public:
  static absl::StatusOr<std::unique_ptr<Evaluator>> Create(const EvaluatorOptions& options);
  virtual ~Evaluator() = default;
  // Loads `weights` into the evaluator's own model copy and evaluates it.
  virtual absl::StatusOr<EvalReport> Evaluate(const PackedWeights& weights) = 0;
  // Evaluates a checkpoint (model.safetensors or its directory).
  virtual absl::StatusOr<EvalReport> EvaluateCheckpoint(const std::string& path) = 0;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_EVALUATOR_H_
