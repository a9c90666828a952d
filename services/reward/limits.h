// Bounds that make every verdict finite by construction, and the per-item work budget that
// enforces the deadline cooperatively. Exceeding a bound is an absl::Status whose message starts
// with a stable label ("number_too_large: ..."); VerdictFromStatus turns it into kError.
#ifndef SFPO_SERVICES_REWARD_LIMITS_H_
#define SFPO_SERVICES_REWARD_LIMITS_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace sfpo {

struct VerifyLimits {
  // Longest completion accepted, in bytes (a 1 MB completion is an error, not a slow verdict).
  int64_t max_completion_bytes = 256 << 10;
  // Longest extracted or gold answer, in bytes.
  int64_t max_answer_bytes = 4096;
  // Deepest nesting of brackets/braces/fractions/powers inside an answer.
  int max_depth = 64;
  // Most digits in one number literal.
  int max_number_digits = 400;
  // Largest |exponent| in scientific notation (1e400) or an exact integer power (x^n).
  int64_t max_exponent = 4096;
  // Largest exact intermediate value, in bits of numerator + denominator.
  int64_t max_value_bits = 1 << 16;
  // Most elements in one list, set or tuple.
  int max_elements = 64;
  // Largest n in n! or \binom{n}{k}.
  int64_t max_factorial = 1000;
};

// Counts work and checks a deadline. One per item; not thread-safe.
class Budget {
 public:
  Budget(const VerifyLimits& limits, absl::Time deadline) : limits_(limits), deadline_(deadline) {}

  const VerifyLimits& limits() const { return limits_; }

  // Counts one unit of work; every 64 units reads the clock. "deadline: ..." (DEADLINE_EXCEEDED)
  // once the deadline has passed.
  absl::Status Tick() {
    if ((++ticks_ & 63) != 0) return absl::OkStatus();
    return CheckDeadline();
  }
  // Reads the clock now.
  absl::Status CheckDeadline() const;

 private:
  const VerifyLimits& limits_;
  absl::Time deadline_;
  uint64_t ticks_ = 0;
};

// RESOURCE_EXHAUSTED "label: detail". Labels are short snake_case words used as metric labels.
absl::Status BoundExceeded(absl::string_view label, absl::string_view detail);

// The label of a bound/deadline status ("deadline", "number_too_large", ...); "internal" for
// other non-OK statuses.
std::string ErrorLabel(const absl::Status& status);

// True for statuses that mean a bound, the deadline or an invalid input, i.e. Verdict kError,
// as opposed to INVALID_ARGUMENT parse failures (kUnparseable).
inline bool IsBoundError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool IsValidUtf8(absl::string_view text);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_LIMITS_H_
