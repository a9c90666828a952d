#include "services/reward/math_verifier.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/reward/math_parser.h"

namespace sfpo {
namespace {

VerifyResult Make(Verdict verdict, std::string extracted, std::string reason) {
  VerifyResult r;
  r.verdict = verdict;
  r.extracted = std::move(extracted);
  r.reason = std::move(reason);
  return r;
}

VerifyResult ErrorResult(const absl::Status& status, std::string extracted,
                         absl::string_view context) {
  VerifyResult r = Make(Verdict::kError, std::move(extracted),
                        absl::StrCat(context, status.message()));
  r.error_label = ErrorLabel(status);
  return r;
}

// A loose textual key for answers that are not math: case, $, braces, \text-like wrappers and
// the amount of whitespace do not matter (whether there is any does).
std::string TextKey(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {
      size_t j = i + 1;
      while (j < s.size() && absl::ascii_isalpha(static_cast<unsigned char>(s[j]))) ++j;
      absl::string_view cmd = s.substr(i + 1, j - i - 1);
      if (cmd == "text" || cmd == "textbf" || cmd == "mathrm" || cmd == "mbox" ||
          cmd == "textit" || cmd == "left" || cmd == "right" || cmd == "displaystyle") {
        i = j - 1;
        continue;
      }
      out.push_back(c);
      continue;
    }
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      // Runs of space count as one, so "1 2" stays apart from "12".
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
      continue;
    }
    if (c == '$' || c == '{' || c == '}') continue;
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  while (!out.empty() && (out.back() == '.' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

absl::StatusOr<MathOptions> MathProfile(absl::string_view name) {
  MathOptions options;
  if (name.empty() || name == "math") return options;
  if (name == "gsm8k") {
    options.extract.last_number = true;
    return options;
  }
  if (name == "boxed") {
    options.extract.gsm8k_hashes = false;
    options.extract.answer_phrases = false;
    options.extract.bare_answer = false;
    return options;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown math profile '", name, "' (known: math, gsm8k, boxed)"));
}

VerifyResult VerifyMath(absl::string_view completion, absl::string_view gold,
                        const MathOptions& options, Budget* budget) {
  const VerifyLimits& limits = budget->limits();
  if (static_cast<int64_t>(completion.size()) > limits.max_completion_bytes) {
    return ErrorResult(BoundExceeded("input_too_long",
                                     absl::StrCat("the completion is longer than ",
                                                  limits.max_completion_bytes, " bytes")),
                       "", "");
  }
  if (static_cast<int64_t>(gold.size()) > limits.max_completion_bytes) {
    return ErrorResult(BoundExceeded("input_too_long", "the gold answer is too long"), "", "");
  }
  if (!IsValidUtf8(completion)) {
    VerifyResult r = Make(Verdict::kError, "", "the completion is not valid UTF-8");
    r.error_label = "invalid_utf8";
    return r;
  }
  if (!IsValidUtf8(gold)) {
    VerifyResult r = Make(Verdict::kError, "", "the gold answer is not valid UTF-8");
    r.error_label = "invalid_utf8";
    return r;
  }

  // The gold answer: as written, or the final answer of a gold solution.
  std::string gold_answer;
  {
    absl::string_view trimmed = TrimAnswer(gold);
    if (trimmed.find("\\boxed") != absl::string_view::npos ||
        trimmed.find("\\fbox") != absl::string_view::npos ||
        trimmed.find("####") != absl::string_view::npos) {
      ExtractOptions gold_extract;
      gold_extract.bare_answer = false;
      absl::StatusOr<Extraction> e = ExtractAnswer(trimmed, gold_extract, budget);
      if (!e.ok()) return ErrorResult(e.status(), "", "gold answer: ");
      gold_answer = std::move(e->answer);
    } else {
      gold_answer = std::string(trimmed);
    }
  }
  if (gold_answer.empty()) {
    VerifyResult r = Make(Verdict::kError, "", "the gold answer is empty");
    r.error_label = "bad_gold";
    return r;
  }
  if (static_cast<int64_t>(gold_answer.size()) > limits.max_answer_bytes) {
    return ErrorResult(BoundExceeded("answer_too_long", "the gold answer is too long"), "",
                       "gold answer: ");
  }

  absl::StatusOr<Extraction> extraction = ExtractAnswer(completion, options.extract, budget);
  if (!extraction.ok()) {
    if (IsBoundError(extraction.status())) return ErrorResult(extraction.status(), "", "");
    return Make(Verdict::kUnparseable, "", std::string(extraction.status().message()));
  }
  std::string& answer = extraction->answer;
  if (answer == gold_answer) {
    return Make(Verdict::kCorrect, std::move(answer), "identical to the gold answer");
  }

  absl::StatusOr<Ast> gold_ast = ParseAnswer(gold_answer, budget);
  if (!gold_ast.ok() && IsBoundError(gold_ast.status())) {
    return ErrorResult(gold_ast.status(), std::move(answer), "gold answer: ");
  }
  absl::StatusOr<Ast> pred_ast = ParseAnswer(answer, budget);
  if (!pred_ast.ok() && IsBoundError(pred_ast.status())) {
    return ErrorResult(pred_ast.status(), std::move(answer), "");
  }
  bool same_text = TextKey(answer) == TextKey(gold_answer);
  if (!gold_ast.ok()) {
    // A gold answer that is not math (a word, a sentence) compares as text.
    if (same_text) return Make(Verdict::kCorrect, std::move(answer), "same text as the gold answer");
    return Make(Verdict::kIncorrect, std::move(answer),
                "differs from the gold answer (compared as text)");
  }
  if (!pred_ast.ok()) {
    if (same_text) return Make(Verdict::kCorrect, std::move(answer), "same text as the gold answer");
    return Make(Verdict::kUnparseable, std::move(answer),
                absl::StrCat("cannot read the answer: ", pred_ast.status().message()));
  }
  absl::StatusOr<bool> equal = Equivalent(*gold_ast, *pred_ast, options.equivalence, budget);
  if (!equal.ok()) return ErrorResult(equal.status(), std::move(answer), "");
  if (*equal) return Make(Verdict::kCorrect, std::move(answer), "equivalent to the gold answer");
  return Make(Verdict::kIncorrect, std::move(answer), "not equivalent to the gold answer");
}

}  // namespace sfpo
