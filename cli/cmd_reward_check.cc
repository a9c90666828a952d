// `sfpo reward check --input FILE.jsonl [--task math]`: the verifier offline, for evaluating it
// and for checking users' own datasets. Output goes to stdout (one JSON object per input line,
// same order); a summary goes to stderr.
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "services/reward/offline_check.h"

namespace sfpo {
namespace {

struct RewardCheckFlags {
  std::string input;
  std::string task = "math";
  double format_reward = 0.0;
  int64_t item_deadline_ms = 100;
};

int RunRewardCheck(const RewardCheckFlags& flags) {
  if (!IsKnownTask(flags.task)) {
    return FailWith(absl::InvalidArgumentError(absl::StrCat(
        "--task: unknown task '", flags.task, "' (math, gsm8k, boxed, countdown3, addition)")));
  }
  if (flags.item_deadline_ms <= 0) {
    return FailWith(absl::InvalidArgumentError("--item-deadline-ms must be positive"));
  }
  OfflineCheckOptions options;
  options.task = flags.task;
  options.verifier.format_reward = flags.format_reward;
  options.item_deadline = absl::Milliseconds(flags.item_deadline_ms);
  if (absl::Status s = ValidateVerifierOptions(options.verifier); !s.ok()) return FailWith(s);
  std::ifstream in(flags.input);
  if (!in.good()) {
    return FailWith(absl::NotFoundError(absl::StrCat("--input: cannot open ", flags.input)));
  }
  std::ios::sync_with_stdio(false);
  VerdictCounts counts = CheckJsonLines(in, std::cout, options);
  std::cerr << "sfpo reward check: " << counts[0] + counts[1] + counts[2] + counts[3]
            << " lines: correct " << counts[0] << ", incorrect " << counts[1]
            << ", unparseable " << counts[2] << ", error " << counts[3] << " ("
            << kVerifierVersion << ")\n";
  return 0;
}

}  // namespace

void AddRewardCheckCommand(CLI::App* root, CommandTable* table) {
  CLI::App* reward = root->get_subcommand("reward");
  auto flags = std::make_shared<RewardCheckFlags>();
  CLI::App* check = reward->add_subcommand(
      "check", "Score {\"gold\", \"prediction\"} JSONL lines offline; one verdict line each");
  check->add_option("--input", flags->input, "JSONL file, one {\"gold\", \"prediction\"} per line")
      ->required();
  check->add_option("--task", flags->task,
                    "Checker for lines without a \"task\" field: math, gsm8k, boxed, "
                    "countdown3, addition")
      ->capture_default_str();
  check->add_option("--format-reward", flags->format_reward,
                    "Reward for a well-formed wrong answer (reported only through verdicts)")
      ->capture_default_str();
  check->add_option("--item-deadline-ms", flags->item_deadline_ms, "Time budget per line")
      ->capture_default_str();
  table->emplace_back(check, [flags]() -> int { return RunRewardCheck(*flags); });
}

}  // namespace sfpo
