#include "services/reward/math_lexer.h"

#include <cctype>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "re2/re2.h"

namespace sfpo {
namespace {

// What a LaTeX command does in an answer.
enum class Cmd {
  kToken,     // emits `tok` (and `text` for kFunc / kIdent)
  kSkip,      // presentation only: \left \right \quad \displaystyle ...
  kWrap,      // \text{..} \mathrm{..} \boxed{..}: braces dropped, content kept
  kTextWrap,  // like kWrap, content tokens marked from_text
  kDropArg,   // \hspace{..} \phantom{..}: the whole argument dropped
};

struct CmdInfo {
  Cmd cmd;
  Tok tok = Tok::kEnd;
  absl::string_view text;
};

const absl::flat_hash_map<absl::string_view, CmdInfo>& Commands() {
  static const auto* table = new absl::flat_hash_map<absl::string_view, CmdInfo>{
      {"frac", {Cmd::kToken, Tok::kFrac}},
      {"dfrac", {Cmd::kToken, Tok::kFrac}},
      {"tfrac", {Cmd::kToken, Tok::kFrac}},
      {"cfrac", {Cmd::kToken, Tok::kFrac}},
      {"sqrt", {Cmd::kToken, Tok::kSqrt}},
      {"binom", {Cmd::kToken, Tok::kBinom}},
      {"dbinom", {Cmd::kToken, Tok::kBinom}},
      {"tbinom", {Cmd::kToken, Tok::kBinom}},
      {"pi", {Cmd::kToken, Tok::kPi}},
      {"infty", {Cmd::kToken, Tok::kInfty}},
      {"infin", {Cmd::kToken, Tok::kInfty}},
      {"cdot", {Cmd::kToken, Tok::kStar}},
      {"times", {Cmd::kToken, Tok::kStar}},
      {"ast", {Cmd::kToken, Tok::kStar}},
      {"div", {Cmd::kToken, Tok::kSlash}},
      {"le", {Cmd::kToken, Tok::kLe}},
      {"leq", {Cmd::kToken, Tok::kLe}},
      {"leqslant", {Cmd::kToken, Tok::kLe}},
      {"ge", {Cmd::kToken, Tok::kGe}},
      {"geq", {Cmd::kToken, Tok::kGe}},
      {"geqslant", {Cmd::kToken, Tok::kGe}},
      {"lt", {Cmd::kToken, Tok::kLt}},
      {"gt", {Cmd::kToken, Tok::kGt}},
      {"ne", {Cmd::kToken, Tok::kNe}},
      {"neq", {Cmd::kToken, Tok::kNe}},
      {"cup", {Cmd::kToken, Tok::kCup}},
      {"cap", {Cmd::kToken, Tok::kCap}},
      {"pm", {Cmd::kToken, Tok::kPm}},
      {"mp", {Cmd::kToken, Tok::kMp}},
      {"in", {Cmd::kToken, Tok::kIn}},
      {"emptyset", {Cmd::kToken, Tok::kEmptyset}},
      {"varnothing", {Cmd::kToken, Tok::kEmptyset}},
      {"vert", {Cmd::kToken, Tok::kBar}},
      {"lvert", {Cmd::kToken, Tok::kBar}},
      {"rvert", {Cmd::kToken, Tok::kBar}},
      {"mid", {Cmd::kToken, Tok::kBar}},
      {"colon", {Cmd::kToken, Tok::kColon}},
      {"langle", {Cmd::kToken, Tok::kLParen}},
      {"rangle", {Cmd::kToken, Tok::kRParen}},
      {"sin", {Cmd::kToken, Tok::kFunc, "sin"}},
      {"cos", {Cmd::kToken, Tok::kFunc, "cos"}},
      {"tan", {Cmd::kToken, Tok::kFunc, "tan"}},
      {"sec", {Cmd::kToken, Tok::kFunc, "sec"}},
      {"csc", {Cmd::kToken, Tok::kFunc, "csc"}},
      {"cot", {Cmd::kToken, Tok::kFunc, "cot"}},
      {"ln", {Cmd::kToken, Tok::kFunc, "ln"}},
      {"log", {Cmd::kToken, Tok::kFunc, "log"}},
      {"exp", {Cmd::kToken, Tok::kFunc, "exp"}},
      {"arcsin", {Cmd::kToken, Tok::kFunc, "arcsin"}},
      {"arccos", {Cmd::kToken, Tok::kFunc, "arccos"}},
      {"arctan", {Cmd::kToken, Tok::kFunc, "arctan"}},
      {"sinh", {Cmd::kToken, Tok::kFunc, "sinh"}},
      {"cosh", {Cmd::kToken, Tok::kFunc, "cosh"}},
      {"tanh", {Cmd::kToken, Tok::kFunc, "tanh"}},
      {"left", {Cmd::kSkip}},
      {"right", {Cmd::kSkip}},
      {"big", {Cmd::kSkip}},
      {"Big", {Cmd::kSkip}},
      {"bigg", {Cmd::kSkip}},
      {"Bigg", {Cmd::kSkip}},
      {"bigl", {Cmd::kSkip}},
      {"bigr", {Cmd::kSkip}},
      {"Bigl", {Cmd::kSkip}},
      {"Bigr", {Cmd::kSkip}},
      {"biggl", {Cmd::kSkip}},
      {"biggr", {Cmd::kSkip}},
      {"displaystyle", {Cmd::kSkip}},
      {"textstyle", {Cmd::kSkip}},
      {"scriptstyle", {Cmd::kSkip}},
      {"quad", {Cmd::kSkip}},
      {"qquad", {Cmd::kSkip}},
      {"limits", {Cmd::kSkip}},
      {"nolimits", {Cmd::kSkip}},
      {"circ", {Cmd::kSkip}},
      {"degree", {Cmd::kSkip}},
      {"dollar", {Cmd::kSkip}},
      {"angle", {Cmd::kSkip}},
      {"measuredangle", {Cmd::kSkip}},
      {"enspace", {Cmd::kSkip}},
      {"thinspace", {Cmd::kSkip}},
      {"negthinspace", {Cmd::kSkip}},
      {"mathstrut", {Cmd::kSkip}},
      {"boxed", {Cmd::kWrap}},
      {"fbox", {Cmd::kWrap}},
      {"mathbf", {Cmd::kWrap}},
      {"mathit", {Cmd::kWrap}},
      {"mathbb", {Cmd::kWrap}},
      {"mathcal", {Cmd::kWrap}},
      {"boldsymbol", {Cmd::kWrap}},
      {"bm", {Cmd::kWrap}},
      {"underline", {Cmd::kWrap}},
      {"emph", {Cmd::kWrap}},
      {"text", {Cmd::kTextWrap}},
      {"textbf", {Cmd::kTextWrap}},
      {"textit", {Cmd::kTextWrap}},
      {"textrm", {Cmd::kTextWrap}},
      {"textsf", {Cmd::kTextWrap}},
      {"texttt", {Cmd::kTextWrap}},
      {"textnormal", {Cmd::kTextWrap}},
      {"textup", {Cmd::kTextWrap}},
      {"mathrm", {Cmd::kTextWrap}},
      {"mathsf", {Cmd::kTextWrap}},
      {"mathtt", {Cmd::kTextWrap}},
      {"mbox", {Cmd::kTextWrap}},
      {"hbox", {Cmd::kTextWrap}},
      {"operatorname", {Cmd::kTextWrap}},
      {"hspace", {Cmd::kDropArg}},
      {"vspace", {Cmd::kDropArg}},
      {"phantom", {Cmd::kDropArg}},
      {"hphantom", {Cmd::kDropArg}},
      {"label", {Cmd::kDropArg}},
      {"tag", {Cmd::kDropArg}},
  };
  return *table;
}

const absl::flat_hash_set<std::string>& GreekLetters() {
  static const auto* set = new absl::flat_hash_set<std::string>{
      "alpha", "beta",  "gamma", "delta", "epsilon", "varepsilon", "zeta",   "eta",
      "theta", "vartheta", "iota", "kappa", "lambda", "mu",       "nu",     "xi",
      "rho",   "varrho", "sigma", "tau",  "upsilon", "phi",       "varphi", "chi",
      "psi",   "omega", "Gamma", "Delta", "Theta",  "Lambda",     "Xi",     "Pi",
      "Sigma", "Phi",   "Psi",   "Omega", "ell",    "hbar"};
  return *set;
}

// Short words kept whole; other runs of up to three letters are products of variables ("xy").
const absl::flat_hash_set<std::string>& ShortWords() {
  static const auto* set = new absl::flat_hash_set<std::string>{
      "no",  "in",  "yes", "odd", "all", "is",  "it",  "the", "of",  "on",  "at",  "to",  "as",
      "an",  "be",  "by",  "if",  "not", "are", "cm",  "mm",  "km",  "ft",  "kg",  "mg",
      "lb",  "lbs", "oz",  "hr",  "hrs", "min", "sec", "day", "yd",  "mi",  "mph", "am",
      "pm",  "dne", "nan", "max", "gcd", "lcm", "mod", "sq",  "yds", "kmh", "cc",  "ml",
      "mol", "deg", "rad", "per", "for", "and", "or",  "neg", "pos", "ii",  "iii", "iv",
      "vi",  "vii", "ix",  "xi",  "xii", "one", "two", "six", "ten", "cup", "red", "tie"};
  return *set;
}

const absl::flat_hash_map<absl::string_view, CmdInfo>& Words() {
  static const auto* table = new absl::flat_hash_map<absl::string_view, CmdInfo>{
      {"sqrt", {Cmd::kToken, Tok::kSqrt}},     {"pi", {Cmd::kToken, Tok::kPi}},
      {"inf", {Cmd::kToken, Tok::kInfty}},     {"infty", {Cmd::kToken, Tok::kInfty}},
      {"infinity", {Cmd::kToken, Tok::kInfty}}, {"oo", {Cmd::kToken, Tok::kInfty}},
      {"and", {Cmd::kToken, Tok::kComma}},     {"or", {Cmd::kToken, Tok::kComma}},
      {"sin", {Cmd::kToken, Tok::kFunc, "sin"}}, {"cos", {Cmd::kToken, Tok::kFunc, "cos"}},
      {"tan", {Cmd::kToken, Tok::kFunc, "tan"}}, {"ln", {Cmd::kToken, Tok::kFunc, "ln"}},
      {"log", {Cmd::kToken, Tok::kFunc, "log"}}, {"exp", {Cmd::kToken, Tok::kFunc, "exp"}},
      {"arcsin", {Cmd::kToken, Tok::kFunc, "arcsin"}},
      {"arccos", {Cmd::kToken, Tok::kFunc, "arccos"}},
      {"arctan", {Cmd::kToken, Tok::kFunc, "arctan"}},
  };
  return *table;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '~'; }

class Lexer {
 public:
  Lexer(absl::string_view in, const LexOptions& options, Budget* budget)
      : in_(in), options_(options), budget_(budget) {}

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < in_.size()) {
      absl::Status s = budget_->Tick();
      if (!s.ok()) return s;
      s = Step();
      if (!s.ok()) return s;
    }
    if (!braces_.empty()) return absl::InvalidArgumentError("unbalanced braces: missing '}'");
    return std::move(out_);
  }

