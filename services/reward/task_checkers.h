// Checkers for the built-in tasks (common/tasks.h). The completion is the model's whole
// answer: no extraction rules apply.
#ifndef SFPO_SERVICES_REWARD_TASK_CHECKERS_H_
#define SFPO_SERVICES_REWARD_TASK_CHECKERS_H_

#include "absl/strings/string_view.h"

#include "services/reward/limits.h"
#include "services/reward/verdict.h"

namespace sfpo {

// countdown3: `gold` is "3 5 7=22" (the prompt without its ':'; when empty, `prompt` is read
// instead). The completion is an expression over + - * ( ) and single digits, spaces allowed,
// e.g. "3*5+7". Correct when it uses exactly the gold's digits (as a multiset) and evaluates
// to the target. Other characters, unary signs and syntax errors are unparseable; numbers with
// several digits, wrong digits and wrong values are incorrect. A malformed gold is an error.
VerifyResult CheckCountdown3(absl::string_view completion, absl::string_view gold,
                             absl::string_view prompt, Budget* budget);

// addition: `gold` is the sum ("4690"); the completion must be that integer (digits only,
// surrounding spaces allowed, leading zeros ignored). Anything else than digits is
// unparseable.
VerifyResult CheckAddition(absl::string_view completion, absl::string_view gold, Budget* budget);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_TASK_CHECKERS_H_
