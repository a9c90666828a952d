#include "services/reward/task_checkers.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sfpo {
namespace {

VerifyResult Make(Verdict verdict, absl::string_view extracted, std::string reason,
                  std::string label = {}) {
  VerifyResult r;
  r.verdict = verdict;
  r.extracted = std::string(extracted);
  r.reason = std::move(reason);
  r.error_label = std::move(label);
  return r;
}

// Recursive-descent parser for countdown expressions: expr := term (('+'|'-') term)*,
// term := atom ('*' atom)*, atom := number | '(' expr ')'. Values are exact int64; operands
// are single digits after the digit check, so nothing overflows.
class CountdownParser {
 public:
  CountdownParser(absl::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  // Parses the whole text into `numbers` (the literals in order). Error text on failure.
  bool Parse(std::string* error) {
    if (!Expr(0, error)) return false;
    if (pos_ != text_.size()) {
      *error = absl::StrCat("unexpected '", std::string(1, text_[pos_]), "' at offset ", pos_);
      return false;
    }
    return true;
  }

  const std::vector<std::string>& numbers() const { return numbers_; }
  // The value; call after Parse succeeded and every number is one digit.
  int64_t Value() {
    pos_ = 0;
    return EvalExpr();
  }

 private:
  bool Expr(int depth, std::string* error) {
    if (depth > max_depth_) {
      *error = "parentheses nest too deep";
      return false;
    }
    if (!Term(depth, error)) return false;
    while (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
      ++pos_;
      if (!Term(depth, error)) return false;
    }
    return true;
  }
  bool Term(int depth, std::string* error) {
    if (!Atom(depth, error)) return false;
    while (pos_ < text_.size() && text_[pos_] == '*') {
      ++pos_;
      if (!Atom(depth, error)) return false;
    }
    return true;
  }
  bool Atom(int depth, std::string* error) {
    if (pos_ >= text_.size()) {
      *error = "the expression ends early";
      return false;
    }
    char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      if (!Expr(depth + 1, error)) return false;
      if (pos_ >= text_.size() || text_[pos_] != ')') {
        *error = "unbalanced parentheses";
        return false;
      }
      ++pos_;
      return true;
    }
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      size_t start = pos_;
      while (pos_ < text_.size() && absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) {
        ++pos_;
      }
      numbers_.emplace_back(text_.substr(start, pos_ - start));
      return true;
    }
    if (c == '-' || c == '+') {
      *error = "unary signs are not allowed";
    } else {
      *error = absl::StrCat("unexpected '", std::string(1, c), "' at offset ", pos_);
    }
    return false;
  }

  int64_t EvalExpr() {
    int64_t v = EvalTerm();
    while (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
      char op = text_[pos_++];
      int64_t r = EvalTerm();
      v = op == '+' ? v + r : v - r;
    }
    return v;
  }
  int64_t EvalTerm() {
    int64_t v = EvalAtom();
    while (pos_ < text_.size() && text_[pos_] == '*') {
      ++pos_;
      v *= EvalAtom();
    }
    return v;
  }
  int64_t EvalAtom() {
    if (text_[pos_] == '(') {
      ++pos_;
      int64_t v = EvalExpr();
      ++pos_;  // ')'
      return v;
    }
    return text_[pos_++] - '0';
  }

  absl::string_view text_;
  int max_depth_;
  size_t pos_ = 0;
  std::vector<std::string> numbers_;
};

}  // namespace

