// Unit tests of the verifier's parts and options (the case table covers behaviour at large).
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "services/reward/equivalence.h"
#include "services/reward/extract.h"
#include "services/reward/limits.h"
#include "services/reward/math_parser.h"
#include "services/reward/verifier.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

VerifyResult Math(const std::string& completion, const std::string& gold,
                  const VerifierOptions& options = {}) {
  return Score({"math", "", completion, gold}, options, absl::Now() + absl::Seconds(2));
}

TEST(Utf8, AcceptsWellFormedAndRejectsMalformedSequences) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain \xce\xbb \xe2\x88\x9a \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x88"));          // truncated
}

TEST(Budget, ReportsTheDeadlineAsAnErrorVerdict) {
  VerifierOptions options;
  VerifyResult r = Score({"math", "", "\\boxed{1}", "1"}, options, absl::Now() - absl::Seconds(1));
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_EQ(r.error_label, "deadline");
  EXPECT_EQ(r.reward, 0.0);
  // Work that outlasts a tiny budget stops with the same verdict (a long answer, allowed by the
  // limits, so that it cannot be done within the budget even on a fast machine).
  options.limits.max_answer_bytes = 1 << 20;
  std::string poly = "\\boxed{";
  for (int i = 0; i < 3000; ++i) absl::StrAppend(&poly, "x^{", i % 30, "}y^{", i % 7, "}+");
  poly += "1}";
  r = Score({"math", "", poly, "x"}, options, absl::Now() + absl::Microseconds(50));
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_EQ(r.error_label, "deadline");
  EXPECT_THAT(r.reason, HasSubstr("deadline"));
}

TEST(Budget, ErrorLabelsComeFromTheStatus) {
  EXPECT_EQ(ErrorLabel(BoundExceeded("too_deep", "x")), "too_deep");
  EXPECT_EQ(ErrorLabel(absl::DeadlineExceededError("late")), "deadline");
  EXPECT_EQ(ErrorLabel(absl::InternalError("?")), "internal");
  EXPECT_TRUE(IsBoundError(BoundExceeded("a", "b")));
  EXPECT_FALSE(IsBoundError(absl::InvalidArgumentError("parse")));
}

TEST(Limits, EveryBoundGivesAnErrorVerdictWithItsLabel) {
  VerifierOptions options;
  options.limits.max_number_digits = 10;
  options.limits.max_depth = 8;
  options.limits.max_elements = 3;
  options.limits.max_completion_bytes = 100;
  options.limits.max_answer_bytes = 50;
  options.limits.max_exponent = 100;
  options.limits.max_factorial = 20;
  struct Row {
    std::string completion;
    std::string label;
  } rows[] = {
      {"\\boxed{12345678901}", "number_too_large"},
      {"\\boxed{((((((((((1))))))))))}", "too_deep"},
      {"\\boxed{1, 2, 3, 4}", "too_many_elements"},
      {std::string(101, ' '), "input_too_long"},
      {absl::StrCat("\\boxed{", std::string(60, '1'), "}"), "answer_too_long"},
      {"\\boxed{3^{101}}", "exponent_too_large"},
      {"\\boxed{21!}", "number_too_large"},
  };
  for (const Row& row : rows) {
    VerifyResult r = Math(row.completion, "1", options);
    EXPECT_EQ(r.verdict, Verdict::kError) << row.completion;
    EXPECT_EQ(r.error_label, row.label) << row.completion << ": " << r.reason;
  }
  // The same limits on the gold side are errors too, labelled the same way.
  VerifyResult r = Math("\\boxed{1}", "12345678901", options);
  EXPECT_EQ(r.verdict, Verdict::kError);
  EXPECT_THAT(r.reason, HasSubstr("gold answer"));
}

