// Decides whether a predicted answer is equivalent to the gold answer, both parsed. The rules,
// where established graders disagree, are options (see EquivalenceOptions) and documented in
// services/reward/README.md.
#ifndef SFPO_SERVICES_REWARD_EQUIVALENCE_H_
#define SFPO_SERVICES_REWARD_EQUIVALENCE_H_

#include "absl/status/statusor.h"
#include "services/reward/limits.h"
#include "services/reward/math_ast.h"

namespace sfpo {

enum class PercentMode {
  kFlexible,    // "50\%" equals 50 and 0.5; "50" equals "50\%" (default)
  kValue,       // "50\%" is 1/2 only
  kIgnoreSign,  // "50\%" is 50 only
};

struct EquivalenceOptions {
  // Relative tolerance for inexact values (irrationals) and for a decimal against a fraction
  // without a terminating expansion. Exact rationals otherwise compare exactly.
  double rel_tol = 1e-6;
  PercentMode percent = PercentMode::kFlexible;
  // Bare comma lists ("1, 2") compare as unordered (like sets) when true; tuples "(1, 2)" and
  // intervals are always ordered and their brackets must match.
  bool unordered_lists = true;
  // "x = 5" (a variable, or f(x), on one side) matches "5".
  bool strip_assignment = true;
  // "\{5\}" matches "5".
  bool set_matches_scalar = true;
  // Points at which expressions with variables are evaluated (exactly where rational).
  int points = 8;
};

// True when `pred` is equivalent to `gold`. Bound errors (number_too_large, deadline, ...)
// propagate; nothing else fails: what cannot be evaluated is compared structurally.
absl::StatusOr<bool> Equivalent(const Ast& gold, const Ast& pred,
                                const EquivalenceOptions& options, Budget* budget);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_EQUIVALENCE_H_
