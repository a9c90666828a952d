// Built-in training tasks and user JSONL datasets: a deterministic training stream and a fixed
// held-out test set. Plain C++ (no Torch, no gRPC). The checker for each task lives in the
// reward verifier (services/reward/task_checkers.h); `checker()` names it.
//
//   countdown3  prompt "3 5 7=22:", answer "3 5 7=22", solution "3*5+7": three digits 1-9 and a
//               target 0-99 reachable with + - * ( ), each digit used exactly once.
//   addition    prompt "123+4567=", answer "4690", solution "4690".
//   FILE.jsonl  one {"prompt", "answer"[, "solution"]} per line, checked by the math verifier.
#ifndef SFPO_COMMON_TASKS_H_
#define SFPO_COMMON_TASKS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfpo {

struct Problem {
  std::string prompt;
  // The gold answer given to the verifier.
  std::string answer;
  // One correct completion (supervised warm start).
  std::string solution;
};

struct TaskOptions {
  // Size of the held-out test set (at most the number of held-out problems: countdown3 holds
  // out every ordering of 20% of its (digits, target) problems).
  int64_t test_size = 1000;
  // addition: operands have 1..addition_max_digits digits.
  int addition_max_digits = 4;
  // JSONL: fraction of problems held out, chosen by a hash of the prompt.
  double jsonl_held_out_fraction = 0.05;
};

// A task. Immutable after creation; every method is thread-safe.
class Task {
 public:
  virtual ~Task() = default;
  // "countdown3", "addition", or the JSONL path.
  virtual const std::string& name() const = 0;
  // The verifier's task name for ScoreItem.task: "countdown3", "addition" or "math".
  virtual const std::string& checker() const = 0;
  // Problem `index` of the training stream for `seed`: a pure function of (seed, index), so a
  // data cursor is just an index. Never one of the held-out problems.
  virtual Problem TrainProblem(uint64_t seed, uint64_t index) const = 0;
  // The fixed held-out problems (the same for every seed), disjoint from training.
  virtual const std::vector<Problem>& TestSet() const = 0;
  // Number of distinct training problems (addition: the number of operand pairs, an upper
  // bound).
  virtual int64_t train_size() const = 0;
};

// "countdown3", "addition", or a path to a JSONL file. INVALID_ARGUMENT for an unknown name,
// bad options or a malformed file (naming the line), NOT_FOUND for a missing file.
absl::StatusOr<std::unique_ptr<Task>> CreateTask(const std::string& name_or_path,
                                                 const TaskOptions& options = {});

// All countdown3 problems for digits (a, b, c) in this order: target -> shortest solution.
// Exposed for tests. Digits must be 1-9.
std::vector<std::pair<int, std::string>> Countdown3Targets(int a, int b, int c);

}  // namespace sfpo

#endif  // SFPO_COMMON_TASKS_H_
