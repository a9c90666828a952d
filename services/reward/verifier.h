// The verifier's entry point: one item (task, prompt, completion, gold) in, one verdict out,
// bounded in time and memory. Plain C++: the gRPC server and `sfpo reward check` both call it.
#ifndef SFPO_SERVICES_REWARD_VERIFIER_H_
#define SFPO_SERVICES_REWARD_VERIFIER_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/reward/limits.h"
#include "services/reward/math_verifier.h"
#include "services/reward/verdict.h"

namespace sfpo {

struct ScoreInput {
  // "countdown3", "addition", "math" (or empty), "gsm8k", "boxed" (math with that profile).
  absl::string_view task;
  absl::string_view prompt;
  absl::string_view completion;
  absl::string_view gold;
};

struct VerifierOptions {
  VerifyLimits limits;
  // Options for the "math" task (and empty task); "gsm8k" and "boxed" use MathProfile.
  MathOptions math;
  // Reward for a well-formed but wrong answer (Verdict kIncorrect), in [0, 1].
  double format_reward = 0.0;
};

// Names accepted in ScoreInput::task.
bool IsKnownTask(absl::string_view task);

// Scores one item; the work stops with Verdict kError ("deadline") once `deadline` passes.
// Sets `reward`: 1 for kCorrect, options.format_reward for kIncorrect, else 0.
VerifyResult Score(const ScoreInput& input, const VerifierOptions& options, absl::Time deadline);

// INVALID_ARGUMENT naming the field when options are out of range.
absl::Status ValidateVerifierOptions(const VerifierOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_VERIFIER_H_
