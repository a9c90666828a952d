#include "services/reward/math_eval.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sfpo {
namespace {

absl::Status Undefined(absl::string_view why) { return absl::OutOfRangeError(why); }

constexpr absl::string_view kOverflow = "overflow: not a finite double";

Value Inexact(double d) {
  Value v;
  v.exact = false;
  v.d = d;
  return v;
}

class Evaluator {
 public:
  Evaluator(const Ast& ast, const Assignment& vars, uint32_t pm_mask, const EvalOptions& options,
            Budget* budget)
      : ast_(ast), vars_(vars), pm_mask_(pm_mask), options_(options), budget_(budget) {}

  absl::StatusOr<Value> Eval(int id, int depth) {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    if (depth > 4 * budget_->limits().max_depth) {
      return BoundExceeded("too_deep", "the expression nests deeper than the limit");
    }
    const Node& n = ast_.nodes[id];
    switch (n.kind) {
      case NodeKind::kNum: {
        Value v;
        v.q = ast_.numbers[n.num];
        v.decimal = n.decimal;
        return v;
      }
      case NodeKind::kVar:
        if (n.text == "e") return Inexact(M_E);  // Euler's number, never a variable
        [[fallthrough]];
      case NodeKind::kInf: {
        auto it = vars_.find(n.kind == NodeKind::kInf ? std::string("oo") : n.text);
        if (it == vars_.end()) return absl::FailedPreconditionError("unknown variable");
        Value v;
        v.q = it->second;
        return v;
      }
      case NodeKind::kPi:
        return Inexact(M_PI);
      case NodeKind::kNeg: {
        SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
        if (a.exact) {
          mpq_neg(a.q.get(), a.q.get());
        } else {
          a.d = -a.d;
        }
        return a;
      }
      case NodeKind::kPm: {
        bool minus = (pm_mask_ >> (pm_index_++ % 31)) & 1;
        if (n.kids.size() == 1) {
          SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
          if (!minus) return a;
          if (a.exact) {
            mpq_neg(a.q.get(), a.q.get());
          } else {
            a.d = -a.d;
          }
          return a;
        }
        SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
        SFPO_ASSIGN_OR_RETURN(Value b, Eval(n.kids[1], depth + 1));
        return minus ? Sub(a, b) : Add(a, b);
      }
      case NodeKind::kAdd:
      case NodeKind::kMul:
      case NodeKind::kDiv:
      case NodeKind::kPow: {
        SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
        SFPO_ASSIGN_OR_RETURN(Value b, Eval(n.kids[1], depth + 1));
        if (n.kind == NodeKind::kAdd) return Add(a, b);
        if (n.kind == NodeKind::kMul) return Mul(a, b);
        if (n.kind == NodeKind::kDiv) return Div(a, b);
        return Pow(a, b);
      }
      case NodeKind::kSqrt: {
        SFPO_ASSIGN_OR_RETURN(Value x, Eval(n.kids[0], depth + 1));
        Value index;
        index.q = Rational(2);
        if (n.kids.size() > 1) {
          SFPO_ASSIGN_OR_RETURN(index, Eval(n.kids[1], depth + 1));
        }
        return Root(x, index);
      }
      case NodeKind::kFunc: {
        SFPO_ASSIGN_OR_RETURN(Value x, Eval(n.kids[0], depth + 1));
        double base = 0.0;
        if (n.kids.size() > 1) {
          SFPO_ASSIGN_OR_RETURN(Value b, Eval(n.kids[1], depth + 1));
          base = b.AsDouble();
        }
        return Function(n.text, x, base);
      }
      case NodeKind::kFactorial: {
        SFPO_ASSIGN_OR_RETURN(Value x, Eval(n.kids[0], depth + 1));
        if (!x.exact || !x.q.IsInteger() || x.q.Sign() < 0) {
          return Undefined("factorial of a non-integer");
        }
        if (mpz_cmp_si(mpq_numref(x.q.get()), budget_->limits().max_factorial) > 0) {
          return BoundExceeded("number_too_large", "factorial argument above the limit");
        }
        Value v;
        mpz_fac_ui(mpq_numref(v.q.get()), mpz_get_ui(mpq_numref(x.q.get())));
        return v;
      }
      case NodeKind::kBinom: {
        SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
        SFPO_ASSIGN_OR_RETURN(Value b, Eval(n.kids[1], depth + 1));
        if (!a.exact || !b.exact || !a.q.IsInteger() || !b.q.IsInteger() || a.q.Sign() < 0) {
          return Undefined("binomial of non-integers");
        }
        if (mpz_cmp_si(mpq_numref(a.q.get()), budget_->limits().max_factorial) > 0) {
          return BoundExceeded("number_too_large", "binomial argument above the limit");
        }
        Value v;
        if (b.q.Sign() < 0 || mpz_cmp(mpq_numref(b.q.get()), mpq_numref(a.q.get())) > 0) {
          return v;  // 0
        }
        mpz_bin_uiui(mpq_numref(v.q.get()), mpz_get_ui(mpq_numref(a.q.get())),
                     mpz_get_ui(mpq_numref(b.q.get())));
        return v;
      }
      case NodeKind::kAbs: {
        SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
        if (a.exact) {
          mpq_abs(a.q.get(), a.q.get());
        } else {
          a.d = std::fabs(a.d);
        }
        return a;
      }
      case NodeKind::kPercent: {
        SFPO_ASSIGN_OR_RETURN(Value a, Eval(n.kids[0], depth + 1));
        if (options_.percent_is_identity) return a;
        Value hundred;
        hundred.q = Rational(100);
        return Div(a, hundred);
      }
      default:
        return absl::FailedPreconditionError("not a single value");
    }
  }

