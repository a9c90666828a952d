// Finds the final answer in a completion. Rules, tried in this order (each can be switched off
// per dataset):
//   1. only the text after the last "</think>" counts; an unclosed "<think>" has no answer;
//   2. the last \boxed{...} or \fbox{...} (nested braces handled; or the first / all of them);
//   3. GSM8K's "#### N" (the last one);
//   4. the last "final answer is ...", "the answer is ...", "Answer: ..." phrase: a $...$
//      span right after it, else the rest of the sentence;
//   5. the whole completion when it is short and reads like a bare answer ("42", "\frac12");
//   6. the last number in the text (off by default; on for the gsm8k profile).
#ifndef SFPO_SERVICES_REWARD_EXTRACT_H_
#define SFPO_SERVICES_REWARD_EXTRACT_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "services/reward/limits.h"

namespace sfpo {

// What to do when a completion holds several \boxed{} answers. Graders disagree: most take the
// last one; some require all of them to match a list.
enum class MultipleBoxed { kLast, kFirst, kAll };

struct ExtractOptions {
  bool after_think = true;
  bool boxed = true;
  MultipleBoxed multiple_boxed = MultipleBoxed::kLast;
  bool gsm8k_hashes = true;
  bool answer_phrases = true;
  bool bare_answer = true;
  bool last_number = false;
  // Longest completion treated as a bare answer, in bytes.
  int bare_answer_max_bytes = 80;
};

struct Extraction {
  std::string answer;  // trimmed, surrounding $ removed
  std::string rule;    // "boxed", "think", "gsm8k", "phrase", "bare", "last_number"
};

// NOT_FOUND (unparseable) when no rule finds an answer; INVALID_ARGUMENT (unparseable) for an
// unbalanced \boxed{; bound errors: too_deep (braces nest deeper than limits.max_depth),
// answer_too_long, deadline.
absl::StatusOr<Extraction> ExtractAnswer(absl::string_view completion,
                                         const ExtractOptions& options, Budget* budget);

// Trims whitespace, surrounding $...$ / \(...\) / \[...\], and trailing full stops.
absl::string_view TrimAnswer(absl::string_view text);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_EXTRACT_H_
