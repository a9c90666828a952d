// A small owning wrapper around GMP's mpq_t (exact rationals). Value semantics; not thread-safe
// per object. Used by the math evaluator; callers bound sizes before operating.
#ifndef SFPO_SERVICES_REWARD_RATIONAL_H_
#define SFPO_SERVICES_REWARD_RATIONAL_H_

#include <gmp.h>

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

namespace sfpo {

class Rational {
 public:
  Rational() { mpq_init(q_); }
  explicit Rational(long value) {
    mpq_init(q_);
    mpq_set_si(q_, value, 1);
  }
  Rational(long num, unsigned long den) {
    mpq_init(q_);
    mpq_set_si(q_, num, den);
    mpq_canonicalize(q_);
  }
  ~Rational() { mpq_clear(q_); }
  Rational(const Rational& other) {
    mpq_init(q_);
    mpq_set(q_, other.q_);
  }
  Rational& operator=(const Rational& other) {
    if (this != &other) mpq_set(q_, other.q_);
    return *this;
  }
  Rational(Rational&& other) noexcept {
    mpq_init(q_);
    mpq_swap(q_, other.q_);
  }
  Rational& operator=(Rational&& other) noexcept {
    mpq_swap(q_, other.q_);
    return *this;
  }

  mpq_ptr get() { return q_; }
  mpq_srcptr get() const { return q_; }

  bool IsZero() const { return mpq_sgn(q_) == 0; }
  int Sign() const { return mpq_sgn(q_); }
  bool IsInteger() const { return mpz_cmp_ui(mpq_denref(q_), 1) == 0; }
  // Bits of numerator plus denominator: the size bound the evaluator checks.
  int64_t Bits() const {
    return static_cast<int64_t>(mpz_sizeinbase(mpq_numref(q_), 2) +
                                mpz_sizeinbase(mpq_denref(q_), 2));
  }
  // Nearest double; +-inf when out of range.
  double ToDouble() const;
  // "n" or "n/d" in lowest terms.
  std::string ToString() const;
  // Terminating decimal expansion exists (denominator has only factors 2 and 5).
  bool IsTerminatingDecimal() const;

  friend bool operator==(const Rational& a, const Rational& b) { return mpq_equal(a.q_, b.q_); }
  friend bool operator!=(const Rational& a, const Rational& b) { return !(a == b); }

 private:
  mpq_t q_;
};

// Parses an unsigned decimal literal "123", "1.50", ".5", "2.5e-3" (digits only, at most one
// '.', optional exponent) exactly. False when malformed. Callers bound the digit count and
// exponent size before calling.
bool ParseDecimal(absl::string_view text, int64_t exponent, Rational* out);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_RATIONAL_H_
