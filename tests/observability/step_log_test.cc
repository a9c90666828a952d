#include "services/learner/step_log.h"

#include <unistd.h>

#include <cmath>
#include <limits>

#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/subprocess.h"

namespace sfpo {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

StepRecord Record(int64_t step) {
  StepRecord r;
  r.step = step;
  r.policy_version = step;
  r.rollouts_total = 16 * step;
  r.wallclock_s = 1.5 * static_cast<double>(step);
  r.reward_mean = 0.25;
  r.train_accuracy = 0.5;
  r.entropy = 1.75;
  r.entropy_zscore = std::numeric_limits<double>::quiet_NaN();
  r.sfpo_active = true;
  r.seconds = {{"wait_batch", 0.5}, {"fast", 0.25}, {"slow", 0.125}, {"publish", 0.01}};
  r.ledger.leased = 20;
  r.ledger.scored = 18;
  r.ledger.trained = 16;
  r.ledger.in_flight = 2;
  return r;
}

TEST(StepRecordToJsonTest, WritesTheFieldsTheDesignLists) {
  StepRecord r = Record(3);
  r.accuracy = 0.375;
  const nlohmann::json j = nlohmann::json::parse(StepRecordToJson(r));
  EXPECT_EQ(j["step"], 3);
  EXPECT_EQ(j["policy_version"], 3);
  EXPECT_EQ(j["rollouts_total"], 48);
  EXPECT_EQ(j["wallclock_s"], 4.5);
  EXPECT_EQ(j["reward_mean"], 0.25);
  EXPECT_EQ(j["accuracy"], 0.375);
  EXPECT_EQ(j["entropy"], 1.75);
  EXPECT_EQ(j["sfpo_active"], true);
  EXPECT_EQ(
      j["seconds"],
      (nlohmann::json{{"wait_batch", 0.5}, {"fast", 0.25}, {"slow", 0.125}, {"publish", 0.01}}));
  EXPECT_EQ(j["samples"]["scored"], 18);
  EXPECT_EQ(j["samples"]["in_flight"], 2);
}

TEST(StepRecordToJsonTest, LeavesAccuracyOutWhenNotEvaluatedAndWritesNanAsNull) {
  const nlohmann::json j = nlohmann::json::parse(StepRecordToJson(Record(1)));
  EXPECT_FALSE(j.contains("accuracy"));
  EXPECT_FALSE(j.contains("accuracy_greedy"));
  EXPECT_TRUE(j["entropy_zscore"].is_null());
}

TEST(StepLogTest, AppendsOneLinePerRecord) {
  const std::string dir = testing::MakeTempDir() + "/nested/run";
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<StepLog> log, StepLog::Open(dir, /*append=*/false));
  SFPO_ASSERT_OK(log->Append(Record(1)));
  SFPO_ASSERT_OK(log->Append(Record(2)));
  const std::vector<std::string> lines =
      absl::StrSplit(testing::ReadFile(dir + "/steps.jsonl"), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["step"], 2);
}

TEST(StepLogTest, UnopenableDirectoryIsUnavailableNamingThePath) {
  const std::string file = testing::MakeTempDir() + "/plain_file";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  EXPECT_THAT(StepLog::Open(file + "/run", /*append=*/false),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(file)));
}

TEST(ProgressLineTest, ShowsStepVersionRolloutsRewardAccuracyModeStagesAndEta) {
  StepRecord r = Record(2);
  r.accuracy = 0.5;
  const std::string line = ProgressLine(r, 10, 125);
  EXPECT_THAT(line, StartsWith("step 2/10 v2 rollouts=32 reward=0.250 "));
  EXPECT_THAT(line, HasSubstr("eval_acc=0.500"));
  EXPECT_THAT(line, HasSubstr(" SFPO "));
  EXPECT_THAT(line, HasSubstr("wait_batch=0.50"));
  EXPECT_THAT(line, EndsWith("eta 2m05s"));
  r.sfpo_active = false;
  EXPECT_THAT(ProgressLine(r, 10, 0), HasSubstr(" GRPO "));
  EXPECT_THAT(ProgressLine(r, 10, 0), Not(HasSubstr("\n")));
}

TEST(ProgressOutputTest, IsAPlainLineWhenNotATerminal) {
  EXPECT_EQ(ProgressOutput("step 1/2", /*terminal=*/false, /*last=*/false), "step 1/2\n");
  EXPECT_EQ(ProgressOutput("step 2/2", /*terminal=*/false, /*last=*/true), "step 2/2\n");
}

TEST(ProgressOutputTest, RewritesInPlaceOnATerminalAndEndsTheLastLine) {
  EXPECT_EQ(ProgressOutput("step 1/2", /*terminal=*/true, /*last=*/false), "\r\033[Kstep 1/2");
  EXPECT_EQ(ProgressOutput("step 2/2", /*terminal=*/true, /*last=*/true), "\r\033[Kstep 2/2\n");
}

}  // namespace
}  // namespace sfpo
