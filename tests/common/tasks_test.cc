#include "common/tasks.h"

#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "services/reward/verifier.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

VerifyResult Check(const Task& task, const std::string& completion, const Problem& p) {
  VerifierOptions options;
  return Score({task.checker(), p.prompt, completion, p.answer}, options,
               absl::Now() + absl::Seconds(1));
}

TEST(Countdown3, StreamIsAPureFunctionOfSeedAndIndex) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, CreateTask("countdown3"));
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, CreateTask("countdown3"));
  for (uint64_t i = 0; i < 200; ++i) {
    Problem x = a->TrainProblem(7, i);
    Problem y = b->TrainProblem(7, i);
    EXPECT_EQ(x.prompt, y.prompt);
    EXPECT_EQ(x.answer, y.answer);
    EXPECT_EQ(x.solution, y.solution);
  }
  // Reading out of order gives the same problems.
  EXPECT_EQ(a->TrainProblem(7, 150).prompt, b->TrainProblem(7, 150).prompt);
  int differs = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    differs += a->TrainProblem(7, i).prompt != a->TrainProblem(8, i).prompt;
  }
  EXPECT_GT(differs, 80) << "different seeds should give different streams";
}

TEST(Countdown3, PromptsAndSolutionsHaveTheDocumentedShapeAndFitTheContext) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask("countdown3"));
  EXPECT_EQ(task->checker(), "countdown3");
  for (uint64_t i = 0; i < 2000; ++i) {
    Problem p = task->TrainProblem(1, i);
    ASSERT_EQ(p.prompt, p.answer + ":");
    ASSERT_LT(p.prompt.size() + p.solution.size(), 30u) << p.prompt << p.solution;
    ASSERT_TRUE(p.prompt[1] == ' ' && p.prompt[3] == ' ' && p.prompt[5] == '=') << p.prompt;
    int target = std::stoi(p.answer.substr(6));
    ASSERT_GE(target, 0);
    ASSERT_LE(target, 99);
  }
}

TEST(Countdown3, EveryGeneratedProblemIsSolvedByItsSolution) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask("countdown3"));
  for (uint64_t i = 0; i < 3000; ++i) {
    Problem p = task->TrainProblem(3, i);
    VerifyResult r = Check(*task, p.solution, p);
    ASSERT_EQ(r.verdict, Verdict::kCorrect) << p.prompt << " " << p.solution << ": " << r.reason;
  }
  for (const Problem& p : task->TestSet()) {
    VerifyResult r = Check(*task, p.solution, p);
    ASSERT_EQ(r.verdict, Verdict::kCorrect) << p.prompt << " " << p.solution << ": " << r.reason;
  }
  // Every (digits, target) pair the enumerator lists is solvable by its expression.
  VerifierOptions options;
  int total = 0;
  for (int a = 1; a <= 9; ++a) {
    for (int b = 1; b <= 9; ++b) {
      for (int c = 1; c <= 9; ++c) {
        for (const auto& [target, expr] : Countdown3Targets(a, b, c)) {
          std::string gold = std::to_string(a) + " " + std::to_string(b) + " " +
                             std::to_string(c) + "=" + std::to_string(target);
          VerifyResult r =
              Score({"countdown3", "", expr, gold}, options, absl::Now() + absl::Seconds(1));
          ASSERT_EQ(r.verdict, Verdict::kCorrect) << gold << " " << expr << ": " << r.reason;
          ++total;
        }
      }
    }
  }
  EXPECT_EQ(total, 9412);  // distinct ordered prompts, counted independently in Python
}

TEST(Countdown3, CheckerRejectsWrongCompletions) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask("countdown3"));
  Problem p = task->TrainProblem(5, 0);
  std::string digits = p.answer.substr(0, 5);  // "a b c"
  // Right digits, a value that is off by one: append "+1" uses a fourth digit -> incorrect.
  EXPECT_EQ(Check(*task, p.solution + "+1", p).verdict, Verdict::kIncorrect);
  EXPECT_EQ(Check(*task, "", p).verdict, Verdict::kUnparseable);
  EXPECT_EQ(Check(*task, p.solution + "/", p).verdict, Verdict::kUnparseable);
  EXPECT_EQ(Check(*task, "x", p).verdict, Verdict::kUnparseable);
}

TEST(Countdown3, HeldOutSetIsFixedDisjointAndLargeEnough) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask("countdown3"));
  SFPO_ASSERT_OK_AND_ASSIGN(auto again, CreateTask("countdown3"));
  const auto& test = task->TestSet();
  ASSERT_EQ(test.size(), 1000u);
  std::set<std::string> canonical_test;
  std::set<std::string> prompts;
  auto canonical = [](const std::string& answer) {
    std::string d = {answer[0], answer[2], answer[4]};
    std::sort(d.begin(), d.end());
    return d + answer.substr(5);
  };
  for (size_t i = 0; i < test.size(); ++i) {
    EXPECT_EQ(test[i].prompt, again->TestSet()[i].prompt);
    prompts.insert(test[i].prompt);
    canonical_test.insert(canonical(test[i].answer));
  }
  EXPECT_EQ(prompts.size(), test.size()) << "test prompts are distinct";
  for (uint64_t seed : {0, 1, 2}) {
    for (uint64_t i = 0; i < 5000; ++i) {
      Problem p = task->TrainProblem(seed, i);
      ASSERT_EQ(canonical_test.count(canonical(p.answer)), 0u)
          << p.prompt << " (or a reordering) is held out";
    }
  }
  EXPECT_GT(task->train_size(), 6000);
}