  absl::StatusOr<Value> Apply(char op, const Value& a, const Value& b) {
    switch (op) {
      case '+': return Add(a, b);
      case '-': return Sub(a, b);
      case '*': return Mul(a, b);
      default: return Div(a, b);
    }
  }

 private:
  absl::Status CheckBits(const Value& v) {
    if (v.exact && v.q.Bits() > budget_->limits().max_value_bits) {
      return BoundExceeded("number_too_large", "an intermediate value is too large");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> Finite(double d) {
    if (!std::isfinite(d)) return Undefined(kOverflow);
    return Inexact(d);
  }

  absl::StatusOr<Value> Add(const Value& a, const Value& b) {
    if (a.exact && b.exact) {
      Value v;
      mpq_add(v.q.get(), a.q.get(), b.q.get());
      v.decimal = a.decimal || b.decimal;
      SFPO_RETURN_IF_ERROR(CheckBits(v));
      return v;
    }
    return Finite(a.AsDouble() + b.AsDouble());
  }
  absl::StatusOr<Value> Sub(const Value& a, const Value& b) {
    Value nb = b;
    if (nb.exact) {
      mpq_neg(nb.q.get(), nb.q.get());
    } else {
      nb.d = -nb.d;
    }
    return Add(a, nb);
  }
  absl::StatusOr<Value> Mul(const Value& a, const Value& b) {
    if (a.exact && b.exact) {
      if (a.q.Bits() + b.q.Bits() > budget_->limits().max_value_bits + 8) {
        return BoundExceeded("number_too_large", "a product is too large");
      }
      Value v;
      mpq_mul(v.q.get(), a.q.get(), b.q.get());
      v.decimal = a.decimal || b.decimal;
      SFPO_RETURN_IF_ERROR(CheckBits(v));
      return v;
    }
    return Finite(a.AsDouble() * b.AsDouble());
  }
  absl::StatusOr<Value> Div(const Value& a, const Value& b) {
    if (b.exact ? b.q.IsZero() : b.d == 0.0) return Undefined("division by zero");
    if (a.exact && b.exact) {
      if (a.q.Bits() + b.q.Bits() > budget_->limits().max_value_bits + 8) {
        return BoundExceeded("number_too_large", "a quotient is too large");
      }
      Value v;
      mpq_div(v.q.get(), a.q.get(), b.q.get());
      v.decimal = a.decimal || b.decimal;
      SFPO_RETURN_IF_ERROR(CheckBits(v));
      return v;
    }
    return Finite(a.AsDouble() / b.AsDouble());
  }

  // Exact integer power, bounded: |e| <= max_exponent and the result's size <= max_value_bits.
  absl::StatusOr<Value> IntPow(const Value& base, const Rational& e) {
    const VerifyLimits& lim = budget_->limits();
    mpq_srcptr q = base.q.get();
    // 0, 1 and -1 stay small whatever the exponent.
    bool unit = mpz_cmpabs_ui(mpq_numref(q), 1) == 0 && mpz_cmp_ui(mpq_denref(q), 1) == 0;
    if (base.q.IsZero() || unit) {
      if (base.q.IsZero() && e.Sign() < 0) return Undefined("zero to a negative power");
      if (base.q.IsZero() && e.Sign() == 0) return Undefined("zero to the power zero");
      Value v;
      if (base.q.IsZero()) return v;
      bool odd = mpz_odd_p(mpq_numref(e.get()));
      v.q = Rational(mpq_sgn(q) < 0 && odd ? -1 : 1);
      return v;
    }
    if (mpz_cmpabs_ui(mpq_numref(e.get()), static_cast<unsigned long>(lim.max_exponent)) > 0) {
      return BoundExceeded("exponent_too_large",
                           absl::StrCat("an exponent exceeds ", lim.max_exponent));
    }
    long ex = mpz_get_si(mpq_numref(e.get()));
    unsigned long mag = static_cast<unsigned long>(ex < 0 ? -ex : ex);
    if (base.q.Bits() * static_cast<int64_t>(mag) > lim.max_value_bits) {
      return BoundExceeded("number_too_large", "a power is too large");
    }
    Value v;
    mpz_pow_ui(mpq_numref(v.q.get()), mpq_numref(q), mag);
    mpz_pow_ui(mpq_denref(v.q.get()), mpq_denref(q), mag);
    mpq_canonicalize(v.q.get());
    if (ex < 0) mpq_inv(v.q.get(), v.q.get());
    v.decimal = base.decimal;
    return v;
  }

  absl::StatusOr<Value> Pow(const Value& a, const Value& b) {
    if (a.exact && b.exact && b.q.IsInteger()) return IntPow(a, b.q);
    if (a.exact && b.exact) {
      // a^(p/q): exact when a is a perfect q-th power.
      mpz_srcptr den = mpq_denref(b.q.get());
      if (mpz_cmp_ui(den, 64) <= 0) {
        Value index;
        index.q = Rational(static_cast<long>(mpz_get_ui(den)));
        SFPO_ASSIGN_OR_RETURN(Value root, Root(a, index));
        if (root.exact) {
          Rational p;
          mpz_set(mpq_numref(p.get()), mpq_numref(b.q.get()));
          return IntPow(root, p);
        }
      }
    }
    double x = a.AsDouble();
    double y = b.AsDouble();
    if (std::fabs(y) > static_cast<double>(budget_->limits().max_exponent) &&
        std::fabs(x) > 1.0) {
      return BoundExceeded("exponent_too_large", "an exponent exceeds the limit");
    }
    if (x < 0 && std::floor(y) != y) return Undefined("a negative number to a fractional power");
    if (x == 0 && y <= 0) return Undefined("zero to a non-positive power");
    return Finite(std::pow(x, y));
  }

  absl::StatusOr<Value> Root(const Value& x, const Value& index) {
    if (!index.exact || !index.q.IsInteger() || index.q.Sign() <= 0 ||
        mpz_cmp_ui(mpq_numref(index.q.get()), 64) > 0) {
      double k = index.AsDouble();
      if (k == 0) return Undefined("a zeroth root");
      double v = x.AsDouble();
      if (v < 0) return Undefined("a root of a negative number");
      return Finite(std::pow(v, 1.0 / k));
    }
    unsigned long k = mpz_get_ui(mpq_numref(index.q.get()));
    if (x.exact) {
      int sign = x.q.Sign();
      if (sign < 0 && k % 2 == 0) return Undefined("an even root of a negative number");
      mpz_t num, den;
      mpz_init(num);
      mpz_init(den);
      mpz_abs(num, mpq_numref(x.q.get()));
      int exact_num = mpz_root(num, num, k);
      int exact_den = mpz_root(den, mpq_denref(x.q.get()), k);
      Value v;
      bool exact = exact_num != 0 && exact_den != 0;
      if (exact) {
        mpz_set(mpq_numref(v.q.get()), num);
        mpz_set(mpq_denref(v.q.get()), den);
        mpq_canonicalize(v.q.get());
        if (sign < 0) mpq_neg(v.q.get(), v.q.get());
        v.decimal = x.decimal;
      }
      mpz_clear(num);
      mpz_clear(den);
      if (exact) return v;
    }
    double d = x.AsDouble();
    if (d < 0 && k % 2 == 0) return Undefined("an even root of a negative number");
    double r = d < 0 ? -std::pow(-d, 1.0 / k) : std::pow(d, 1.0 / k);
    return Finite(r);
  }

  absl::StatusOr<Value> Function(const std::string& name, const Value& x, double base) {
    // Exact shortcuts keep "ln 1", "sin 0" exact.
    if (x.exact && x.q.IsZero() &&
        (name == "sin" || name == "tan" || name == "arcsin" || name == "arctan" ||
         name == "sinh" || name == "tanh")) {
      return Value();
    }
    double v = x.AsDouble();
    if (name == "sin") return Finite(std::sin(v));
    if (name == "cos") return Finite(std::cos(v));
    if (name == "tan") return Finite(std::tan(v));
    if (name == "sec") return Finite(1.0 / std::cos(v));
    if (name == "csc") return Finite(1.0 / std::sin(v));
    if (name == "cot") return Finite(1.0 / std::tan(v));
    if (name == "arcsin") {
      if (v < -1 || v > 1) return Undefined("arcsin out of domain");
      return Finite(std::asin(v));
    }
    if (name == "arccos") {
      if (v < -1 || v > 1) return Undefined("arccos out of domain");
      return Finite(std::acos(v));
    }
    if (name == "arctan") return Finite(std::atan(v));
    if (name == "sinh") return Finite(std::sinh(v));
    if (name == "cosh") return Finite(std::cosh(v));
    if (name == "tanh") return Finite(std::tanh(v));
    if (name == "exp") {
      if (x.exact && x.q.IsZero()) {
        Value one;
        one.q = Rational(1);
        return one;
      }
      if (v > 700) return BoundExceeded("exponent_too_large", "exp argument too large");
      return Finite(std::exp(v));
    }
    if (name == "ln" || name == "log") {
      if (v <= 0) return Undefined("log of a non-positive number");
      if (x.exact && mpq_cmp_ui(x.q.get(), 1, 1) == 0) return Value();
      if (base != 0.0) {
        if (base <= 0 || base == 1) return Undefined("bad logarithm base");
        return Finite(std::log(v) / std::log(base));
      }
      return Finite(std::log(v));
    }
    return absl::FailedPreconditionError(absl::StrCat("unknown function ", name));
  }

  const Ast& ast_;
  const Assignment& vars_;
  uint32_t pm_mask_;
  const EvalOptions& options_;
  Budget* budget_;
  int pm_index_ = 0;
};

}  // namespace

absl::StatusOr<Value> Evaluate(const Ast& ast, int id, const Assignment& vars, uint32_t pm_mask,
                               const EvalOptions& options, Budget* budget) {
  // Bit 31 is the caller's marker; only the low bits pick signs (at most 31 \pm nodes).
  return Evaluator(ast, vars, pm_mask & 0x7FFFFFFFu, options, budget).Eval(id, 0);
}

bool IsOverflow(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange && status.message() == kOverflow;
}

absl::StatusOr<Value> Combine(char op, const Value& a, const Value& b, Budget* budget) {
  Ast empty;
  Assignment none;
  EvalOptions options;
  Evaluator e(empty, none, 0, options, budget);
  return e.Apply(op, a, b);
}

bool ValuesEqual(const Value& a, const Value& b, double rel_tol) {
  if (a.exact && b.exact) {
    if (a.q == b.q) return true;
    bool rounded_decimal = (a.decimal && !b.decimal && !b.q.IsTerminatingDecimal()) ||
                           (b.decimal && !a.decimal && !a.q.IsTerminatingDecimal());
    if (!rounded_decimal) return false;
  }
  double x = a.AsDouble();
  double y = b.AsDouble();
  if (!std::isfinite(x) || !std::isfinite(y)) return false;
  double diff = std::fabs(x - y);
  if (diff <= 1e-12) return true;
  return diff <= rel_tol * std::max(std::fabs(x), std::fabs(y));
}

}  // namespace sfpo
