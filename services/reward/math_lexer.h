// Tokenizer for answers written in plain text, LaTeX or a mix: "\dfrac{1}{2}", "1/2", "½" is
// not supported, "2\sqrt{3}", "x \in [1, 2)", "\text{5 cm}". Presentation-only LaTeX
// (\left, \right, spacing, \displaystyle, $) is dropped here; \text{}-like wrappers are
// unwrapped and their tokens marked `from_text`. Nothing is ever evaluated here.
#ifndef SFPO_SERVICES_REWARD_MATH_LEXER_H_
#define SFPO_SERVICES_REWARD_MATH_LEXER_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "services/reward/limits.h"

namespace sfpo {

enum class Tok {
  kEnd,
  kNumber,  // text: digits with at most one '.', exponent: scientific-notation power of ten
  kIdent,   // text: a variable or word ("x", "x_1", "alpha", "monday")
  kPlus,
  kMinus,
  kStar,  // *, \cdot, \times
  kSlash,  // /, \div
  kCaret,
  kBang,
  kPercent,
  kEq,
  kLt,
  kGt,
  kLe,
  kGe,
  kNe,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kSetOpen,   // \{
  kSetClose,  // \}
  kComma,     // also "and", "or", ";"
  kBar,       // |, \vert, \lvert, \rvert
  kUnderscore,
  kFrac,  // \frac \dfrac \tfrac \cfrac
  kSqrt,  // \sqrt, sqrt, √
  kBinom,
  kFunc,  // text: sin cos tan sec csc cot ln log exp arcsin arccos arctan sinh cosh tanh
  kPi,
  kInfty,
  kCup,
  kCap,
  kPm,
  kMp,
  kIn,
  kEmptyset,
  kColon,
  kMatOpen,   // \begin{pmatrix} (also bmatrix, matrix, Bmatrix, vmatrix, smallmatrix)
  kMatClose,  // \end{pmatrix}
  kRowSep,    // \\ inside a matrix ('&' there is kComma)
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;
  int64_t exponent = 0;       // kNumber only
  std::string repeating;      // kNumber only: digits under \overline ("0.1\overline{6}")
  bool space_before = false;  // whitespace separated it from the previous token
  bool from_text = false;     // came from inside \text{}, \mbox{}, \mathrm{} ...
};

struct LexOptions {
  // Treat ",ddd" inside a number as a thousands separator ("1,234,567"). The caller decides,
  // from the whole answer, whether commas are separators or list delimiters. "{,}" and ",\!"
  // followed by three digits are always separators.
  bool thousands_commas = false;
  // Likewise for single spaces ("1 000 000").
  bool thousands_spaces = false;
};

// Tokenizes `input`. INVALID_ARGUMENT (unparseable) for characters that have no meaning in an
// answer or unbalanced braces; bound errors (number_too_large, exponent_too_large, too_deep,
// deadline) as documented in limits.h.
absl::StatusOr<std::vector<Token>> Lex(absl::string_view input, const LexOptions& options,
                                       Budget* budget);

// True when the whole answer is one number written with comma thousands separators
// ("1,234", "$12,500.50", "-3,000 dollars"), so that Lex should use thousands_commas.
bool LooksLikeThousandsNumber(absl::string_view answer);
// The same for space separators ("1 000", "12 500.5").
bool LooksLikeSpacedThousandsNumber(absl::string_view answer);

// Short name of a token kind, for error messages.
absl::string_view TokName(Tok kind);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_MATH_LEXER_H_
