// One record per learner step: the JSONL step log, the Prometheus gauges and the progress line
// all read from it. Pure (no torch, no gRPC).
#ifndef SFPO_SERVICES_LEARNER_STEP_LOG_H_
#define SFPO_SERVICES_LEARNER_STEP_LOG_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/learner/lease_table.h"

namespace sfpo {

struct StepRecord {
  int64_t step = 0;            // 1-based count of completed steps
  int64_t policy_version = 0;  // version published by this step
  int64_t rollouts_total = 0;  // samples trained on so far
  double wallclock_s = 0;      // since the run started (resumes add the previous runs' time)
  double reward_mean = 0;
  double train_accuracy = 0;   // fraction of this step's samples judged correct
  std::optional<double> accuracy;         // held-out sampled pass@1 (temperature 1)
  std::optional<double> accuracy_greedy;  // held-out greedy accuracy
  double entropy = 0;
  double entropy_zscore = 0;   // NaN until the gate window is full
  bool sfpo_active = false;
  double clip_fraction = 0;    // of the last pass
  double approx_kl = 0;        // to theta_0, last pass
  double grad_norm = 0;        // of the last optimizer step, before clipping
  double logprob_mismatch = 0; // mean |learner old_logp - worker logp| over response tokens
  double param_delta_norm = 0; // ||theta_next - theta_0||
  double fast_delta_norm = 0;  // ||theta_K - theta_0|| (0 for GRPO steps)
  double lr = 0;
  int64_t zero_variance_groups = 0;
  double response_tokens_mean = 0;
  int64_t ranks = 1;              // data-parallel learner ranks
  double all_reduce_seconds = 0;  // rank 0's seconds inside all-reduces this step
  int64_t all_reduce_bytes = 0;   // bytes rank 0 all-reduced this step
  std::vector<double> rank_step_seconds;  // each rank's trainer step seconds (ranks > 1)
  std::map<std::string, double> seconds;  // stage -> seconds
  LedgerCounts ledger;
};

// The record as one line of JSON (no trailing newline).
std::string StepRecordToJson(const StepRecord& record);

// Appends records to <dir>/steps.jsonl, flushing each line. Not thread-safe.
class StepLog {
 public:
  // Creates `dir` if needed; appends to an existing log when `append` (a resumed run), else
  // starts it afresh. UNAVAILABLE naming the path when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<StepLog>> Open(const std::string& dir, bool append);
  ~StepLog();
  absl::Status Append(const StepRecord& record);
  // Drops records of steps after `step` (a resumed run repeats them), atomically.
  absl::Status TruncateAfter(int64_t step);
  const std::string& path() const { return path_; }

 private:
  StepLog(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  std::FILE* file_;
  std::string path_;
};

// A human progress line: step, version, rollouts, reward, accuracy, SFPO/GRPO, seconds per
// stage, ETA.
std::string ProgressLine(const StepRecord& record, int64_t total_steps, double eta_s);

// The bytes to write for one progress line. On a terminal the line replaces the previous one in
// place (carriage return, erase to end of line, no newline) and `last` ends it with a newline;
// elsewhere (a file, a pipe) every line is a plain line ending in a newline.
std::string ProgressOutput(const std::string& line, bool terminal, bool last);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_STEP_LOG_H_