VerifyResult CheckCountdown3(absl::string_view completion, absl::string_view gold,
                             absl::string_view prompt, Budget* budget) {
  absl::string_view spec = absl::StripAsciiWhitespace(gold.empty() ? prompt : gold);
  if (!spec.empty() && spec.back() == ':') spec.remove_suffix(1);
  size_t eq = spec.find('=');
  std::vector<char> digits;
  int target = 0;
  bool gold_ok = eq != absl::string_view::npos && eq > 0 &&
                 absl::SimpleAtoi(spec.substr(eq + 1), &target);
  if (gold_ok) {
    for (char c : spec.substr(0, eq)) {
      if (c == ' ') continue;
      if (c < '1' || c > '9') {
        gold_ok = false;
        break;
      }
      digits.push_back(c);
    }
    gold_ok = gold_ok && digits.size() == 3;
  }
  if (!gold_ok) {
    return Make(Verdict::kError, "",
                absl::StrCat("malformed countdown3 gold '", spec.substr(0, 64),
                             "' (want like \"3 5 7=22\")"),
                "bad_gold");
  }
  if (static_cast<int64_t>(completion.size()) > budget->limits().max_answer_bytes) {
    return Make(Verdict::kError, "", "the completion is longer than the limit", "input_too_long");
  }
  // Spaces are allowed anywhere; strip them once.
  std::string expr;
  for (char c : completion) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) expr.push_back(c);
  }
  if (expr.empty()) return Make(Verdict::kUnparseable, "", "the completion is empty");
  for (char c : expr) {
    bool allowed = absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' ||
                   c == '*' || c == '(' || c == ')';
    if (!allowed) {
      std::string shown = static_cast<unsigned char>(c) < 0x80 && absl::ascii_isprint(c)
                              ? std::string(1, c)
                              : absl::StrCat("\\x", absl::Hex(static_cast<unsigned char>(c)));
      return Make(Verdict::kUnparseable, expr,
                  absl::StrCat("character '", shown, "' is not allowed (only digits + - * ( ))"));
    }
  }
  CountdownParser parser(expr, budget->limits().max_depth);
  std::string error;
  if (!parser.Parse(&error)) {
    return Make(Verdict::kUnparseable, expr, absl::StrCat("cannot read the expression: ", error));
  }
  std::vector<char> used;
  for (const std::string& n : parser.numbers()) {
    if (n.size() != 1) {
      return Make(Verdict::kIncorrect, expr,
                  absl::StrCat("'", n, "' is not a single digit (no concatenation)"));
    }
    used.push_back(n[0]);
  }
  std::vector<char> want = digits;
  std::sort(want.begin(), want.end());
  std::sort(used.begin(), used.end());
  if (used != want) {
    return Make(Verdict::kIncorrect, expr,
                absl::StrCat("uses digits ", absl::StrJoin(used, " ", [](std::string* out, char c) {
                               out->push_back(c);
                             }), ", needs each of ", absl::StrJoin(want, " ", [](std::string* out, char c) {
                               out->push_back(c);
                             }), " once"));
  }
  int64_t value = parser.Value();
  if (value != target) {
    return Make(Verdict::kIncorrect, expr, absl::StrCat("evaluates to ", value, ", not ", target));
  }
  return Make(Verdict::kCorrect, expr, absl::StrCat("evaluates to ", target));
}

VerifyResult CheckAddition(absl::string_view completion, absl::string_view gold, Budget* budget) {
  auto digits_only = [](absl::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return absl::ascii_isdigit(static_cast<unsigned char>(c));
    });
  };
  auto strip_zeros = [](absl::string_view s) {
    while (s.size() > 1 && s.front() == '0') s.remove_prefix(1);
    return s;
  };
  absl::string_view want = absl::StripAsciiWhitespace(gold);
  if (!digits_only(want)) {
    return Make(Verdict::kError, "",
                absl::StrCat("malformed addition gold '", want.substr(0, 64), "'"), "bad_gold");
  }
  const int max_digits = budget->limits().max_number_digits;
  absl::string_view got = absl::StripAsciiWhitespace(completion);
  if (static_cast<int>(got.size()) > max_digits) {
    return Make(Verdict::kError, "",
                absl::StrCat("the answer has more than ", max_digits, " characters"),
                "number_too_large");
  }
  if (got.empty()) return Make(Verdict::kUnparseable, "", "the completion is empty");
  if (!digits_only(got)) {
    return Make(Verdict::kUnparseable, got, "the answer must be digits only");
  }
  if (strip_zeros(got) == strip_zeros(want)) {
    return Make(Verdict::kCorrect, got, "equals the sum");
  }
  return Make(Verdict::kIncorrect, got, absl::StrCat("the sum is ", strip_zeros(want)));
}

}  // namespace sfpo
