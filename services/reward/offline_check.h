// `sfpo reward check`: one {"gold", "prediction"[, "task", "prompt"]} JSON object per line in,
// one {"verdict", "extracted", "reason"} per line out, same order. A malformed line yields a
// verdict "error" naming the line, never a crash.
#ifndef SFPO_SERVICES_REWARD_OFFLINE_CHECK_H_
#define SFPO_SERVICES_REWARD_OFFLINE_CHECK_H_

#include <array>
#include <istream>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/reward/verifier.h"

namespace sfpo {

struct OfflineCheckOptions {
  // Task for lines without a "task" field.
  std::string task = "math";
  VerifierOptions verifier;
  absl::Duration item_deadline = absl::Milliseconds(100);
};

// Counts of verdicts by kind, indexed by static_cast<int>(Verdict).
using VerdictCounts = std::array<int64_t, 4>;

// Checks one input line (1-based `line_no` for messages); returns the output JSON object
// (one line, no newline) and adds the verdict to `counts` when given.
std::string CheckJsonLine(absl::string_view line, int64_t line_no,
                          const OfflineCheckOptions& options, VerdictCounts* counts);

// Runs CheckJsonLine over every line of `in`, writing one line each to `out`.
VerdictCounts CheckJsonLines(std::istream& in, std::ostream& out,
                             const OfflineCheckOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_OFFLINE_CHECK_H_