TEST(Limits, ValidationNamesBadOptions) {
  VerifierOptions options;
  options.format_reward = 2;
  EXPECT_THAT(ValidateVerifierOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format_reward")));
  options.format_reward = 0.1;
  SFPO_EXPECT_OK(ValidateVerifierOptions(options));
  options.limits.max_elements = 0;
  EXPECT_THAT(ValidateVerifierOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

TEST(Reward, IsOneForCorrectTheFormatCreditForIncorrectAndZeroOtherwise) {
  VerifierOptions options;
  options.format_reward = 0.1;
  EXPECT_EQ(Math("\\boxed{2}", "2", options).reward, 1.0);
  EXPECT_EQ(Math("\\boxed{3}", "2", options).reward, 0.1);
  EXPECT_EQ(Math("no answer in this text at all", "2", options).reward, 0.0);
  EXPECT_EQ(Math("\\boxed{2^{2^{2^{50}}}}", "2", options).reward, 0.0);
}

absl::StatusOr<Extraction> Extract(const std::string& text, const ExtractOptions& options) {
  VerifyLimits limits;
  Budget budget(limits, absl::Now() + absl::Seconds(1));
  return ExtractAnswer(text, options, &budget);
}

TEST(Extract, MultipleBoxedAnswersFollowTheOption) {
  ExtractOptions options;
  const std::string text = "\\boxed{1} then \\boxed{2} and \\fbox{3}";
  SFPO_ASSERT_OK_AND_ASSIGN(Extraction last, Extract(text, options));
  EXPECT_EQ(last.answer, "3");
  EXPECT_EQ(last.rule, "boxed");
  options.multiple_boxed = MultipleBoxed::kFirst;
  SFPO_ASSERT_OK_AND_ASSIGN(Extraction first, Extract(text, options));
  EXPECT_EQ(first.answer, "1");
  options.multiple_boxed = MultipleBoxed::kAll;
  SFPO_ASSERT_OK_AND_ASSIGN(Extraction all, Extract(text, options));
  EXPECT_EQ(all.answer, "1, 2, 3");
}

TEST(Extract, RulesCanBeSwitchedOffPerDataset) {
  ExtractOptions options;
  options.after_think = false;
  SFPO_ASSERT_OK_AND_ASSIGN(Extraction e, Extract("<think>\\boxed{1}", options));
  EXPECT_EQ(e.answer, "1");
  options.boxed = false;
  SFPO_ASSERT_OK_AND_ASSIGN(e, Extract("\\boxed{1} The answer is 2.", options));
  EXPECT_EQ(e.answer, "2");
  EXPECT_EQ(e.rule, "phrase");
  options.answer_phrases = false;
  options.bare_answer = false;
  EXPECT_THAT(Extract("The answer is 2.", options), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no final answer")));
  options.last_number = true;
  SFPO_ASSERT_OK_AND_ASSIGN(e, Extract("I got 3, then 1,250 apples.", options));
  EXPECT_EQ(e.answer, "1,250");
  EXPECT_EQ(e.rule, "last_number");
}

TEST(Extract, TrimsMathDelimitersAndFullStops) {
  EXPECT_EQ(TrimAnswer("  $\\frac{1}{2}$. "), "\\frac{1}{2}");
  EXPECT_EQ(TrimAnswer("\\(x\\)"), "x");
  EXPECT_EQ(TrimAnswer("3.5."), "3.5");
}

absl::StatusOr<bool> Equal(const std::string& gold, const std::string& pred,
                           const EquivalenceOptions& options) {
  VerifyLimits limits;
  Budget budget(limits, absl::Now() + absl::Seconds(1));
  SFPO_ASSIGN_OR_RETURN(Ast g, ParseAnswer(gold, &budget));
  SFPO_ASSIGN_OR_RETURN(Ast p, ParseAnswer(pred, &budget));
  return Equivalent(g, p, options, &budget);
}

// 1 equivalent, 0 not, -1 a parse or bound error.
int Eq(const std::string& gold, const std::string& pred, const EquivalenceOptions& options) {
  absl::StatusOr<bool> r = Equal(gold, pred, options);
  return r.ok() ? (*r ? 1 : 0) : -1;
}

TEST(Equivalence, PercentModesDisagreeAsDocumented) {
  EquivalenceOptions options;
  EXPECT_EQ(Eq("20\\%", "20", options), 1);
  EXPECT_EQ(Eq("20\\%", "0.2", options), 1);
  options.percent = PercentMode::kValue;
  EXPECT_EQ(Eq("20\\%", "20", options), 0);
  EXPECT_EQ(Eq("20\\%", "0.2", options), 1);
  options.percent = PercentMode::kIgnoreSign;
  EXPECT_EQ(Eq("20\\%", "20", options), 1);
  EXPECT_EQ(Eq("20\\%", "0.2", options), 0);
}

TEST(Equivalence, ListOrderAndAssignmentsFollowTheOptions) {
  EquivalenceOptions options;
  EXPECT_EQ(Eq("1, 2", "2, 1", options), 1);
  EXPECT_EQ(Eq("\\{5\\}", "5", options), 1);
  EXPECT_EQ(Eq("5", "x = 5", options), 1);
  options.unordered_lists = false;
  options.set_matches_scalar = false;
  options.strip_assignment = false;
  EXPECT_EQ(Eq("1, 2", "2, 1", options), 0);
  EXPECT_EQ(Eq("1, 2", "1, 2", options), 1);
  EXPECT_EQ(Eq("\\{5\\}", "5", options), 0);
  EXPECT_EQ(Eq("5", "x = 5", options), 0);
}

TEST(Equivalence, ToleranceAppliesOnlyToInexactValues) {
  EquivalenceOptions options;
  EXPECT_EQ(Eq("\\sqrt{2}", "1.4142136", options), 1);
  EXPECT_EQ(Eq("\\sqrt{2}", "1.4142", options), 0);
  options.rel_tol = 1e-3;
  EXPECT_EQ(Eq("\\sqrt{2}", "1.4142", options), 1);
  EXPECT_EQ(Eq("1001", "1000", options), 0) << "integers are exact";
}

TEST(Parser, RejectsWhatIsNotAnAnswerWithAReason) {
  VerifyLimits limits;
  Budget budget(limits, absl::Now() + absl::Seconds(1));
  EXPECT_THAT(ParseAnswer("", &budget), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(ParseAnswer("1 +", &budget),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ends too early")));
  EXPECT_THAT(ParseAnswer("\\input{x}", &budget),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported LaTeX command")));
  EXPECT_THAT(ParseAnswer("{1", &budget),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unbalanced")));
  EXPECT_THAT(ParseAnswer("os.system('x')", &budget),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected")));
  SFPO_ASSERT_OK_AND_ASSIGN(Ast ast, ParseAnswer("2\\frac{1}{2} + x", &budget));
  EXPECT_EQ(Render(ast, ast.root), "((2+(1/2))+x)");
}

}  // namespace
}  // namespace sfpo
