// The math verifier: extraction, parsing and equivalence of a completion against a gold
// answer, with per-dataset options. Every outcome is a verdict; nothing throws or hangs.
#ifndef SFPO_SERVICES_REWARD_MATH_VERIFIER_H_
#define SFPO_SERVICES_REWARD_MATH_VERIFIER_H_

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "services/reward/equivalence.h"
#include "services/reward/extract.h"
#include "services/reward/limits.h"
#include "services/reward/verdict.h"

namespace sfpo {

struct MathOptions {
  ExtractOptions extract;
  EquivalenceOptions equivalence;
};

// Named per-dataset option sets:
//   "math"   (default): every extraction rule but last-number; the equivalence defaults.
//   "gsm8k":  like math, plus the last number in the text as a fallback.
//   "boxed":  only \boxed{} answers count (the paper's format; a bare "42" is unparseable).
// INVALID_ARGUMENT for another name.
absl::StatusOr<MathOptions> MathProfile(absl::string_view name);

// Verdict for `completion` against `gold`. The gold answer may itself be a solution holding a
// \boxed{} or "#### N"; then that part is the answer. `reward` is left 0 (the caller applies
// the format credit).
VerifyResult VerifyMath(absl::string_view completion, absl::string_view gold,
                        const MathOptions& options, Budget* budget);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_MATH_VERIFIER_H_