TEST(Countdown3, RejectsATestSetLargerThanTheHeldOutProblems) {
  TaskOptions options;
  options.test_size = 100000;
  EXPECT_THAT(CreateTask("countdown3", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("test_size")));
}

TEST(Addition, GeneratesCorrectSumsDeterministicallyAndHoldsOutDisjointProblems) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask("addition"));
  EXPECT_EQ(task->checker(), "addition");
  std::set<std::string> test;
  for (const Problem& p : task->TestSet()) test.insert(p.prompt);
  EXPECT_EQ(test.size(), 1000u);
  for (uint64_t i = 0; i < 3000; ++i) {
    Problem p = task->TrainProblem(11, i);
    EXPECT_EQ(p.prompt, task->TrainProblem(11, i).prompt);
    ASSERT_EQ(test.count(p.prompt), 0u) << p.prompt;
    size_t plus = p.prompt.find('+');
    ASSERT_NE(plus, std::string::npos);
    ASSERT_EQ(p.prompt.back(), '=');
    long a = std::stol(p.prompt.substr(0, plus));
    long b = std::stol(p.prompt.substr(plus + 1));
    ASSERT_EQ(p.answer, std::to_string(a + b));
    ASSERT_EQ(Check(*task, p.solution, p).verdict, Verdict::kCorrect);
    ASSERT_EQ(Check(*task, std::to_string(a + b + 1), p).verdict, Verdict::kIncorrect);
    ASSERT_LT(p.prompt.size() + p.solution.size(), 30u);
  }
}

TEST(Addition, RejectsBadDigitCounts) {
  TaskOptions options;
  options.addition_max_digits = 0;
  EXPECT_THAT(CreateTask("addition", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("addition_max_digits")));
}

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Jsonl, SplitsByHashAndStreamsEveryTrainingProblemOncePerEpoch) {
  std::string text;
  for (int i = 0; i < 400; ++i) {
    text += "{\"prompt\": \"What is " + std::to_string(i) + " + 1?\", \"answer\": \"" +
            std::to_string(i + 1) + "\"}\n";
  }
  text += "\n";
  std::string path = WriteFile("tasks_test_data.jsonl", text);
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask(path));
  EXPECT_EQ(task->checker(), "math");
  int64_t n = task->train_size();
  EXPECT_EQ(n + static_cast<int64_t>(task->TestSet().size()), 400);
  EXPECT_GT(task->TestSet().size(), 5u);
  EXPECT_LT(task->TestSet().size(), 45u);
  std::set<std::string> test;
  for (const Problem& p : task->TestSet()) test.insert(p.prompt);
  std::set<std::string> epoch;
  for (int64_t i = 0; i < n; ++i) {
    Problem p = task->TrainProblem(4, i);
    EXPECT_EQ(test.count(p.prompt), 0u);
    epoch.insert(p.prompt);
    EXPECT_EQ(p.solution, p.answer);
  }
  EXPECT_EQ(static_cast<int64_t>(epoch.size()), n) << "one epoch visits every problem once";
  EXPECT_NE(task->TrainProblem(4, 0).prompt + task->TrainProblem(4, 1).prompt,
            task->TrainProblem(5, 0).prompt + task->TrainProblem(5, 1).prompt);
}

TEST(Jsonl, ReportsTheLineOfAMalformedRecord) {
  std::string path = WriteFile("tasks_test_bad.jsonl",
                               "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\"}\n");
  EXPECT_THAT(CreateTask(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":2: missing \"answer\"")));
  path = WriteFile("tasks_test_bad2.jsonl", "not json\n");
  EXPECT_THAT(CreateTask(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":1: not a JSON object")));
  EXPECT_THAT(CreateTask("/nonexistent/dir/data.jsonl"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot open")));
  EXPECT_THAT(CreateTask("sudoku"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown task 'sudoku'")));
}

TEST(Jsonl, HoldsOutTheLastProblemOfATinyFile) {
  std::string path = WriteFile("tasks_test_tiny.jsonl",
                               "{\"prompt\": \"p1\", \"answer\": 1}\n"
                               "{\"prompt\": \"p2\", \"answer\": \"2\", \"solution\": \"\\\\boxed{2}\"}\n");
  SFPO_ASSERT_OK_AND_ASSIGN(auto task, CreateTask(path));
  ASSERT_EQ(task->TestSet().size() + task->train_size(), 2u);
  ASSERT_EQ(task->TestSet().size(), 1u);
}

}  // namespace
}  // namespace sfpo
