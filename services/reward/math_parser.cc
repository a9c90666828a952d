#include "services/reward/math_parser.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "services/reward/math_lexer.h"

namespace sfpo {
namespace {

bool IsRelOp(Tok t) {
  return t == Tok::kEq || t == Tok::kLt || t == Tok::kGt || t == Tok::kLe || t == Tok::kGe ||
         t == Tok::kNe || t == Tok::kIn;
}

char RelChar(Tok t) {
  switch (t) {
    case Tok::kEq: return '=';
    case Tok::kLt: return '<';
    case Tok::kGt: return '>';
    case Tok::kLe: return 'l';
    case Tok::kGe: return 'g';
    case Tok::kNe: return 'n';
    default: return 'i';
  }
}

bool IsClosing(Tok t) {
  return t == Tok::kEnd || t == Tok::kRParen || t == Tok::kRBracket || t == Tok::kRBrace ||
         t == Tok::kSetClose || t == Tok::kMatClose || t == Tok::kRowSep;
}

bool IsIntegerLiteral(const Token& t) {
  return t.kind == Tok::kNumber && t.exponent == 0 && t.text.find('.') == std::string::npos;
}

// Drops trailing units and words after a numeric value in each top-level comma segment:
// "5 cm", "12 \text{ apples}", "3 \text{m}^2", "10 \text{m/s}". The part after the last
// relation operator must hold a number and no other names once the words are gone. Single
// plain letters are never units ("2 m" keeps m as a variable); in \text{} they are.
void StripTrailingWords(std::vector<Token>* tokens) {
  std::vector<Token> out;
  out.reserve(tokens->size());
  size_t seg_start = 0;
  int depth = 0;
  auto flush = [&](size_t end) {
    size_t tail = seg_start;
    int d = 0;
    for (size_t i = seg_start; i < end; ++i) {
      Tok k = (*tokens)[i].kind;
      if (k == Tok::kLParen || k == Tok::kLBracket || k == Tok::kLBrace || k == Tok::kSetOpen) ++d;
      if (k == Tok::kRParen || k == Tok::kRBracket || k == Tok::kRBrace || k == Tok::kSetClose) --d;
      if (d == 0 && IsRelOp(k)) tail = i + 1;
    }
    auto is_word = [&](size_t i) {
      const Token& t = (*tokens)[i];
      return t.kind == Tok::kIdent && (t.from_text || t.text.size() >= 2);
    };
    // The trailing unit run: words joined by '/', '*' and powers ("m/s^2", "cm^2",
    // "square units", "km / h"), starting at a word.
    size_t run = end;
    while (run > tail) {
      size_t i = run - 1;
      Tok k = (*tokens)[i].kind;
      bool unit_token = is_word(i) || k == Tok::kSlash || k == Tok::kStar || k == Tok::kCaret ||
                        (k == Tok::kNumber && i > tail && (*tokens)[i - 1].kind == Tok::kCaret);
      if (!unit_token) break;
      run = i;
    }
    while (run < end && !is_word(run)) ++run;
    size_t keep = end;
    if (run < end) {
      bool has_number = false;
      bool has_name = false;
      for (size_t i = tail; i < run; ++i) {
        const Token& t = (*tokens)[i];
        if (t.kind == Tok::kNumber) has_number = true;
        if (t.kind == Tok::kIdent) has_name = true;
      }
      if (has_number && !has_name) keep = run;
    }
    for (size_t i = seg_start; i < keep; ++i) out.push_back(std::move((*tokens)[i]));
  };
  for (size_t i = 0; i < tokens->size(); ++i) {
    Tok k = (*tokens)[i].kind;
    if (k == Tok::kLParen || k == Tok::kLBracket || k == Tok::kLBrace || k == Tok::kSetOpen) ++depth;
    if (k == Tok::kRParen || k == Tok::kRBracket || k == Tok::kRBrace || k == Tok::kSetClose) --depth;
    if (depth == 0 && k == Tok::kComma) {
      flush(i);
      out.push_back(std::move((*tokens)[i]));
      seg_start = i + 1;
    }
  }
  flush(tokens->size());
  *tokens = std::move(out);
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, Budget* budget) : toks_(std::move(tokens)), budget_(budget) {
    toks_.push_back(Token{});  // kEnd sentinel
  }

