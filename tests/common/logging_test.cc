#include "common/logging.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

using ::testing::MatchesRegex;

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = MinLogLevel(); }
  void TearDown() override { SetMinLogLevel(saved_); }

 private:
  LogLevel saved_ = LogLevel::kInfo;
};

// One log line: level letter, HH:MM:SS.mmm (UTC), file:line, then the message.
constexpr char kLinePrefix[] = "[DIWE][0-9][0-9]:[0-9][0-9]:[0-9][0-9]\\.[0-9][0-9][0-9] "
                               "logging_test\\.cc:[0-9]+\\] ";

TEST_F(LoggingTest, WritesOneLineWithLevelTimeAndLocation) {
  SetMinLogLevel(LogLevel::kInfo);
  ::testing::internal::CaptureStderr();
  SFPO_LOG(INFO) << "listening on " << 42;
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, MatchesRegex(std::string(kLinePrefix) + "listening on 42\n"));
  EXPECT_EQ(out[0], 'I');
}

TEST_F(LoggingTest, UsesTheLetterOfEachLevel) {
  SetMinLogLevel(LogLevel::kDebug);
  ::testing::internal::CaptureStderr();
  SFPO_LOG(DEBUG) << "d";
  SFPO_LOG(INFO) << "i";
  SFPO_LOG(WARNING) << "w";
  SFPO_LOG(ERROR) << "e";
  const std::vector<std::string> lines =
      absl::StrSplit(::testing::internal::GetCapturedStderr(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0][0], 'D');
  EXPECT_EQ(lines[1][0], 'I');
  EXPECT_EQ(lines[2][0], 'W');
  EXPECT_EQ(lines[3][0], 'E');
}

TEST_F(LoggingTest, DropsMessagesBelowTheMinimumLevelWithoutEvaluatingThem) {
  SetMinLogLevel(LogLevel::kWarning);
  EXPECT_EQ(MinLogLevel(), LogLevel::kWarning);
  int evaluated = 0;
  ::testing::internal::CaptureStderr();
  SFPO_LOG(DEBUG) << ++evaluated;
  SFPO_LOG(INFO) << ++evaluated;
  SFPO_LOG(WARNING) << "kept " << ++evaluated;
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(evaluated, 1);
  EXPECT_THAT(out, MatchesRegex(std::string(kLinePrefix) + "kept 1\n"));
}

TEST_F(LoggingTest, BindsToTheIfWithoutStealingAnElse) {
  SetMinLogLevel(LogLevel::kInfo);
  bool else_taken = false;
  ::testing::internal::CaptureStderr();
  if (false)
    SFPO_LOG(INFO) << "never";
  else
    else_taken = true;
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_TRUE(else_taken);
}

TEST_F(LoggingTest, LinesFromManyThreadsDoNotInterleave) {
  SetMinLogLevel(LogLevel::kInfo);
  constexpr int kThreads = 4;
  constexpr int kLinesPerThread = 100;
  const std::string payload(200, 'x');
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLinesPerThread; ++i) SFPO_LOG(INFO) << "t" << t << " " << payload;
    });
  }
  for (auto& th : threads) th.join();
  const std::vector<std::string> lines =
      absl::StrSplit(::testing::internal::GetCapturedStderr(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLinesPerThread));
  for (const std::string& line : lines) {
    ASSERT_THAT(line, MatchesRegex(std::string(kLinePrefix) + "t[0-3] x{200}"));
  }
}

}  // namespace
}  // namespace sfpo
