// Evaluates a scalar subtree of an Ast at one point: exactly (GMP rationals) while every step
// is rational, in double precision after the first irrational step (\pi, a root that is not
// exact, a function). Sizes are bounded before each exact step; nothing else is executed.
#ifndef SFPO_SERVICES_REWARD_MATH_EVAL_H_
#define SFPO_SERVICES_REWARD_MATH_EVAL_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/reward/limits.h"
#include "services/reward/math_ast.h"
#include "services/reward/rational.h"

namespace sfpo {

struct Value {
  bool exact = true;
  Rational q;       // when exact
  double d = 0.0;   // when !exact
  // An exact value that came from a decimal literal ("0.333"): see ValuesEqual.
  bool decimal = false;

  double AsDouble() const { return exact ? q.ToDouble() : d; }
};

// Values of the free variables at one point. \infty is the variable "oo".
using Assignment = absl::flat_hash_map<std::string, Rational>;

struct EvalOptions {
  // Read "50%" as 50 instead of 1/2.
  bool percent_is_identity = false;
};

// Evaluates node `id`. Bit i of `pm_mask` picks the minus sign of the i-th \pm node in
// pre-order. Returns OUT_OF_RANGE when there is no real value at this point (division by zero,
// even root or log of a negative number), FAILED_PRECONDITION for a non-scalar node (tuple,
// set, relation, list) or an unknown variable, and bound errors (number_too_large,
// exponent_too_large, deadline).
absl::StatusOr<Value> Evaluate(const Ast& ast, int id, const Assignment& vars, uint32_t pm_mask,
                               const EvalOptions& options, Budget* budget);

// True for the OUT_OF_RANGE status of an inexact step that overflowed (as opposed to a point
// outside the expression's domain).
bool IsOverflow(const absl::Status& status);

// a + b, a - b, a * b or a / b (op one of "+-*/") under the same bounds as Evaluate.
absl::StatusOr<Value> Combine(char op, const Value& a, const Value& b, Budget* budget);

// Whether two values are the same number. Exact values compare exactly; when exactly one side
// was written as a decimal and the other is a rational with no terminating decimal expansion
// ("0.3333333" vs 1/3), or when either side is inexact, they compare with relative tolerance
// `rel_tol` (and absolute 1e-12 near zero).
bool ValuesEqual(const Value& a, const Value& b, double rel_tol);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_MATH_EVAL_H_
