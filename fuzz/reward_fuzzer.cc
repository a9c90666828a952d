// libFuzzer target for the reward verifier's extraction, parsing and equivalence.
// Input: byte 0 picks the task, then "gold\ncompletion". Invariants checked on every input:
// nothing crashes or hangs (the sanitizers and libFuzzer's timeout watch that), every verdict
// carries a version, error/unparseable verdicts carry a reason, rewards are 0, 1 or the format
// credit, and a parsed answer is equivalent to itself unless a bound stops the comparison.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "services/reward/equivalence.h"
#include "services/reward/extract.h"
#include "services/reward/math_parser.h"
#include "services/reward/verifier.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kTasks[] = {"math", "gsm8k", "boxed", "countdown3", "addition", ""};
  const char* task = kTasks[data[0] % 6];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t split = rest.find('\n');
  std::string gold = split == std::string::npos ? std::string() : rest.substr(0, split);
  std::string completion = split == std::string::npos ? rest : rest.substr(split + 1);

  sfpo::VerifierOptions options;
  options.format_reward = 0.1;
  sfpo::VerifyResult r =
      sfpo::Score({task, "", completion, gold}, options, absl::Now() + absl::Seconds(2));
  Check(r.verifier_version == sfpo::kVerifierVersion);
  if (r.verdict == sfpo::Verdict::kError || r.verdict == sfpo::Verdict::kUnparseable) {
    Check(!r.reason.empty());
    Check(r.reward == 0.0);
  }
  if (r.verdict == sfpo::Verdict::kCorrect) Check(r.reward == 1.0);
  if (r.verdict == sfpo::Verdict::kIncorrect) Check(r.reward == 0.1);
  if (r.verdict == sfpo::Verdict::kError) Check(!r.error_label.empty());

  // Parsing alone, and reflexivity of equivalence.
  sfpo::VerifyLimits limits;
  sfpo::Budget budget(limits, absl::Now() + absl::Seconds(2));
  if (sfpo::IsValidUtf8(completion)) {
    absl::StatusOr<sfpo::Ast> ast = sfpo::ParseAnswer(completion, &budget);
    if (ast.ok()) {
      Check(ast->root >= 0 && ast->root < static_cast<int>(ast->nodes.size()));
      sfpo::EquivalenceOptions eq;
      absl::StatusOr<bool> same = sfpo::Equivalent(*ast, *ast, eq, &budget);
      Check(!same.ok() ? sfpo::IsBoundError(same.status()) : *same);
    }
    sfpo::ExtractOptions extract;
    absl::StatusOr<sfpo::Extraction> e = sfpo::ExtractAnswer(completion, extract, &budget);
    if (e.ok()) Check(!e->answer.empty());
  }
  return 0;
}
