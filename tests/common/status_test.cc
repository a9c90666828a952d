#include "common/status.h"

#include <memory>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

absl::Status FailIfNegative(int x, int* calls) {
  ++*calls;
  if (x < 0) return absl::InvalidArgumentError("negative");
  return absl::OkStatus();
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<std::unique_ptr<int>> Boxed(int x) {
  if (x == 0) return absl::NotFoundError("zero");
  return std::make_unique<int>(x);
}

// Runs both checks; reports how far it got through `reached`.
absl::Status TwoChecks(int a, int b, int* calls, bool* reached_end) {
  SFPO_RETURN_IF_ERROR(FailIfNegative(a, calls));
  SFPO_RETURN_IF_ERROR(FailIfNegative(b, calls));
  *reached_end = true;
  return absl::OkStatus();
}

absl::StatusOr<int> Quarter(int x) {
  SFPO_ASSIGN_OR_RETURN(int half, Half(x));
  SFPO_ASSIGN_OR_RETURN(int quarter, Half(half));  // Two uses in one scope must not clash.
  return quarter;
}

absl::StatusOr<int> Unbox(int x) {
  SFPO_ASSIGN_OR_RETURN(std::unique_ptr<int> box, Boxed(x));  // Move-only values.
  return *box + 1;
}

absl::Status AssignToExisting(int x, int* out) {
  SFPO_ASSIGN_OR_RETURN(*out, Half(x));
  return absl::OkStatus();
}

TEST(ReturnIfErrorTest, ContinuesWhenOk) {
  int calls = 0;
  bool reached_end = false;
  EXPECT_THAT(TwoChecks(1, 2, &calls, &reached_end), IsOk());
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(reached_end);
}

TEST(ReturnIfErrorTest, ReturnsTheFirstErrorAndStopsThere) {
  int calls = 0;
  bool reached_end = false;
  EXPECT_THAT(TwoChecks(-1, 2, &calls, &reached_end),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(reached_end);
}

TEST(ReturnIfErrorTest, EvaluatesItsArgumentOnce) {
  int calls = 0;
  bool reached_end = false;
  SFPO_ASSERT_OK(TwoChecks(0, 0, &calls, &reached_end));
  EXPECT_EQ(calls, 2);
}

TEST(AssignOrReturnTest, AssignsTheValue) {
  SFPO_ASSERT_OK_AND_ASSIGN(int q, Quarter(12));
  EXPECT_EQ(q, 3);
}

TEST(AssignOrReturnTest, ReturnsTheErrorOfTheFailingStep) {
  EXPECT_THAT(Quarter(7), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd")));
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd")));
}

TEST(AssignOrReturnTest, MovesMoveOnlyValues) {
  SFPO_ASSERT_OK_AND_ASSIGN(int v, Unbox(41));
  EXPECT_EQ(v, 42);
  EXPECT_THAT(Unbox(0), StatusIs(absl::StatusCode::kNotFound, HasSubstr("zero")));
}

TEST(AssignOrReturnTest, AssignsToAnExistingLvalue) {
  int out = -1;
  SFPO_ASSERT_OK(AssignToExisting(8, &out));
  EXPECT_EQ(out, 4);
  EXPECT_THAT(AssignToExisting(3, &out), Not(IsOk()));
  EXPECT_EQ(out, 4);  // Untouched on error.
}

TEST(StatusMatchersTest, StatusIsChecksCodeAndMessage) {
  const absl::Status s = absl::NotFoundError("file 'x' missing");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("'x'")));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'x'"))));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kNotFound, HasSubstr("'y'"))));
  EXPECT_THAT(absl::StatusOr<int>(s), StatusIs(absl::StatusCode::kNotFound, HasSubstr("x")));
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
}

TEST(CheckDeathTest, CrashesNamingTheBrokenCondition) {
  EXPECT_DEATH(SFPO_CHECK(1 + 1 == 3), "SFPO_CHECK failed: 1 \\+ 1 == 3");
  EXPECT_DEATH(SFPO_CHECK_OK(absl::InternalError("boom")), "SFPO_CHECK_OK failed: .*boom");
}

}  // namespace
}  // namespace sfpo