  absl::StatusOr<Ast> Run() {
    std::vector<int> elems;
    SFPO_RETURN_IF_ERROR(ParseElements(&elems));
    if (Cur().kind != Tok::kEnd) return Unexpected();
    if (elems.empty()) return absl::InvalidArgumentError("empty answer");
    ast_.root = elems.size() == 1 ? elems[0] : Make(NodeKind::kList, std::move(elems));
    return std::move(ast_);
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Ahead(size_t k) const {
    return toks_[std::min(pos_ + k, toks_.size() - 1)];
  }
  void Advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }

  absl::Status Unexpected() const {
    if (Cur().kind == Tok::kEnd) return absl::InvalidArgumentError("the answer ends too early");
    return absl::InvalidArgumentError(absl::StrCat("unexpected ", TokName(Cur().kind),
                                                   Cur().text.empty() ? "" : " ", Cur().text));
  }
  absl::Status Expect(Tok kind) {
    if (Cur().kind != kind) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected ", TokName(kind), ", found ", TokName(Cur().kind)));
    }
    Advance();
    return absl::OkStatus();
  }

  int Make(NodeKind kind, std::vector<int> kids = {}, std::string text = {}) {
    Node n;
    n.kind = kind;
    n.kids = std::move(kids);
    n.text = std::move(text);
    ast_.nodes.push_back(std::move(n));
    return static_cast<int>(ast_.nodes.size()) - 1;
  }

  absl::StatusOr<int> MakeNumber(const Token& t) {
    Rational value;
    if (!ParseDecimal(t.text, t.exponent, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("malformed number ", t.text));
    }
    if (!t.repeating.empty()) {
      // a.b\overline{r} = a.b + r / ((10^|r| - 1) * 10^|b|).
      size_t dot = t.text.find('.');
      size_t frac_digits = dot == std::string::npos ? 0 : t.text.size() - dot - 1;
      Rational r;
      mpz_set_str(mpq_numref(r.get()), t.repeating.c_str(), 10);
      mpz_ui_pow_ui(mpq_denref(r.get()), 10, t.repeating.size());
      mpz_sub_ui(mpq_denref(r.get()), mpq_denref(r.get()), 1);
      mpz_t shift;
      mpz_init(shift);
      mpz_ui_pow_ui(shift, 10, frac_digits);
      mpz_mul(mpq_denref(r.get()), mpq_denref(r.get()), shift);
      mpz_clear(shift);
      mpq_canonicalize(r.get());
      mpq_add(value.get(), value.get(), r.get());
    }
    if (value.Bits() > budget_->limits().max_value_bits) {
      return BoundExceeded("number_too_large", "a number literal is too large");
    }
    int id = Make(NodeKind::kNum);
    ast_.nodes[id].num = static_cast<int>(ast_.numbers.size());
    // A repeating decimal is exact; a terminating one was possibly rounded (see ValuesEqual).
    ast_.nodes[id].decimal =
        t.repeating.empty() && (t.text.find('.') != std::string::npos || t.exponent < 0);
    ast_.numbers.push_back(std::move(value));
    return id;
  }

