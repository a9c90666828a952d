#include "services/reward/rational.h"

#include <cmath>
#include <string>

namespace sfpo {

double Rational::ToDouble() const {
  // Through mantissa/exponent pairs so that huge numerators and denominators still divide.
  long num_exp = 0;
  long den_exp = 0;
  double num = mpz_get_d_2exp(&num_exp, mpq_numref(q_));
  double den = mpz_get_d_2exp(&den_exp, mpq_denref(q_));
  if (num == 0.0) return 0.0;
  long exp = num_exp - den_exp;
  if (exp > 2000) return num > 0 ? HUGE_VAL : -HUGE_VAL;
  if (exp < -2000) return 0.0;
  return std::ldexp(num / den, static_cast<int>(exp));
}

std::string Rational::ToString() const {
  std::string out(mpz_sizeinbase(mpq_numref(q_), 10) + mpz_sizeinbase(mpq_denref(q_), 10) + 3,
                  '\0');
  mpq_get_str(out.data(), 10, q_);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

bool Rational::IsTerminatingDecimal() const {
  mpz_t den, factor;
  mpz_init_set(den, mpq_denref(q_));
  mpz_init_set_ui(factor, 2);
  mpz_remove(den, den, factor);
  mpz_set_ui(factor, 5);
  mpz_remove(den, den, factor);
  bool terminating = mpz_cmp_ui(den, 1) == 0;
  mpz_clear(den);
  mpz_clear(factor);
  return terminating;
}

bool ParseDecimal(absl::string_view text, int64_t exponent, Rational* out) {
  std::string digits;
  digits.reserve(text.size());
  int64_t frac_digits = 0;
  bool seen_dot = false;
  for (char c : text) {
    if (c == '.') {
      if (seen_dot) return false;
      seen_dot = true;
    } else if (c >= '0' && c <= '9') {
      digits.push_back(c);
      if (seen_dot) ++frac_digits;
    } else {
      return false;
    }
  }
  if (digits.empty()) return false;
  mpz_ptr num = mpq_numref(out->get());
  mpz_ptr den = mpq_denref(out->get());
  if (mpz_set_str(num, digits.c_str(), 10) != 0) return false;
  mpz_set_ui(den, 1);
  int64_t shift = exponent - frac_digits;
  if (shift > 0) {
    mpz_t p;
    mpz_init(p);
    mpz_ui_pow_ui(p, 10, static_cast<unsigned long>(shift));
    mpz_mul(num, num, p);
    mpz_clear(p);
  } else if (shift < 0) {
    mpz_ui_pow_ui(den, 10, static_cast<unsigned long>(-shift));
  }
  mpq_canonicalize(out->get());
  return true;
}

}  // namespace sfpo
