// Status helpers that Abseil 20220623 lacks: early-return macros and a crash-on-invariant check.
// Our code throws nothing; anything a peer, file, config or user can cause is an absl::Status.
#ifndef SFPO_COMMON_STATUS_H_
#define SFPO_COMMON_STATUS_H_

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SFPO_STATUS_CONCAT_INNER_(a, b) a##b
#define SFPO_STATUS_CONCAT_(a, b) SFPO_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define SFPO_RETURN_IF_ERROR(expr)                   \
  do {                                               \
    ::absl::Status sfpo_status_ = (expr);            \
    if (!sfpo_status_.ok()) return sfpo_status_;     \
  } while (0)

// `SFPO_ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns x from a StatusOr or returns its
// status.
#define SFPO_ASSIGN_OR_RETURN(lhs, rexpr) \
  SFPO_ASSIGN_OR_RETURN_IMPL_(SFPO_STATUS_CONCAT_(sfpo_statusor_, __LINE__), lhs, rexpr)
#define SFPO_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

// Crashes with a message when a programmer invariant is broken. Never for bad input.
#define SFPO_CHECK(cond)                                                           \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: SFPO_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                \
    }                                                                              \
  } while (0)

// Crashes when `expr` (a Status) is not OK; for results that cannot fail by construction.
#define SFPO_CHECK_OK(expr)                                                          \
  do {                                                                               \
    ::absl::Status sfpo_check_status_ = (expr);                                      \
    if (!sfpo_check_status_.ok()) {                                                  \
      std::fprintf(stderr, "%s:%d: SFPO_CHECK_OK failed: %s\n", __FILE__, __LINE__,  \
                   sfpo_check_status_.ToString().c_str());                           \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#endif  // SFPO_COMMON_STATUS_H_
