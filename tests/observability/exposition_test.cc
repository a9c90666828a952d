#include "tests/observability/exposition.h"

#include <cmath>

#include "absl/status/status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

TEST(ParseExpositionTest, ReadsFamiliesSamplesLabelsAndSpecialValues) {
  SFPO_ASSERT_OK_AND_ASSIGN(Exposition e, ParseExposition(R"(# HELP a_total Things "done"
# TYPE a_total counter
a_total{state="x"} 3
a_total{state="y",why="say \"hi\"\\n"} 4 1700000000000
# TYPE g gauge
g Nan
# TYPE h_seconds histogram
h_seconds_bucket{le="0.5"} 1
h_seconds_bucket{le="+Inf"} 2
h_seconds_sum 0.75
h_seconds_count 2
)"));
  EXPECT_EQ(e.families.size(), 3u);
  EXPECT_EQ(e.families["a_total"].type, "counter");
  EXPECT_EQ(e.families["a_total"].help, "Things \"done\"");
  EXPECT_THAT(e.Value("a_total", {{"state", "x"}}), Optional(3.0));
  EXPECT_THAT(e.Value("a_total", {{"state", "y"}, {"why", "say \"hi\"\\n"}}), Optional(4.0));
  EXPECT_EQ(e.Value("a_total"), std::nullopt);
  EXPECT_EQ(e.Sum("a_total"), 7.0);
  EXPECT_THAT(e.LabelValues("a_total", "state"), ElementsAre("x", "y"));
  ASSERT_TRUE(e.Value("g").has_value());
  EXPECT_TRUE(std::isnan(*e.Value("g")));
  EXPECT_THAT(e.Value("h_seconds_bucket", {{"le", "+Inf"}}), Optional(2.0));
  EXPECT_EQ(e.FamilyOf("h_seconds_count"), "h_seconds");
  EXPECT_EQ(e.FamilyOf("g_count"), "");
}

TEST(ParseExpositionTest, RejectsSamplesOfUndeclaredFamilies) {
  EXPECT_THAT(ParseExposition("# TYPE a counter\nb 1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  // _count belongs to a histogram only.
  EXPECT_THAT(ParseExposition("# TYPE a gauge\na_count 1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no declared family")));
}

TEST(ParseExpositionTest, RejectsMalformedLines) {
  for (const char* bad :
       {"# TYPE a counter\na{x=\"1\" 1\n", "# TYPE a counter\na{x=1} 1\n",
        "# TYPE a counter\na one\n", "# TYPE a counter\na\n",
        "# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n", "# TYPE a thing\n",
        "# TYPE a counter\n# TYPE a counter\n", "# TYPE a counter\na 1 2 3\n", "1a 1\n"}) {
    EXPECT_THAT(ParseExposition(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(ParseMetricListTest, ReadsNamesTypesRolesAndLabelValues) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::vector<ListedMetric> list, ParseMetricList(R"(
# a comment
a_total   counter learner  state=x|y   # trailing comment
b_seconds histogram reward reason=*
)"));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "a_total");
  EXPECT_EQ(list[0].type, "counter");
  EXPECT_EQ(list[0].role, "learner");
  EXPECT_THAT(list[0].labels["state"], Optional(std::set<std::string>{"x", "y"}));
  EXPECT_EQ(list[1].role, "reward");
  ASSERT_EQ(list[1].labels.count("reason"), 1u);
  EXPECT_EQ(list[1].labels["reason"], std::nullopt);
}

TEST(ParseMetricListTest, RejectsShortLinesUnknownTypesOrRolesAndDuplicates) {
  EXPECT_THAT(ParseMetricList("a counter\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(ParseMetricList("a summary learner\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown type")));
  EXPECT_THAT(ParseMetricList("a gauge trainer\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown role")));
  EXPECT_THAT(ParseMetricList("a gauge learner\n\na gauge reward\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 3")));
}

}  // namespace
}  // namespace testing
}  // namespace sfpo
