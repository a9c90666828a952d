#include "services/learner/step_log.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {
// JSON has no NaN: write null.
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
}  // namespace

std::string StepRecordToJson(const StepRecord& r) {
  nlohmann::json j;
  j["step"] = r.step;
  j["policy_version"] = r.policy_version;
  j["rollouts_total"] = r.rollouts_total;
  j["wallclock_s"] = Num(r.wallclock_s);
  j["reward_mean"] = Num(r.reward_mean);
  j["train_accuracy"] = Num(r.train_accuracy);
  if (r.accuracy) j["accuracy"] = Num(*r.accuracy);
  if (r.accuracy_greedy) j["accuracy_greedy"] = Num(*r.accuracy_greedy);
  j["entropy"] = Num(r.entropy);
  j["entropy_zscore"] = Num(r.entropy_zscore);
  j["sfpo_active"] = r.sfpo_active;
  j["clip_fraction"] = Num(r.clip_fraction);
  j["approx_kl"] = Num(r.approx_kl);
  j["grad_norm"] = Num(r.grad_norm);
  j["logprob_mismatch"] = Num(r.logprob_mismatch);
  j["param_delta_norm"] = Num(r.param_delta_norm);
  j["fast_delta_norm"] = Num(r.fast_delta_norm);
  j["lr"] = Num(r.lr);
  j["zero_variance_groups"] = r.zero_variance_groups;
  j["response_tokens_mean"] = Num(r.response_tokens_mean);
  j["ranks"] = r.ranks;
  j["all_reduce_seconds"] = Num(r.all_reduce_seconds);
  j["all_reduce_bytes"] = r.all_reduce_bytes;
  if (!r.rank_step_seconds.empty()) {
    nlohmann::json per_rank = nlohmann::json::array();
    for (double s : r.rank_step_seconds) per_rank.push_back(Num(s));
    j["rank_step_seconds"] = per_rank;
  }
  nlohmann::json seconds = nlohmann::json::object();
  for (const auto& [stage, s] : r.seconds) seconds[stage] = Num(s);
  j["seconds"] = seconds;
  j["samples"] = {{"leased", r.ledger.leased},     {"scored", r.ledger.scored},
                  {"buffered", r.ledger.buffered},
                  {"trained", r.ledger.trained},   {"stale", r.ledger.stale},
                  {"expired", r.ledger.expired},   {"released", r.ledger.released},
                  {"rejected", r.ledger.rejected}, {"in_flight", r.ledger.in_flight}};
  return j.dump();
}

absl::StatusOr<std::unique_ptr<StepLog>> StepLog::Open(const std::string& dir, bool append) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = (std::filesystem::path(dir) / "steps.jsonl").string();
  std::FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
  if (f == nullptr) return absl::UnavailableError(absl::StrCat("cannot open step log ", path));
  return std::unique_ptr<StepLog>(new StepLog(f, path));
}

StepLog::~StepLog() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status StepLog::Append(const StepRecord& record) {
  const std::string line = StepRecordToJson(record) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write step log ", path_));
  }
  return absl::OkStatus();
}

absl::Status StepLog::TruncateAfter(int64_t step) {
  std::FILE* in = std::fopen(path_.c_str(), "r");
  if (in == nullptr) return absl::UnavailableError(absl::StrCat("cannot read step log ", path_));
  std::string kept;
  char* line = nullptr;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, in)) > 0) {
    nlohmann::json j = nlohmann::json::parse(line, line + n, nullptr, /*allow_exceptions=*/false);
    // A torn last line (crash mid-write) or a later step is dropped.
    if (j.is_discarded() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    if (j["step"].get<int64_t>() <= step) kept.append(line, n);
  }
  std::free(line);
  std::fclose(in);
  const std::string tmp = path_ + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "w");
  if (out == nullptr || std::fwrite(kept.data(), 1, kept.size(), out) != kept.size() ||
      std::fclose(out) != 0 || std::rename(tmp.c_str(), path_.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rewrite step log ", path_));
  }
  std::fclose(file_);
  file_ = std::fopen(path_.c_str(), "a");
  if (file_ == nullptr) return absl::UnavailableError(absl::StrCat("cannot reopen ", path_));
  return absl::OkStatus();
}

std::string ProgressLine(const StepRecord& r, int64_t total_steps, double eta_s) {
  std::string stages;
  for (const auto& [stage, s] : r.seconds) absl::StrAppendFormat(&stages, " %s=%.2f", stage, s);
  std::string acc = r.accuracy ? absl::StrFormat("%.3f", *r.accuracy) : std::string("  -  ");
  return absl::StrFormat(
      "step %d/%d v%d rollouts=%d reward=%.3f train_acc=%.3f eval_acc=%s %s H=%.3f |%s | "
      "eta %dm%02ds",
      r.step, total_steps, r.policy_version, r.rollouts_total, r.reward_mean, r.train_accuracy,
      acc, r.sfpo_active ? "SFPO" : "GRPO", r.entropy, stages,
      static_cast<int64_t>(eta_s) / 60, static_cast<int64_t>(eta_s) % 60);
}

std::string ProgressOutput(const std::string& line, bool terminal, bool last) {
  if (!terminal) return line + "\n";
  return absl::StrCat("\r\033[K", line, last ? "\n" : "");
}

}  // namespace sfpo
