#include "services/reward/extract.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "re2/re2.h"

namespace sfpo {
namespace {

bool IsSpaceChar(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Content of the brace group that starts at text[open] == '{'. Handles \{ and \}.
absl::StatusOr<absl::string_view> BraceGroup(absl::string_view text, size_t open, Budget* budget) {
  int depth = 0;
  const int max_depth = budget->limits().max_depth;
  for (size_t i = open; i < text.size(); ++i) {
    if ((i & 1023) == 0) SFPO_RETURN_IF_ERROR(budget->Tick());
    char c = text[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (c == '{') {
      if (++depth > max_depth) {
        return BoundExceeded("too_deep", "braces in \\boxed{} nest deeper than the limit");
      }
    } else if (c == '}') {
      if (--depth == 0) return text.substr(open + 1, i - open - 1);
    }
  }
  return absl::InvalidArgumentError("unbalanced braces in \\boxed{");
}

struct Boxed {
  size_t start;
  absl::StatusOr<absl::string_view> content;
};

// Every \boxed / \fbox in order of appearance.
absl::StatusOr<std::vector<Boxed>> FindBoxed(absl::string_view text, Budget* budget) {
  std::vector<Boxed> found;
  size_t pos = 0;
  // Next occurrence of each name at or after `pos`; each is searched again only once passed,
  // so the scan stays linear.
  size_t b = text.find("\\boxed");
  size_t f = text.find("\\fbox");
  while (pos < text.size()) {
    if (b != absl::string_view::npos && b < pos) b = text.find("\\boxed", pos);
    if (f != absl::string_view::npos && f < pos) f = text.find("\\fbox", pos);
    size_t at = std::min(b, f);
    if (at == absl::string_view::npos) break;
    size_t name_len = at == b ? 6 : 5;
    size_t i = at + name_len;
    pos = i;
    if (i < text.size() && absl::ascii_isalpha(static_cast<unsigned char>(text[i]))) continue;
    while (i < text.size() && text[i] == ' ') ++i;
    if (i < text.size() && text[i] == '{') {
      absl::StatusOr<absl::string_view> group = BraceGroup(text, i, budget);
      if (!group.ok() && IsBoundError(group.status())) return group.status();
      found.push_back({at, group});
    } else {
      // "\boxed 5": up to the next space or '$'.
      size_t end = i;
      while (end < text.size() && !IsSpaceChar(text[end]) && text[end] != '$') ++end;
      if (end > i) found.push_back({at, text.substr(i, end - i)});
    }
    SFPO_RETURN_IF_ERROR(budget->Tick());
  }
  return found;
}

// The math span or sentence right after an answer phrase.
absl::string_view PhraseAnswer(absl::string_view rest) {
  size_t i = 0;
  while (i < rest.size() && (IsSpaceChar(rest[i]) || rest[i] == '*' || rest[i] == ':')) ++i;
  rest.remove_prefix(i);
  auto span = [&](absl::string_view open, absl::string_view close) -> absl::string_view {
    if (rest.substr(0, open.size()) != open) return {};
    size_t end = rest.find(close, open.size());
    if (end == absl::string_view::npos) return {};
    return rest.substr(open.size(), end - open.size());
  };
  for (auto [open, close] : {std::pair<absl::string_view, absl::string_view>{"$$", "$$"},
                             {"$", "$"},
                             {"\\(", "\\)"},
                             {"\\[", "\\]"}}) {
    absl::string_view s = span(open, close);
    if (!s.empty()) return s;
  }
  size_t end = rest.find('\n');
  if (end != absl::string_view::npos) rest = rest.substr(0, end);
  // The sentence ends at ". " (a '.' before a digit is a decimal point).
  for (size_t k = 0; k + 1 < rest.size(); ++k) {
    if (rest[k] == '.' && IsSpaceChar(rest[k + 1])) {
      rest = rest.substr(0, k);
      break;
    }
  }
  return rest;
}

// A short completion reads like a bare answer ("42", "x = 3", "\frac{1}{2}", "5 cm",
// "Monday"), not like prose ("no idea", "I think so"): at most one word of three or more
// letters (LaTeX commands aside), and when there is one, no other multi-letter run.
bool LooksBare(absl::string_view text, int max_bytes) {
  if (text.empty() || static_cast<int>(text.size()) > max_bytes) return false;
  int words = 0;
  int short_runs = 0;
  for (size_t i = 0; i < text.size();) {
    if (absl::ascii_isalpha(static_cast<unsigned char>(text[i]))) {
      size_t j = i;
      while (j < text.size() && absl::ascii_isalpha(static_cast<unsigned char>(text[j]))) ++j;
      bool command = i > 0 && text[i - 1] == '\\';
      if (!command && j - i >= 3) ++words;
      if (!command && j - i == 2) ++short_runs;
      i = j;
    } else {
      ++i;
    }
  }
  return words == 0 || (words == 1 && short_runs == 0);
}

// The first capture group of the last match of `re` in `text`, scanning left to right.
std::optional<absl::string_view> LastCapture(absl::string_view text, const RE2& re) {
  re2::StringPiece input(text.data(), text.size());
  re2::StringPiece match;
  std::optional<absl::string_view> last;
  while (RE2::FindAndConsume(&input, re, &match)) {
    last = absl::string_view(match.data(), match.size());
    if (input.empty()) break;
  }
  return last;
}

}  // namespace

absl::string_view TrimAnswer(absl::string_view text) {
  for (int round = 0; round < 4; ++round) {
    size_t before = text.size();
    text = absl::StripAsciiWhitespace(text);
    while (!text.empty() && text.back() == '.') {
      text.remove_suffix(1);
      text = absl::StripAsciiWhitespace(text);
    }
    if (text.size() >= 2 && text.front() == '$' && text.back() == '$') {
      text = text.substr(1, text.size() - 2);
    } else if (text.size() >= 4 &&
               ((text.substr(0, 2) == "\\(" && text.substr(text.size() - 2) == "\\)") ||
                (text.substr(0, 2) == "\\[" && text.substr(text.size() - 2) == "\\]"))) {
      text = text.substr(2, text.size() - 4);
    }
    if (text.size() == before) break;
  }
  return text;
}

absl::StatusOr<Extraction> ExtractAnswer(absl::string_view completion,
                                         const ExtractOptions& options, Budget* budget) {
  const VerifyLimits& limits = budget->limits();
  if (static_cast<int64_t>(completion.size()) > limits.max_completion_bytes) {
    return BoundExceeded("input_too_long", absl::StrCat("the completion is longer than ",
                                                        limits.max_completion_bytes, " bytes"));
  }
  absl::string_view text = completion;
  if (options.after_think) {
    size_t close = text.rfind("</think>");
    if (close != absl::string_view::npos) {
      text = text.substr(close + 8);
    } else if (text.find("<think>") != absl::string_view::npos) {
      return absl::NotFoundError("the <think> block never ends");
    }
  }
  auto done = [&](absl::string_view answer, std::string rule) -> absl::StatusOr<Extraction> {
    answer = TrimAnswer(answer);
    if (static_cast<int64_t>(answer.size()) > limits.max_answer_bytes) {
      return BoundExceeded("answer_too_long", absl::StrCat("the extracted answer is longer than ",
                                                           limits.max_answer_bytes, " bytes"));
    }
    if (answer.empty()) return absl::NotFoundError(absl::StrCat("the ", rule, " answer is empty"));
    return Extraction{std::string(answer), std::move(rule)};
  };

  if (options.boxed) {
    SFPO_ASSIGN_OR_RETURN(std::vector<Boxed> boxed, FindBoxed(text, budget));
    if (!boxed.empty()) {
      switch (options.multiple_boxed) {
        case MultipleBoxed::kLast:
          if (!boxed.back().content.ok()) return boxed.back().content.status();
          return done(*boxed.back().content, "boxed");
        case MultipleBoxed::kFirst:
          if (!boxed.front().content.ok()) return boxed.front().content.status();
          return done(*boxed.front().content, "boxed");
        case MultipleBoxed::kAll: {
          std::vector<absl::string_view> parts;
          for (const Boxed& b : boxed) {
            if (!b.content.ok()) return b.content.status();
            parts.push_back(TrimAnswer(*b.content));
          }
          std::string joined = absl::StrJoin(parts, ", ");
          if (static_cast<int64_t>(joined.size()) > limits.max_answer_bytes) {
            return BoundExceeded("answer_too_long", "the boxed answers are too long together");
          }
          return done(joined, "boxed");
        }
      }
    }
  }
  SFPO_RETURN_IF_ERROR(budget->CheckDeadline());
  if (options.gsm8k_hashes) {
    static const RE2* re = new RE2(R"re(####[ \t]*([^\n]*))re");
    if (std::optional<absl::string_view> last = LastCapture(text, *re)) {
      return done(*last, "gsm8k");
    }
  }
  if (options.answer_phrases) {
    static const RE2* re = new RE2(
        R"re((?i)(?:final\s+answer(?:\s+is)?|the\s+answer\s+is|\banswer\s*[:=]|\banswer\s+is))re");
    re2::StringPiece input(text.data(), text.size());
    size_t last_end = absl::string_view::npos;
    while (RE2::FindAndConsume(&input, *re)) {
      last_end = static_cast<size_t>(input.data() - text.data());
      if (input.empty()) break;
    }
    if (last_end != absl::string_view::npos) {
      absl::string_view answer = TrimAnswer(PhraseAnswer(text.substr(last_end)));
      if (!answer.empty()) return done(answer, "phrase");
    }
  }
  absl::string_view trimmed = TrimAnswer(text);
  if (options.bare_answer && LooksBare(trimmed, options.bare_answer_max_bytes)) {
    return done(trimmed, "bare");
  }
  if (options.last_number) {
    static const RE2* re = new RE2(R"re((-?\d[\d,]*(?:\.\d+)?))re");
    if (std::optional<absl::string_view> found = LastCapture(text, *re)) {
      absl::string_view last = *found;
      while (!last.empty() && last.back() == ',') last.remove_suffix(1);
      return done(last, "last_number");
    }
  }
  if (trimmed.empty()) return absl::NotFoundError("the completion is empty");
  return absl::NotFoundError("no final answer found (no \\boxed{}, ####, or answer phrase)");
}

}  // namespace sfpo
