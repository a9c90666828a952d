#include "services/reward/verifier.h"

#include "absl/strings/str_cat.h"
#include "services/reward/task_checkers.h"

namespace sfpo {
namespace {

VerifyResult Dispatch(const ScoreInput& input, const VerifierOptions& options, Budget* budget) {
  const VerifyLimits& limits = options.limits;
  if (static_cast<int64_t>(input.completion.size()) > limits.max_completion_bytes) {
    VerifyResult r;
    r.verdict = Verdict::kError;
    r.reason = absl::StrCat("the completion is longer than ", limits.max_completion_bytes,
                            " bytes");
    r.error_label = "input_too_long";
    return r;
  }
  if (!IsValidUtf8(input.completion) || !IsValidUtf8(input.gold) || !IsValidUtf8(input.prompt)) {
    VerifyResult r;
    r.verdict = Verdict::kError;
    r.reason = "the input is not valid UTF-8";
    r.error_label = "invalid_utf8";
    return r;
  }
  absl::string_view task = input.task;
  if (task.empty() || task == "math") {
    return VerifyMath(input.completion, input.gold, options.math, budget);
  }
  if (task == "countdown3") {
    return CheckCountdown3(input.completion, input.gold, input.prompt, budget);
  }
  if (task == "addition") return CheckAddition(input.completion, input.gold, budget);
  absl::StatusOr<MathOptions> profile = MathProfile(task);
  if (profile.ok()) {
    profile->equivalence = options.math.equivalence;
    return VerifyMath(input.completion, input.gold, *profile, budget);
  }
  VerifyResult r;
  r.verdict = Verdict::kError;
  r.reason = absl::StrCat("unknown task '", task.substr(0, 64),
                          "' (known: math, gsm8k, boxed, countdown3, addition)");
  r.error_label = "unknown_task";
  return r;
}

}  // namespace

absl::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kCorrect: return "correct";
    case Verdict::kIncorrect: return "incorrect";
    case Verdict::kUnparseable: return "unparseable";
    case Verdict::kError: return "error";
  }
  return "error";
}

bool IsKnownTask(absl::string_view task) {
  return task.empty() || task == "math" || task == "gsm8k" || task == "boxed" ||
         task == "countdown3" || task == "addition";
}

VerifyResult Score(const ScoreInput& input, const VerifierOptions& options, absl::Time deadline) {
  Budget budget(options.limits, deadline);
  VerifyResult r;
  if (absl::Status s = budget.CheckDeadline(); !s.ok()) {
    r.verdict = Verdict::kError;
    r.reason = std::string(s.message());
    r.error_label = "deadline";
  } else {
    r = Dispatch(input, options, &budget);
  }
  if (r.verdict == Verdict::kError && r.error_label.empty()) r.error_label = "internal";
  if (r.verdict != Verdict::kError) r.error_label.clear();
  r.verifier_version = std::string(kVerifierVersion);
  r.reward = r.verdict == Verdict::kCorrect     ? 1.0
             : r.verdict == Verdict::kIncorrect ? options.format_reward
                                                : 0.0;
  return r;
}

absl::Status ValidateVerifierOptions(const VerifierOptions& options) {
  if (!(options.format_reward >= 0.0 && options.format_reward <= 1.0)) {
    return absl::InvalidArgumentError("format_reward must be in [0, 1]");
  }
  if (!(options.math.equivalence.rel_tol >= 0.0 && options.math.equivalence.rel_tol < 1.0)) {
    return absl::InvalidArgumentError("rel_tol must be in [0, 1)");
  }
  const VerifyLimits& l = options.limits;
  if (l.max_completion_bytes <= 0 || l.max_answer_bytes <= 0 || l.max_depth <= 0 ||
      l.max_number_digits <= 0 || l.max_exponent <= 0 || l.max_value_bits <= 0 ||
      l.max_elements <= 0 || l.max_factorial < 0) {
    return absl::InvalidArgumentError("every verifier limit must be positive");
  }
  return absl::OkStatus();
}

}  // namespace sfpo
