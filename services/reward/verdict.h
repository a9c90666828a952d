// The outcome of checking one completion against a gold answer. Plain types, no gRPC.
#ifndef SFPO_SERVICES_REWARD_VERDICT_H_
#define SFPO_SERVICES_REWARD_VERDICT_H_

#include <string>
#include "absl/strings/string_view.h"

namespace sfpo {

// Recorded with every verdict; bump when a change can flip a verdict.
inline constexpr absl::string_view kVerifierVersion = "sfpo-reward/1.0.0";

enum class Verdict {
  kCorrect,      // An answer was extracted and is equivalent to the gold answer.
  kIncorrect,    // An answer was extracted, parsed, and is not equivalent.
  kUnparseable,  // No answer could be extracted, or it could not be parsed.
  kError,        // A bound (length, depth, digits, exponent, deadline) was exceeded, the gold
                 // answer is malformed, or the input is invalid (UTF-8); `reason` says which.
};

// "correct", "incorrect", "unparseable", "error".
absl::string_view VerdictName(Verdict verdict);

struct VerifyResult {
  Verdict verdict = Verdict::kError;
  // 1 for kCorrect, the format credit for kIncorrect, else 0.
  double reward = 0.0;
  // The extracted answer (as written, trimmed); empty when none was found.
  std::string extracted;
  // Why: always set for kUnparseable and kError, a short note otherwise.
  std::string reason;
  // For kError only: a short stable label for metrics ("input_too_long", "deadline", ...).
  std::string error_label;
  // The verifier that produced the verdict (kVerifierVersion).
  std::string verifier_version;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_VERDICT_H_
