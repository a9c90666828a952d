// GoogleTest matchers for absl::Status / absl::StatusOr (Abseil 20220623 ships none).
#ifndef SFPO_COMMON_STATUS_MATCHERS_H_
#define SFPO_COMMON_STATUS_MATCHERS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status.h"

namespace sfpo {
namespace testing_internal {
inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace testing_internal

// EXPECT_THAT(DoIt(), IsOk());
MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::sfpo::testing_internal::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

// EXPECT_THAT(DoIt(), StatusIs(absl::StatusCode::kNotFound));
MATCHER_P(StatusIs, code, "") {
  const absl::Status& s = ::sfpo::testing_internal::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

// EXPECT_THAT(DoIt(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key")));
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = ::sfpo::testing_internal::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::Matches(message_matcher)(std::string(s.message()));
}
}  // namespace sfpo

#define SFPO_ASSERT_OK(expr) ASSERT_THAT((expr), ::sfpo::IsOk())
#define SFPO_EXPECT_OK(expr) EXPECT_THAT((expr), ::sfpo::IsOk())
// SFPO_ASSERT_OK_AND_ASSIGN(auto x, MakeX());
#define SFPO_ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                  \
  SFPO_ASSERT_OK_AND_ASSIGN_IMPL_(SFPO_STATUS_CONCAT_(sfpo_test_so_, __LINE__), lhs, rexpr)
#define SFPO_ASSERT_OK_AND_ASSIGN_IMPL_(so, lhs, rexpr) \
  auto so = (rexpr);                                    \
  ASSERT_TRUE(so.ok()) << so.status().ToString();       \
  lhs = std::move(so).value()

#endif  // SFPO_COMMON_STATUS_MATCHERS_H_