  // Depth guard for every recursive production.
  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    int* depth;
  };
  absl::Status Enter() {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    if (depth_ > budget_->limits().max_depth) {
      return BoundExceeded("too_deep", "the answer nests deeper than the limit");
    }
    return absl::OkStatus();
  }

  absl::Status ParseElements(std::vector<int>* out) {
    if (IsClosing(Cur().kind)) return absl::OkStatus();
    SFPO_ASSIGN_OR_RETURN(int first, ParseRelation());
    out->push_back(first);
    while (Cur().kind == Tok::kComma) {
      Advance();
      while (Cur().kind == Tok::kComma) Advance();
      if (IsClosing(Cur().kind)) break;  // trailing comma
      if (static_cast<int>(out->size()) >= budget_->limits().max_elements) {
        return BoundExceeded("too_many_elements", "a list has more elements than the limit");
      }
      SFPO_ASSIGN_OR_RETURN(int next, ParseRelation());
      out->push_back(next);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int> ParseRelation() {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    SFPO_ASSIGN_OR_RETURN(int lhs, ParseUnion());
    if (!IsRelOp(Cur().kind)) return lhs;
    std::vector<int> kids = {lhs};
    std::string ops;
    while (IsRelOp(Cur().kind)) {
      ops.push_back(RelChar(Cur().kind));
      Advance();
      SFPO_ASSIGN_OR_RETURN(int rhs, ParseUnion());
      kids.push_back(rhs);
    }
    return Make(NodeKind::kRel, std::move(kids), std::move(ops));
  }

  bool AtUnion() const {
    if (Cur().kind == Tok::kCup) return true;
    // "(-oo, 1) U (2, oo)"
    return Cur().kind == Tok::kIdent && Cur().text == "U" &&
           (Ahead(1).kind == Tok::kLParen || Ahead(1).kind == Tok::kLBracket);
  }

  absl::StatusOr<int> ParseUnion() {
    SFPO_ASSIGN_OR_RETURN(int first, ParseExpr());
    if (!AtUnion() && Cur().kind != Tok::kCap) return first;
    NodeKind kind = Cur().kind == Tok::kCap ? NodeKind::kIntersect : NodeKind::kUnion;
    std::vector<int> kids = {first};
    while (kind == NodeKind::kUnion ? AtUnion() : Cur().kind == Tok::kCap) {
      Advance();
      if (static_cast<int>(kids.size()) >= budget_->limits().max_elements) {
        return BoundExceeded("too_many_elements", "a union has more parts than the limit");
      }
      SFPO_ASSIGN_OR_RETURN(int next, ParseExpr());
      kids.push_back(next);
    }
    return Make(kind, std::move(kids));
  }

  absl::StatusOr<int> ParseExpr() {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    SFPO_ASSIGN_OR_RETURN(int first, ParseTerm());
    std::vector<int> terms = {first};
    while (true) {
      Tok k = Cur().kind;
      if (k != Tok::kPlus && k != Tok::kMinus && k != Tok::kPm && k != Tok::kMp) break;
      Advance();
      SFPO_RETURN_IF_ERROR(budget_->Tick());
      SFPO_ASSIGN_OR_RETURN(int rhs, ParseTerm());
      if (k == Tok::kPlus) {
        terms.push_back(rhs);
      } else if (k == Tok::kMinus) {
        terms.push_back(Make(NodeKind::kNeg, {rhs}));
      } else {
        // a -+ b is the same set as a +- b.
        terms = {Make(NodeKind::kPm, {Balanced(NodeKind::kAdd, terms), rhs})};
      }
    }
    return Balanced(NodeKind::kAdd, terms);
  }

  bool StartsImplicitFactor(Tok t) const {
    return t == Tok::kNumber || t == Tok::kIdent || t == Tok::kPi || t == Tok::kInfty ||
           t == Tok::kLParen || t == Tok::kLBrace || t == Tok::kFrac || t == Tok::kSqrt ||
           t == Tok::kFunc || t == Tok::kBinom;
  }

  // "2\frac{1}{2}" / "2\frac12" / "2 1/2" right after an integer literal: a mixed number.
  bool AtMixedFraction() const {
    const Token& t = Cur();
    if (t.kind == Tok::kFrac) {
      if (Ahead(1).kind == Tok::kLBrace && IsIntegerLiteral(Ahead(2)) &&
          Ahead(3).kind == Tok::kRBrace && Ahead(4).kind == Tok::kLBrace &&
          IsIntegerLiteral(Ahead(5)) && Ahead(6).kind == Tok::kRBrace) {
        return true;
      }
      return t.text == "tex" && IsIntegerLiteral(Ahead(1)) && Ahead(1).text.size() == 2;
    }
    return IsIntegerLiteral(t) && t.space_before && Ahead(1).kind == Tok::kSlash &&
           IsIntegerLiteral(Ahead(2)) && !StartsImplicitFactor(Ahead(3).kind) &&
           Ahead(3).kind != Tok::kCaret;
  }

  absl::StatusOr<int> ParseTerm() {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    bool leading_integer = IsIntegerLiteral(Cur()) ||
                           (Cur().kind == Tok::kMinus && IsIntegerLiteral(Ahead(1)));
    SFPO_ASSIGN_OR_RETURN(int acc, ParseUnary());
    // "-2\frac12" is -(2 + 1/2).
    bool negative = ast_.nodes[acc].kind == NodeKind::kNeg &&
                    ast_.nodes[ast_.nodes[acc].kids[0]].kind == NodeKind::kNum;
    int whole = negative ? ast_.nodes[acc].kids[0] : acc;
    if (leading_integer && ast_.nodes[whole].kind == NodeKind::kNum && AtMixedFraction()) {
      int frac;
      if (Cur().kind == Tok::kFrac) {
        SFPO_ASSIGN_OR_RETURN(frac, ParsePrimary());
      } else {
        SFPO_ASSIGN_OR_RETURN(int num, MakeNumber(Cur()));
        Advance();
        Advance();  // '/'
        SFPO_ASSIGN_OR_RETURN(int den, MakeNumber(Cur()));
        Advance();
        frac = Make(NodeKind::kDiv, {num, den});
      }
      acc = Make(NodeKind::kAdd, {whole, frac});
      if (negative) acc = Make(NodeKind::kNeg, {acc});
    }
    std::vector<int> factors = {acc};
    while (true) {
      SFPO_RETURN_IF_ERROR(budget_->Tick());
      Tok k = Cur().kind;
      if (k == Tok::kStar) {
        Advance();
        SFPO_ASSIGN_OR_RETURN(int rhs, ParseUnary());
        factors.push_back(rhs);
      } else if (k == Tok::kSlash) {
        Advance();
        SFPO_ASSIGN_OR_RETURN(int rhs, ParseUnary());
        factors = {Make(NodeKind::kDiv, {Balanced(NodeKind::kMul, factors), rhs})};
      } else if (k == Tok::kBar && ast_.nodes[factors.back()].kind == NodeKind::kAbs) {
        SFPO_ASSIGN_OR_RETURN(int rhs, ParsePower());  // |x||y|
        factors.push_back(rhs);
      } else if (k == Tok::kBar && abs_depth_ == 0) {
        SFPO_ASSIGN_OR_RETURN(int rhs, ParsePower());  // x|y|
        factors.push_back(rhs);
      } else if (StartsImplicitFactor(k) && !AtUnion()) {
        if (k == Tok::kNumber && ast_.nodes[factors.back()].kind == NodeKind::kNum) {
          return absl::InvalidArgumentError("two numbers side by side");
        }
        SFPO_ASSIGN_OR_RETURN(int rhs, ParsePower());
        factors.push_back(rhs);
      } else {
        break;
      }
    }
    return Balanced(NodeKind::kMul, factors);
  }

  absl::StatusOr<int> ParseUnary() {
    Tok k = Cur().kind;
    // Nesting is counted per bracket level (ParsePrimary) and per prefix sign, so the limit
    // means the same thing for "((1))" and "--1".
    if (k == Tok::kMinus || k == Tok::kPlus || k == Tok::kPm || k == Tok::kMp) {
      DepthGuard guard(&depth_);
      SFPO_RETURN_IF_ERROR(Enter());
      return ParseSigned(k);
    }
    return ParsePower();
  }

  absl::StatusOr<int> ParseSigned(Tok k) {
    if (k == Tok::kMinus) {
      Advance();
      SFPO_ASSIGN_OR_RETURN(int x, ParseUnary());
      return Make(NodeKind::kNeg, {x});
    }
    if (k == Tok::kPlus) {
      Advance();
      return ParseUnary();
    }
    if (k == Tok::kPm || k == Tok::kMp) {
      Advance();
      SFPO_ASSIGN_OR_RETURN(int x, ParseUnary());
      return Make(NodeKind::kPm, {x});
    }
    return ParsePower();
  }

  // A balanced tree over `items` with binary `kind` nodes, so that long sums and products stay
  // shallow for the evaluator.
  int Balanced(NodeKind kind, const std::vector<int>& items, size_t lo, size_t hi) {
    if (hi - lo == 1) return items[lo];
    size_t mid = lo + (hi - lo) / 2;
    int left = Balanced(kind, items, lo, mid);
    int right = Balanced(kind, items, mid, hi);
    return Make(kind, {left, right});
  }
  int Balanced(NodeKind kind, const std::vector<int>& items) {
    return Balanced(kind, items, 0, items.size());
  }

  absl::StatusOr<int> ParsePower() {
    SFPO_ASSIGN_OR_RETURN(int base, ParsePostfix());
    if (Cur().kind != Tok::kCaret) return base;
    Advance();
    SFPO_ASSIGN_OR_RETURN(int exponent, ParseUnary());
    return Make(NodeKind::kPow, {base, exponent});
  }

  absl::StatusOr<int> ParsePostfix() {
    SFPO_ASSIGN_OR_RETURN(int x, ParsePrimary());
    while (Cur().kind == Tok::kBang || Cur().kind == Tok::kPercent) {
      x = Make(Cur().kind == Tok::kBang ? NodeKind::kFactorial : NodeKind::kPercent, {x});
      Advance();
    }
    return x;
  }

  // A LaTeX argument: {group}, or one character/command ("\frac12", "\sqrt x", "\frac\pi2").
  absl::StatusOr<int> ParseArg(bool tex) {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    if (Cur().kind == Tok::kLBrace) {
      Advance();
      std::vector<int> elems;
      SFPO_RETURN_IF_ERROR(ParseElements(&elems));
      SFPO_RETURN_IF_ERROR(Expect(Tok::kRBrace));
      if (elems.size() != 1) return absl::InvalidArgumentError("an argument must be one value");
      return elems[0];
    }
    if (tex && Cur().kind == Tok::kNumber && Cur().text.size() > 1 && Cur().exponent == 0 &&
        Cur().text[0] != '.') {
      Token first = Cur();
      first.text = Cur().text.substr(0, 1);
      toks_[pos_].text.erase(0, 1);
      toks_[pos_].space_before = false;
      return MakeNumber(first);
    }
    if (Cur().kind == Tok::kMinus) return ParseUnary();
    return ParsePostfix();
  }

  absl::StatusOr<int> ParseBracketGroup() {
    char open = Cur().kind == Tok::kLParen ? '(' : '[';
    Advance();
    std::vector<int> elems;
    SFPO_RETURN_IF_ERROR(ParseElements(&elems));
    char close;
    if (Cur().kind == Tok::kRParen) {
      close = ')';
    } else if (Cur().kind == Tok::kRBracket) {
      close = ']';
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unbalanced brackets: expected ')' or ']', found ", TokName(Cur().kind)));
    }
    Advance();
    if (elems.empty()) return absl::InvalidArgumentError("empty brackets");
    if (elems.size() == 1) {
      if ((open == '(') != (close == ')')) {
        return absl::InvalidArgumentError("mismatched brackets around one value");
      }
      return elems[0];
    }
    int id = Make(NodeKind::kTuple, std::move(elems));
    ast_.nodes[id].open = open;
    ast_.nodes[id].close = close;
    return id;
  }

  absl::StatusOr<int> ParsePrimary() {
    DepthGuard guard(&depth_);
    SFPO_RETURN_IF_ERROR(Enter());
    const Token& t = Cur();
    switch (t.kind) {
      case Tok::kNumber: {
        SFPO_ASSIGN_OR_RETURN(int id, MakeNumber(t));
        Advance();
        return id;
      }
      case Tok::kIdent: {
        int id = Make(NodeKind::kVar, {}, t.text);
        Advance();
        if (Cur().kind == Tok::kUnderscore) {
          return absl::InvalidArgumentError("unsupported subscript");
        }
        return id;
      }
      case Tok::kPi:
        Advance();
        return Make(NodeKind::kPi);
      case Tok::kInfty:
        Advance();
        return Make(NodeKind::kInf);
      case Tok::kEmptyset:
        Advance();
        return Make(NodeKind::kEmptySet);
      case Tok::kLParen:
      case Tok::kLBracket:
        return ParseBracketGroup();
      case Tok::kLBrace:
      case Tok::kSetOpen: {
        bool escaped = t.kind == Tok::kSetOpen;
        Advance();
        std::vector<int> elems;
        SFPO_RETURN_IF_ERROR(ParseElements(&elems));
        SFPO_RETURN_IF_ERROR(Expect(escaped ? Tok::kSetClose : Tok::kRBrace));
        if (elems.empty()) return Make(NodeKind::kEmptySet);
        if (elems.size() == 1 && !escaped) return elems[0];  // LaTeX grouping
        return Make(NodeKind::kSet, std::move(elems));
      }
      case Tok::kMatOpen: {
        // Rows of '&'-separated cells: a tuple ('m') of row tuples ('r'), compared in order.
        Advance();
        std::vector<int> rows;
        while (Cur().kind != Tok::kMatClose) {
          std::vector<int> cells;
          SFPO_RETURN_IF_ERROR(ParseElements(&cells));
          if (!cells.empty()) {
            if (static_cast<int>(rows.size()) >= budget_->limits().max_elements) {
              return BoundExceeded("too_many_elements", "a matrix has more rows than the limit");
            }
            int row = Make(NodeKind::kTuple, std::move(cells));
            ast_.nodes[row].open = ast_.nodes[row].close = 'r';
            rows.push_back(row);
          }
          if (Cur().kind == Tok::kRowSep) {
            Advance();
          } else if (Cur().kind != Tok::kMatClose) {
            return Unexpected();
          }
        }
        Advance();
        if (rows.empty()) return absl::InvalidArgumentError("empty matrix");
        int m = Make(NodeKind::kTuple, std::move(rows));
        ast_.nodes[m].open = ast_.nodes[m].close = 'm';
        return m;
      }
      case Tok::kFrac: {
        bool tex = t.text == "tex";
        Advance();
        SFPO_ASSIGN_OR_RETURN(int num, ParseArg(tex));
        SFPO_ASSIGN_OR_RETURN(int den, ParseArg(tex));
        return Make(NodeKind::kDiv, {num, den});
      }
      case Tok::kBinom: {
        bool tex = t.text == "tex";
        Advance();
        SFPO_ASSIGN_OR_RETURN(int n, ParseArg(tex));
        SFPO_ASSIGN_OR_RETURN(int k, ParseArg(tex));
        return Make(NodeKind::kBinom, {n, k});
      }
      case Tok::kSqrt: {
        bool tex = t.text == "tex";
        Advance();
        int index = -1;
        if (tex && Cur().kind == Tok::kLBracket) {
          Advance();
          SFPO_ASSIGN_OR_RETURN(index, ParseExpr());
          SFPO_RETURN_IF_ERROR(Expect(Tok::kRBracket));
        }
        SFPO_ASSIGN_OR_RETURN(int arg, ParseArg(tex));
        std::vector<int> kids = {arg};
        if (index >= 0) kids.push_back(index);
        return Make(NodeKind::kSqrt, std::move(kids));
      }
      case Tok::kFunc: {
        std::string name = t.text;
        Advance();
        int base = -1;
        if (Cur().kind == Tok::kUnderscore) {
          Advance();
          SFPO_ASSIGN_OR_RETURN(base, ParseArg(true));
        }
        int power = -1;
        if (Cur().kind == Tok::kCaret) {  // \sin^2 x
          Advance();
          SFPO_ASSIGN_OR_RETURN(power, ParseArg(true));
        }
        int arg;
        if (Cur().kind == Tok::kLParen || Cur().kind == Tok::kLBrace ||
            Cur().kind == Tok::kLBracket) {
          SFPO_ASSIGN_OR_RETURN(arg, ParsePrimary());
        } else {
          SFPO_ASSIGN_OR_RETURN(arg, ParsePower());
        }
        std::vector<int> kids = {arg};
        if (base >= 0) kids.push_back(base);
        int f = Make(NodeKind::kFunc, std::move(kids), std::move(name));
        if (power >= 0) f = Make(NodeKind::kPow, {f, power});
        return f;
      }
      case Tok::kBar: {
        Advance();
        ++abs_depth_;
        absl::StatusOr<int> inner = ParseExpr();
        --abs_depth_;
        SFPO_ASSIGN_OR_RETURN(int x, std::move(inner));
        SFPO_RETURN_IF_ERROR(Expect(Tok::kBar));
        return Make(NodeKind::kAbs, {x});
      }
      default:
        return Unexpected();
    }
  }

  std::vector<Token> toks_;
  Budget* budget_;
  size_t pos_ = 0;
  int depth_ = 0;
  int abs_depth_ = 0;  // inside |...|, a '|' closes instead of starting a factor
  Ast ast_;
};

void RenderInto(const Ast& ast, int id, std::string* out, int depth) {
  const Node& n = ast.nodes[id];
  if (depth > 200) {
    out->append("...");
    return;
  }
  auto kids = [&](absl::string_view sep) {
    for (size_t i = 0; i < n.kids.size(); ++i) {
      if (i > 0) out->append(sep.data(), sep.size());
      RenderInto(ast, n.kids[i], out, depth + 1);
    }
  };
  switch (n.kind) {
    case NodeKind::kNum: out->append(ast.numbers[n.num].ToString()); return;
    case NodeKind::kVar: out->append(n.text); return;
    case NodeKind::kPi: out->append("pi"); return;
    case NodeKind::kInf: out->append("oo"); return;
    case NodeKind::kAdd: out->append("("); kids("+"); out->append(")"); return;
    case NodeKind::kNeg: out->append("-("); kids(""); out->append(")"); return;
    case NodeKind::kMul: out->append("("); kids("*"); out->append(")"); return;
    case NodeKind::kDiv: out->append("("); kids("/"); out->append(")"); return;
    case NodeKind::kPow: out->append("("); kids("^"); out->append(")"); return;
    case NodeKind::kPm: out->append("("); kids("+-"); out->append(")"); return;
    case NodeKind::kSqrt: out->append("sqrt("); kids(";"); out->append(")"); return;
    case NodeKind::kFunc: out->append(n.text); out->append("("); kids(";"); out->append(")"); return;
    case NodeKind::kFactorial: out->append("("); kids(""); out->append(")!"); return;
    case NodeKind::kAbs: out->append("|"); kids(""); out->append("|"); return;
    case NodeKind::kPercent: out->append("("); kids(""); out->append(")%"); return;
    case NodeKind::kBinom: out->append("binom("); kids(","); out->append(")"); return;
    case NodeKind::kTuple:
      out->push_back(n.open); kids(","); out->push_back(n.close); return;
    case NodeKind::kSet: out->append("{"); kids(","); out->append("}"); return;
    case NodeKind::kEmptySet: out->append("{}"); return;
    case NodeKind::kUnion: kids(" U "); return;
    case NodeKind::kIntersect: kids(" n "); return;
    case NodeKind::kRel:
      for (size_t i = 0; i < n.kids.size(); ++i) {
        if (i > 0) out->push_back(n.text[i - 1]);
        RenderInto(ast, n.kids[i], out, depth + 1);
      }
      return;
    case NodeKind::kList: kids(", "); return;
  }
}

}  // namespace

absl::StatusOr<Ast> ParseAnswer(absl::string_view answer, Budget* budget) {
  if (static_cast<int64_t>(answer.size()) > budget->limits().max_answer_bytes) {
    return BoundExceeded("answer_too_long", "the answer is longer than the limit");
  }
  LexOptions lex_options;
  lex_options.thousands_commas = LooksLikeThousandsNumber(answer);
  lex_options.thousands_spaces = LooksLikeSpacedThousandsNumber(answer);
  SFPO_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(answer, lex_options, budget));
  if (tokens.empty()) return absl::InvalidArgumentError("empty answer");
  StripTrailingWords(&tokens);
  return Parser(std::move(tokens), budget).Run();
}

std::string Render(const Ast& ast, int node) {
  std::string out;
  RenderInto(ast, node, &out, 0);
  return out;
}

}  // namespace sfpo
