// The verifier's case table: verifier_cases.jsonl (one {"category", "gold", "prediction",
// "want", "task"?} per line) plus hostile inputs generated here (sizes JSON cannot hold
// conveniently, invalid UTF-8). Reports accuracy by category and asserts no false positives.
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "services/reward/verifier.h"

namespace sfpo {
namespace {

struct Case {
  std::string category;
  std::string task;
  std::string gold;
  std::string prediction;
  std::string want;
};

std::vector<Case> LoadTable() {
  std::vector<Case> cases;
  std::ifstream in(SFPO_REWARD_CASES);
  EXPECT_TRUE(in.good()) << "cannot open " << SFPO_REWARD_CASES;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line);
    cases.push_back({j.at("category"), j.value("task", ""), j.at("gold"), j.at("prediction"),
                     j.at("want")});
  }
  return cases;
}

std::vector<Case> HostileCases() {
  std::vector<Case> cases;
  const std::string kHostile = "hostile_generated";
  std::string million(1000000, '7');
  cases.push_back({kHostile, "", "7", absl::StrCat("\\boxed{", million, "}"), "error"});
  cases.push_back({kHostile, "", "7", million, "error"});
  cases.push_back({kHostile, "", million, "\\boxed{7}", "error"});
  cases.push_back({kHostile, "", "7", absl::StrCat("\\boxed{", std::string(500, '9'), "}"),
                   "error"});
  cases.push_back({kHostile, "", "5", std::string(1 << 20, 'a') + "\\boxed{5}", "error"});
  cases.push_back({kHostile, "", "5", absl::StrCat("The answer is ", std::string(1 << 20, ' '),
                                                   "\\boxed{5}"),
                   "error"});
  cases.push_back({kHostile, "", "1",
                   absl::StrCat("\\boxed{", std::string(10000, '{'), "1", std::string(10000, '}'),
                                "}"),
                   "error"});
  cases.push_back({kHostile, "", "1",
                   absl::StrCat("The answer is ", std::string(1000, '('), "1",
                                std::string(1000, ')')),
                   "error"});
  cases.push_back({kHostile, "", "1", absl::StrCat(std::string(10000, '{'), "1"), "unparseable"});
  cases.push_back({kHostile, "", "5", "\\boxed{5}\xff\xfe", "error"});
  cases.push_back({kHostile, "", "5", "\\boxed{\xc0\xaf}", "error"});
  cases.push_back({kHostile, "", "\xed\xa0\x80", "\\boxed{5}", "error"});
  cases.push_back({kHostile, "", "5", std::string("\\boxed{5\0}", 10), "unparseable"});
  cases.push_back({kHostile, "countdown3", "3 5 7=22", "3*5+7\xff", "error"});
  std::string deep_power = "2";
  for (int i = 0; i < 60; ++i) deep_power = absl::StrCat("2^{", deep_power, "}");
  cases.push_back({kHostile, "", "4", absl::StrCat("\\boxed{", deep_power, "}"), "error"});
  cases.push_back({kHostile, "", "1", absl::StrCat("\\boxed{", std::string(3000, '-'), "1}"),
                   "error"});
  std::string many;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&many, i, ",");
  cases.push_back({kHostile, "", "1", absl::StrCat("\\boxed{", many, "}"), "error"});
  return cases;
}

TEST(VerifierTable, HasNoFalsePositivesAndHighAccuracy) {
  std::vector<Case> cases = LoadTable();
  std::vector<Case> hostile = HostileCases();
  cases.insert(cases.end(), hostile.begin(), hostile.end());
  ASSERT_GE(cases.size(), 250u);

  VerifierOptions options;
  std::map<std::string, std::pair<int, int>> by_category;  // right, total
  int right = 0;
  int false_positives = 0;
  std::map<std::string, int> want_counts;
  for (const Case& c : cases) {
    // A generous deadline: the table checks verdicts, not speed.
    VerifyResult r = Score({c.task, "", c.prediction, c.gold}, options,
                           absl::Now() + absl::Seconds(5));
    std::string got(VerdictName(r.verdict));
    ++want_counts[c.want];
    auto& cat = by_category[c.category];
    ++cat.second;
    if (got == c.want) {
      ++right;
      ++cat.first;
    } else {
      ADD_FAILURE() << "[" << c.category << "] gold=" << c.gold.substr(0, 80)
                    << " prediction=" << c.prediction.substr(0, 80) << " want=" << c.want
                    << " got=" << got << " extracted=" << r.extracted.substr(0, 80)
                    << " reason=" << r.reason;
    }
    if (got == "correct" && c.want != "correct") ++false_positives;
    EXPECT_EQ(r.verifier_version, kVerifierVersion);
    if (r.verdict == Verdict::kUnparseable || r.verdict == Verdict::kError) {
      EXPECT_FALSE(r.reason.empty()) << c.prediction.substr(0, 80);
    }
  }
  double accuracy = static_cast<double>(right) / cases.size();
  std::printf("verifier table: %d/%zu right (accuracy %.4f), false positives %d\n", right,
              cases.size(), accuracy, false_positives);
  for (const auto& [name, counts] : by_category) {
    std::printf("  %-20s %3d/%3d\n", name.c_str(), counts.first, counts.second);
  }
  for (const auto& [want, n] : want_counts) std::printf("  want %-12s %d\n", want.c_str(), n);
  // Every verdict kind appears in the table.
  EXPECT_GT(want_counts["correct"], 100);
  EXPECT_GT(want_counts["incorrect"], 80);
  EXPECT_GT(want_counts["unparseable"], 10);
  EXPECT_GT(want_counts["error"], 10);
  EXPECT_EQ(false_positives, 0);
  EXPECT_GE(accuracy, 0.97);
}

}  // namespace
}  // namespace sfpo
