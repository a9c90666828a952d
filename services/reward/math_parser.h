// Parses one answer (already extracted from a completion) into an Ast. The grammar covers
// arithmetic with implicit multiplication, LaTeX fractions/roots/functions, mixed numbers
// ("2\frac{1}{2}", "2 1/2" mean 5/2), percent, factorial, absolute value, tuples, intervals,
// sets, unions, equations and inequality chains, and comma lists. Trailing units and words
// after a numeric value ("5 cm", "12 \text{ apples}", "30^\circ") are dropped.
#ifndef SFPO_SERVICES_REWARD_MATH_PARSER_H_
#define SFPO_SERVICES_REWARD_MATH_PARSER_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "services/reward/limits.h"
#include "services/reward/math_ast.h"

namespace sfpo {

// INVALID_ARGUMENT (unparseable) naming the problem for text that is not an answer; bound
// errors (too_deep, number_too_large, exponent_too_large, too_many_elements, deadline) as
// documented in limits.h.
absl::StatusOr<Ast> ParseAnswer(absl::string_view answer, Budget* budget);

// A canonical rendering of a subtree, for messages and structural comparison.
std::string Render(const Ast& ast, int node);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_MATH_PARSER_H_
