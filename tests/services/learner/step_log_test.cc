#include "services/learner/step_log.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

std::vector<nlohmann::json> ReadLog(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string TempDir() {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("step_log_test_" + std::to_string(::getpid()) + "_" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(StepLogTest, RecordsCarryTheDesignsFieldsAndNanBecomesNull) {
  StepRecord r;
  r.step = 3;
  r.policy_version = 3;
  r.rollouts_total = 384;
  r.wallclock_s = 12.5;
  r.reward_mean = 0.25;
  r.accuracy = 0.4;
  r.entropy = 0.7;
  r.entropy_zscore = std::nan("");
  r.sfpo_active = true;
  r.seconds["fast"] = 1.5;
  r.ledger.trained = 384;
  nlohmann::json j = nlohmann::json::parse(StepRecordToJson(r));
  for (const char* key : {"step", "policy_version", "rollouts_total", "wallclock_s", "reward_mean",
                          "accuracy", "entropy", "sfpo_active", "seconds", "samples"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_TRUE(j["entropy_zscore"].is_null());
  EXPECT_EQ(j["seconds"]["fast"], 1.5);
  EXPECT_EQ(j["samples"]["trained"], 384);
  EXPECT_FALSE(j.contains("accuracy_greedy"));
}

TEST(StepLogTest, RecordsCarryTheDataParallelFigures) {
  StepRecord r;
  nlohmann::json one = nlohmann::json::parse(StepRecordToJson(r));
  EXPECT_EQ(one["ranks"], 1);
  EXPECT_FALSE(one.contains("rank_step_seconds"));
  r.ranks = 2;
  r.all_reduce_seconds = 0.25;
  r.all_reduce_bytes = 4096;
  r.rank_step_seconds = {1.5, 1.25};
  r.param_delta_norm = 0.5;
  nlohmann::json j = nlohmann::json::parse(StepRecordToJson(r));
  EXPECT_EQ(j["ranks"], 2);
  EXPECT_EQ(j["all_reduce_seconds"], 0.25);
  EXPECT_EQ(j["all_reduce_bytes"], 4096);
  EXPECT_EQ(j["rank_step_seconds"], nlohmann::json::array({1.5, 1.25}));
  EXPECT_EQ(j["param_delta_norm"], 0.5);
}

TEST(StepLogTest, FreshRunStartsAnewAndResumeDropsRepeatedSteps) {
  const std::string dir = TempDir();
  {
    SFPO_ASSERT_OK_AND_ASSIGN(auto log, StepLog::Open(dir, /*append=*/false));
    for (int s = 1; s <= 5; ++s) {
      StepRecord r;
      r.step = s;
      SFPO_ASSERT_OK(log->Append(r));
    }
  }
  {
    std::ofstream torn(dir + "/steps.jsonl", std::ios::app);
    torn << "{\"step\": 6, \"polic";  // a crash mid-line
  }
  {
    // Resumed from the checkpoint of step 3: steps 4.. will be recomputed.
    SFPO_ASSERT_OK_AND_ASSIGN(auto log, StepLog::Open(dir, /*append=*/true));
    SFPO_ASSERT_OK(log->TruncateAfter(3));
    StepRecord r;
    r.step = 4;
    SFPO_ASSERT_OK(log->Append(r));
  }
  std::vector<nlohmann::json> records = ReadLog(dir + "/steps.jsonl");
  ASSERT_EQ(records.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(records[i]["step"], i + 1);
  {
    SFPO_ASSERT_OK_AND_ASSIGN(auto log, StepLog::Open(dir, /*append=*/false));
  }
  EXPECT_TRUE(ReadLog(dir + "/steps.jsonl").empty());
  std::filesystem::remove_all(dir);
}

TEST(StepLogTest, ProgressLineNamesStepAlgorithmAndStages) {
  StepRecord r;
  r.step = 7;
  r.policy_version = 7;
  r.rollouts_total = 896;
  r.sfpo_active = false;
  r.seconds["slow"] = 0.25;
  const std::string line = ProgressLine(r, 10, 65);
  EXPECT_THAT(line, ::testing::HasSubstr("step 7/10"));
  EXPECT_THAT(line, ::testing::HasSubstr("GRPO"));
  EXPECT_THAT(line, ::testing::HasSubstr("slow=0.25"));
  EXPECT_THAT(line, ::testing::HasSubstr("eta 1m05s"));
}

}  // namespace
}  // namespace sfpo