 private:
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < in_.size() ? in_[pos_ + ahead] : '\0';
  }

  void Emit(Tok kind, std::string text = {}) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.space_before = space_;
    t.from_text = text_depth_ > 0;
    space_ = false;
    out_.push_back(std::move(t));
  }

  bool ThreeDigitsAt(size_t at) const {
    return at + 3 <= in_.size() && IsDigit(in_[at]) && IsDigit(in_[at + 1]) &&
           IsDigit(in_[at + 2]) && (at + 3 == in_.size() || !IsDigit(in_[at + 3]));
  }

  absl::Status LexNumber() {
    std::string text;
    int digits = 0;
    bool dot = false;
    const int max_digits = budget_->limits().max_number_digits;
    while (pos_ < in_.size()) {
      char c = in_[pos_];
      if (IsDigit(c)) {
        text.push_back(c);
        if (++digits > max_digits) {
          return BoundExceeded("number_too_large",
                               absl::StrCat("a number has more than ", max_digits, " digits"));
        }
        ++pos_;
      } else if (c == '.' && !dot && IsDigit(Peek(1))) {
        dot = true;
        text.push_back(c);
        ++pos_;
      } else if (!dot && c == ',' && options_.thousands_commas && ThreeDigitsAt(pos_ + 1)) {
        ++pos_;
      } else if (!dot && c == ' ' && options_.thousands_spaces && ThreeDigitsAt(pos_ + 1)) {
        ++pos_;
      } else if (!dot && in_.substr(pos_, 3) == "{,}" && ThreeDigitsAt(pos_ + 3)) {
        pos_ += 3;
      } else if (!dot && (in_.substr(pos_, 3) == ",\\!" || in_.substr(pos_, 2) == "\\," ||
                          in_.substr(pos_, 2) == "\\!") &&
                 ThreeDigitsAt(pos_ + (in_[pos_] == ',' ? 3 : 2))) {
        pos_ += in_[pos_] == ',' ? 3 : 2;  // 1,\!000 and 10\,000
      } else {
        break;
      }
    }
    // A repeating decimal: "0.\overline{3}", "0.41\overline{6}", "1.\overline{142857}".
    std::string repeating;
    {
      size_t k = pos_;
      bool bare_dot = !dot && k < in_.size() && in_[k] == '.';
      if (bare_dot) ++k;
      if ((dot || bare_dot) && in_.substr(k, 10) == "\\overline{") {
        size_t j = k + 10;
        while (j < in_.size() && IsDigit(in_[j])) repeating.push_back(in_[j++]);
        if (!repeating.empty() && j < in_.size() && in_[j] == '}' &&
            static_cast<int>(repeating.size() + digits) <= max_digits) {
          if (bare_dot) {
            text.push_back('.');
            dot = true;
          }
          pos_ = j + 1;
        } else {
          repeating.clear();
        }
      }
    }
    // A trailing "5." is the number 5 followed by a full stop.
    if (Peek() == '.' && !dot && !IsDigit(Peek(1)) && Peek(1) != '.') ++pos_;
    int64_t exponent = 0;
    char e = Peek();
    if (e == 'e' || e == 'E') {
      size_t k = 1;
      bool negative = false;
      if (Peek(k) == '+' || Peek(k) == '-') {
        negative = Peek(k) == '-';
        ++k;
      }
      if (IsDigit(Peek(k))) {
        pos_ += k;
        const int64_t max_exponent = budget_->limits().max_exponent;
        while (IsDigit(Peek())) {
          exponent = exponent * 10 + (Peek() - '0');
          if (exponent > max_exponent) {
            return BoundExceeded("exponent_too_large",
                                 absl::StrCat("a scientific exponent exceeds ", max_exponent));
          }
          ++pos_;
        }
        if (negative) exponent = -exponent;
      }
    }
    Emit(Tok::kNumber, std::move(text));
    out_.back().exponent = exponent;
    out_.back().repeating = std::move(repeating);
    return absl::OkStatus();
  }

  // An identifier may carry a subscript: x_1, a_{n}, x_{12}.
  void MaybeSubscript(std::string* name) {
    if (Peek() != '_') return;
    if (IsDigit(Peek(1)) || IsAlpha(Peek(1))) {
      *name += absl::StrCat("_", std::string(1, Peek(1)));
      pos_ += 2;
      return;
    }
    if (Peek(1) == '{') {
      size_t k = 2;
      std::string sub;
      while (k < 18 && (IsDigit(Peek(k)) || IsAlpha(Peek(k)))) sub.push_back(Peek(k++));
      if (!sub.empty() && Peek(k) == '}') {
        *name += absl::StrCat("_", sub);
        pos_ += k + 1;
      }
    }
  }

  absl::Status LexWord() {
    size_t start = pos_;
    while (pos_ < in_.size() && IsAlpha(in_[pos_])) ++pos_;
    std::string word(in_.substr(start, pos_ - start));
    std::string lower = absl::AsciiStrToLower(word);
    auto it = Words().find(lower);
    if (it != Words().end()) {
      Emit(it->second.tok, std::string(it->second.text));
      return absl::OkStatus();
    }
    if (word.size() == 1) {
      MaybeSubscript(&word);
      Emit(Tok::kIdent, std::move(word));
      return absl::OkStatus();
    }
    if (word.size() <= 3 && !ShortWords().contains(lower)) {
      // "xy" is x*y; the subscript, if any, belongs to the last letter.
      for (size_t i = 0; i < word.size(); ++i) {
        std::string letter(1, word[i]);
        if (i + 1 == word.size()) MaybeSubscript(&letter);
        Emit(Tok::kIdent, std::move(letter));
      }
      return absl::OkStatus();
    }
    // Whole words compare case-insensitively ("Monday" == "monday").
    MaybeSubscript(&lower);
    Emit(Tok::kIdent, std::move(lower));
    return absl::OkStatus();
  }

  // After '^': "^\circ", "^{\circ}" (degrees) are dropped.
  bool SkipDegreeMark() {
    size_t k = 1;
    while (Peek(k) == ' ') ++k;
    bool brace = Peek(k) == '{';
    if (brace) ++k;
    while (Peek(k) == ' ') ++k;
    absl::string_view rest = in_.substr(std::min(in_.size(), pos_ + k));
    size_t len = 0;
    if (rest.substr(0, 5) == "\\circ" && (rest.size() == 5 || !IsAlpha(rest[5]))) {
      len = 5;
    } else if (rest.substr(0, 7) == "\\degree" && (rest.size() == 7 || !IsAlpha(rest[7]))) {
      len = 7;
    } else {
      return false;
    }
    k += len;
    if (brace) {
      while (Peek(k) == ' ') ++k;
      if (Peek(k) != '}') return false;
      ++k;
    }
    pos_ += k;
    return true;
  }

  absl::Status OpenBrace(bool drop, bool text) {
    if (static_cast<int>(braces_.size()) >= budget_->limits().max_depth) {
      return BoundExceeded("too_deep", "braces nest deeper than the limit");
    }
    braces_.push_back({drop, text});
    if (text) ++text_depth_;
    if (!drop) Emit(Tok::kLBrace);
    return absl::OkStatus();
  }

  absl::Status SkipGroup() {
    // pos_ is at '{': drop everything up to the matching '}'.
    int depth = 0;
    while (pos_ < in_.size()) {
      char c = in_[pos_++];
      if (c == '\\') {
        ++pos_;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}') {
        if (--depth == 0) return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError("unbalanced braces: missing '}'");
  }

  absl::Status LexCommand() {
    ++pos_;  // backslash
    if (pos_ >= in_.size()) return absl::InvalidArgumentError("a lone backslash");
    char c = in_[pos_];
    if (!IsAlpha(c)) {
      ++pos_;
      switch (c) {
        case '{':
          Emit(Tok::kSetOpen);
          return absl::OkStatus();
        case '}':
          Emit(Tok::kSetClose);
          return absl::OkStatus();
        case '%':
          Emit(Tok::kPercent);
          return absl::OkStatus();
        case '|':
          Emit(Tok::kBar);
          return absl::OkStatus();
        case '\\':
          if (matrix_depth_ > 0) {
            Emit(Tok::kRowSep);
          } else {
            space_ = true;
          }
          return absl::OkStatus();
        case ',': case ';': case ':': case '!': case ' ': case '$': case '>':
        case '\n':
          space_ = true;
          return absl::OkStatus();
        case '(': case ')': case '[': case ']':
          return absl::OkStatus();  // \( \) \[ \] math delimiters
        default:
          return absl::InvalidArgumentError(absl::StrCat("unknown LaTeX escape \\", std::string(1, c)));
      }
    }
    size_t start = pos_;
    while (pos_ < in_.size() && IsAlpha(in_[pos_])) ++pos_;
    absl::string_view name = in_.substr(start, pos_ - start);
    if (name == "begin" || name == "end") return LexEnvironment(name == "begin");
    auto it = Commands().find(name);
    if (it == Commands().end()) {
      std::string greek(name);
      if (GreekLetters().contains(greek)) {
        MaybeSubscript(&greek);
        Emit(Tok::kIdent, std::move(greek));
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(absl::StrCat("unsupported LaTeX command \\", name));
    }
    const CmdInfo& info = it->second;
    switch (info.cmd) {
      case Cmd::kToken:
        // LaTeX \frac, \sqrt, \binom take one-character arguments ("\frac12"); mark them.
        if (info.tok == Tok::kFrac || info.tok == Tok::kSqrt || info.tok == Tok::kBinom) {
          Emit(info.tok, "tex");
        } else {
          Emit(info.tok, std::string(info.text));
        }
        return absl::OkStatus();
      case Cmd::kSkip:
        if ((name == "left" || name == "right") && Peek() == '.') ++pos_;
        space_ = true;
        return absl::OkStatus();
      case Cmd::kWrap:
      case Cmd::kTextWrap: {
        while (Peek() == ' ') ++pos_;
        if (Peek() != '{') return absl::OkStatus();  // "\mathbf x": just x
        ++pos_;
        space_ = true;
        return OpenBrace(/*drop=*/true, /*text=*/info.cmd == Cmd::kTextWrap);
      }
      case Cmd::kDropArg:
        while (Peek() == ' ') ++pos_;
        if (Peek() == '{') return SkipGroup();
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  // \begin{pmatrix} ... \end{pmatrix} and friends; \begin{aligned} is presentation only.
  absl::Status LexEnvironment(bool begin) {
    while (Peek() == ' ') ++pos_;
    if (Peek() != '{') return absl::InvalidArgumentError("\\begin/\\end without a name");
    size_t close = in_.find('}', pos_);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("unbalanced braces: missing '}'");
    }
    absl::string_view env = in_.substr(pos_ + 1, close - pos_ - 1);
    pos_ = close + 1;
    if (env == "aligned" || env == "align" || env == "align*" || env == "gathered" ||
        env == "displaymath" || env == "equation" || env == "equation*") {
      space_ = true;
      return absl::OkStatus();
    }
    if (env != "pmatrix" && env != "bmatrix" && env != "matrix" && env != "Bmatrix" &&
        env != "vmatrix" && env != "smallmatrix" && env != "array") {
      return absl::InvalidArgumentError(absl::StrCat("unsupported environment ", env));
    }
    if (begin) {
      if (matrix_depth_ >= 4) return BoundExceeded("too_deep", "matrices nest too deep");
      ++matrix_depth_;
      if (env == "array" && Peek() == '{') SFPO_RETURN_IF_ERROR(SkipGroup());  // column spec
      Emit(Tok::kMatOpen);
    } else {
      if (matrix_depth_ == 0) return absl::InvalidArgumentError("\\end without \\begin");
      --matrix_depth_;
      Emit(Tok::kMatClose);
    }
    return absl::OkStatus();
  }

  // Multi-byte UTF-8 characters: known symbols map to tokens, others form words.
  absl::Status LexUnicode() {
    auto starts = [&](absl::string_view bytes) { return in_.substr(pos_, bytes.size()) == bytes; };
    struct Map {
      absl::string_view bytes;
      Tok tok;
    };
    static constexpr Map kMaps[] = {
        {"\xE2\x88\x92", Tok::kMinus}, {"\xE2\x80\x93", Tok::kMinus}, {"\xC3\x97", Tok::kStar},
        {"\xC2\xB7", Tok::kStar},      {"\xE2\x8B\x85", Tok::kStar},  {"\xC3\xB7", Tok::kSlash},
        {"\xCF\x80", Tok::kPi},        {"\xE2\x88\x9A", Tok::kSqrt},  {"\xE2\x88\x9E", Tok::kInfty},
        {"\xE2\x89\xA4", Tok::kLe},    {"\xE2\x89\xA5", Tok::kGe},    {"\xE2\x89\xA0", Tok::kNe},
        {"\xE2\x88\xAA", Tok::kCup},   {"\xE2\x88\xA9", Tok::kCap},   {"\xC2\xB1", Tok::kPm},
        {"\xE2\x88\x88", Tok::kIn},    {"\xE2\x88\x85", Tok::kEmptyset},
    };
    for (const Map& m : kMaps) {
      if (starts(m.bytes)) {
        pos_ += m.bytes.size();
        Emit(m.tok);
        return absl::OkStatus();
      }
    }
    if (starts("\xC2\xB0")) {  // degree sign
      pos_ += 2;
      return absl::OkStatus();
    }
    if (starts("\xC2\xA0") || starts("\xE2\x80\x89") || starts("\xE2\x80\xAF")) {
      pos_ += starts("\xC2\xA0") ? 2 : 3;
      space_ = true;
      return absl::OkStatus();
    }
    if (starts("\xC2\xB2") || starts("\xC2\xB3")) {  // superscript 2, 3
      char digit = in_[pos_ + 1] == '\xB2' ? '2' : '3';
      pos_ += 2;
      Emit(Tok::kCaret);
      Emit(Tok::kNumber, std::string(1, digit));
      return absl::OkStatus();
    }
    // Any other non-ASCII run is one word (input is valid UTF-8 by now).
    size_t start = pos_;
    while (pos_ < in_.size() && (static_cast<unsigned char>(in_[pos_]) >= 0x80)) ++pos_;
    Emit(Tok::kIdent, std::string(in_.substr(start, pos_ - start)));
    return absl::OkStatus();
  }

  absl::Status Step() {
    char c = in_[pos_];
    if (IsSpace(c)) {
      space_ = true;
      ++pos_;
      return absl::OkStatus();
    }
    if (IsDigit(c) || (c == '.' && IsDigit(Peek(1)))) return LexNumber();
    if (IsAlpha(c)) return LexWord();
    if (c == '\\') return LexCommand();
    if (static_cast<unsigned char>(c) >= 0x80) return LexUnicode();
    ++pos_;
    switch (c) {
      case '+': Emit(Tok::kPlus); break;
      case '-': Emit(Tok::kMinus); break;
      case '*':
        if (Peek() == '*') {
          ++pos_;
          Emit(Tok::kCaret);
        } else {
          Emit(Tok::kStar);
        }
        break;
      case '/': Emit(Tok::kSlash); break;
      case '^':
        --pos_;
        if (SkipDegreeMark()) break;
        ++pos_;
        Emit(Tok::kCaret);
        break;
      case '!':
        if (Peek() == '=') {
          ++pos_;
          Emit(Tok::kNe);
        } else {
          Emit(Tok::kBang);
        }
        break;
      case '%': Emit(Tok::kPercent); break;
      case '=': Emit(Tok::kEq); break;
      case '<':
        if (Peek() == '=') {
          ++pos_;
          Emit(Tok::kLe);
        } else {
          Emit(Tok::kLt);
        }
        break;
      case '>':
        if (Peek() == '=') {
          ++pos_;
          Emit(Tok::kGe);
        } else {
          Emit(Tok::kGt);
        }
        break;
      case '(': Emit(Tok::kLParen); break;
      case ')': Emit(Tok::kRParen); break;
      case '[': Emit(Tok::kLBracket); break;
      case ']': Emit(Tok::kRBracket); break;
      case '{': return OpenBrace(/*drop=*/false, /*text=*/false);
      case '}': {
        if (braces_.empty()) return absl::InvalidArgumentError("unbalanced braces: extra '}'");
        Brace b = braces_.back();
        braces_.pop_back();
        if (b.text) --text_depth_;
        if (!b.drop) {
          Emit(Tok::kRBrace);
        } else {
          space_ = true;
        }
        break;
      }
      case ',': Emit(Tok::kComma); break;
      case ';': Emit(Tok::kComma); break;
      case '|': Emit(Tok::kBar); break;
      case '_': Emit(Tok::kUnderscore); break;
      case ':': Emit(Tok::kColon); break;
      case '$': space_ = true; break;
      case '&':  // a matrix column; alignment "x &= 5"; "&&" and others mean nothing
        if (matrix_depth_ > 0) {
          Emit(Tok::kComma);
          break;
        }
        if (Peek() != '=') return absl::InvalidArgumentError("unexpected character '&'");
        space_ = true;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
    return absl::OkStatus();
  }

  struct Brace {
    bool drop;
    bool text;
  };

  absl::string_view in_;
  const LexOptions& options_;
  Budget* budget_;
  size_t pos_ = 0;
  bool space_ = false;
  int text_depth_ = 0;
  int matrix_depth_ = 0;
  std::vector<Brace> braces_;
  std::vector<Token> out_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(absl::string_view input, const LexOptions& options,
                                       Budget* budget) {
  return Lexer(input, options, budget).Run();
}

bool LooksLikeThousandsNumber(absl::string_view answer) {
  static const RE2* re = new RE2(
      R"re(^\s*(?:\\?\$)?\s*[+-]?\s*(?:\\?\$)?\d{1,3}(?:(?:,|\{,\}|,\\!)\d{3})+(?:\.\d+)?\s*(?:\\?%|\\(?:text|mbox|mathrm)\{[^{}]*\}|[A-Za-z][A-Za-z ]*)?\s*\.?\s*$)re");
  return RE2::FullMatch(re2::StringPiece(answer.data(), answer.size()), *re);
}

bool LooksLikeSpacedThousandsNumber(absl::string_view answer) {
  static const RE2* re = new RE2(R"re(^\s*[+-]?\d{1,3}(?: \d{3})+(?:\.\d+)?\s*$)re");
  return RE2::FullMatch(re2::StringPiece(answer.data(), answer.size()), *re);
}

absl::string_view TokName(Tok kind) {
  switch (kind) {
    case Tok::kEnd: return "end of answer";
    case Tok::kNumber: return "number";
    case Tok::kIdent: return "name";
    case Tok::kPlus: return "'+'";
    case Tok::kMinus: return "'-'";
    case Tok::kStar: return "'*'";
    case Tok::kSlash: return "'/'";
    case Tok::kCaret: return "'^'";
    case Tok::kBang: return "'!'";
    case Tok::kPercent: return "'%'";
    case Tok::kEq: return "'='";
    case Tok::kLt: return "'<'";
    case Tok::kGt: return "'>'";
    case Tok::kLe: return "'<='";
    case Tok::kGe: return "'>='";
    case Tok::kNe: return "'!='";
    case Tok::kLParen: return "'('";
    case Tok::kRParen: return "')'";
    case Tok::kLBracket: return "'['";
    case Tok::kRBracket: return "']'";
    case Tok::kLBrace: return "'{'";
    case Tok::kRBrace: return "'}'";
    case Tok::kSetOpen: return "'\\{'";
    case Tok::kSetClose: return "'\\}'";
    case Tok::kComma: return "','";
    case Tok::kBar: return "'|'";
    case Tok::kUnderscore: return "'_'";
    case Tok::kFrac: return "\\frac";
    case Tok::kSqrt: return "\\sqrt";
    case Tok::kBinom: return "\\binom";
    case Tok::kFunc: return "function";
    case Tok::kPi: return "\\pi";
    case Tok::kInfty: return "\\infty";
    case Tok::kCup: return "\\cup";
    case Tok::kCap: return "\\cap";
    case Tok::kPm: return "\\pm";
    case Tok::kMp: return "\\mp";
    case Tok::kIn: return "\\in";
    case Tok::kEmptyset: return "\\emptyset";
    case Tok::kColon: return "':'";
    case Tok::kMatOpen: return "\\begin{matrix}";
    case Tok::kMatClose: return "\\end{matrix}";
    case Tok::kRowSep: return "'\\\\'";
  }
  return "token";
}

}  // namespace sfpo
