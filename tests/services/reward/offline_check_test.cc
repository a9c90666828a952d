#include "services/reward/offline_check.h"

#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

std::vector<nlohmann::json> RunLines(const std::string& input, const std::string& task = "math") {
  std::istringstream in(input);
  std::ostringstream out;
  OfflineCheckOptions options;
  options.task = task;
  CheckJsonLines(in, out, options);
  std::vector<nlohmann::json> rows;
  std::istringstream lines(out.str());
  std::string line;
  while (std::getline(lines, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

TEST(OfflineCheck, WritesOneVerdictPerLineInOrder) {
  auto rows = RunLines(
      "{\"gold\": \"\\\\frac{1}{2}\", \"prediction\": \"so \\\\boxed{0.5}\"}\n"
      "{\"gold\": 3, \"prediction\": \"The answer is 4.\"}\n"
      "{\"gold\": \"3\", \"prediction\": \"no idea\"}\n"
      "{\"gold\": \"3 5 7=22\", \"prediction\": \"3*5+7\", \"task\": \"countdown3\"}\n");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["verdict"], "correct");
  EXPECT_EQ(rows[0]["extracted"], "0.5");
  EXPECT_EQ(rows[1]["verdict"], "incorrect");
  EXPECT_EQ(rows[1]["extracted"], "4");
  EXPECT_EQ(rows[2]["verdict"], "unparseable");
  EXPECT_FALSE(rows[2]["reason"].get<std::string>().empty());
  EXPECT_EQ(rows[3]["verdict"], "correct");
  for (const auto& row : rows) {
    EXPECT_TRUE(row.contains("verdict") && row.contains("extracted") && row.contains("reason"));
  }
}

TEST(OfflineCheck, MalformedLinesGiveErrorVerdictsNamingTheLine) {
  auto rows = RunLines(
      "not json\n"
      "{\"gold\": \"1\"}\n"
      "\n"
      "[1, 2]\n"
      "{\"gold\": \"1\", \"prediction\": [\"1\"]}\n"
      "{\"gold\": \"1\", \"prediction\": \"\\\\boxed{1}\", \"task\": 7}\n"
      "{\"gold\": \"1\", \"prediction\": \"\\\\boxed{1}\"}\n");
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_EQ(rows[0]["verdict"], "error");
  EXPECT_THAT(rows[0]["reason"].get<std::string>(), HasSubstr("line 1: not a JSON object"));
  EXPECT_THAT(rows[1]["reason"].get<std::string>(), HasSubstr("line 2: missing string \"prediction\""));
  EXPECT_THAT(rows[2]["reason"].get<std::string>(), HasSubstr("line 3"));
  EXPECT_THAT(rows[3]["reason"].get<std::string>(), HasSubstr("line 4"));
  EXPECT_THAT(rows[4]["reason"].get<std::string>(), HasSubstr("line 5"));
  EXPECT_THAT(rows[5]["reason"].get<std::string>(), HasSubstr("\"task\" must be a string"));
  EXPECT_EQ(rows[6]["verdict"], "correct");
}

TEST(OfflineCheck, InvalidUtf8InsideALineIsAnErrorVerdict) {
  auto rows = RunLines("{\"gold\": \"1\", \"prediction\": \"\xff\"}\n");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["verdict"], "error");
}

TEST(OfflineCheck, UsesTheDefaultTaskForLinesWithoutOne) {
  auto rows = RunLines("{\"gold\": \"4690\", \"prediction\": \"4690\"}\n"
                       "{\"gold\": \"4690\", \"prediction\": \"\\\\boxed{4690}\"}\n",
                       "addition");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["verdict"], "correct");
  EXPECT_EQ(rows[1]["verdict"], "unparseable");
}

}  // namespace
}  // namespace sfpo
