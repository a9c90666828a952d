#include "services/learner/learner_loop.h"

#include <unistd.h>

#include <cmath>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace sfpo {

absl::StatusOr<std::unique_ptr<LearnerLoop>> LearnerLoop::Create(
    LearnerLoopOptions options, std::unique_ptr<PolicyUpdater> updater, LeaseTable* leases,
    WeightBoard* board, LearnerMetrics* metrics) {
  SFPO_CHECK(updater != nullptr && leases != nullptr && board != nullptr);
  SFPO_ASSIGN_OR_RETURN(std::unique_ptr<StepLog> log, StepLog::Open(options.output_dir, options.resume));
  return std::unique_ptr<LearnerLoop>(new LearnerLoop(
      std::move(options), std::move(updater), leases, board, metrics, std::move(log)));
}

LearnerLoop::LearnerLoop(LearnerLoopOptions options, std::unique_ptr<PolicyUpdater> updater,
                         LeaseTable* leases, WeightBoard* board, LearnerMetrics* metrics,
                         std::unique_ptr<StepLog> log)
    : options_(std::move(options)),
      updater_(std::move(updater)),
      leases_(leases),
      board_(board),
      metrics_(metrics),
      log_(std::move(log)) {}

LearnerLoop::~LearnerLoop() {
  RequestStop(/*checkpoint=*/false);
  if (thread_.joinable()) thread_.join();
}

std::string LearnerLoop::ExtraState() const {
  const LeaseTable::State s = leases_->ExportState();
  nlohmann::json j;
  j["version"] = version_;
  j["wallclock_s"] = wallclock_offset_s_;
  j["rollouts_total"] = rollouts_total_;
  j["cursor"] = s.cursor;
  j["requeue"] = s.requeue;
  j["next_lease_id"] = s.next_lease_id;
  j["ledger"] = {{"leased", s.counts.leased},     {"scored", s.counts.scored},
                 {"buffered", s.counts.buffered},
                 {"trained", s.counts.trained},   {"stale", s.counts.stale},
                 {"expired", s.counts.expired},   {"released", s.counts.released},
                 {"rejected", s.counts.rejected}, {"in_flight", s.counts.in_flight}};
  return j.dump();
}

absl::Status LearnerLoop::RestoreExtra(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ledger") || !j.contains("cursor")) {
    return absl::DataLossError("checkpoint: learner state is not valid JSON with a ledger");
  }
  LeaseTable::State s;
  auto get = [&](const nlohmann::json& o, const char* key, auto& out) -> absl::Status {
    if (!o.contains(key) || !o[key].is_number()) {
      return absl::DataLossError(absl::StrCat("checkpoint: learner state lacks '", key, "'"));
    }
    o[key].get_to(out);
    return absl::OkStatus();
  };
  SFPO_RETURN_IF_ERROR(get(j, "version", version_));
  SFPO_RETURN_IF_ERROR(get(j, "wallclock_s", wallclock_offset_s_));
  SFPO_RETURN_IF_ERROR(get(j, "rollouts_total", rollouts_total_));
  SFPO_RETURN_IF_ERROR(get(j, "cursor", s.cursor));
  SFPO_RETURN_IF_ERROR(get(j, "next_lease_id", s.next_lease_id));
  if (!j["requeue"].is_array()) return absl::DataLossError("checkpoint: 'requeue' not a list");
  for (const auto& c : j["requeue"]) s.requeue.push_back(c.get<uint64_t>());
  const nlohmann::json& l = j["ledger"];
  SFPO_RETURN_IF_ERROR(get(l, "leased", s.counts.leased));
  SFPO_RETURN_IF_ERROR(get(l, "scored", s.counts.scored));
  SFPO_RETURN_IF_ERROR(get(l, "trained", s.counts.trained));
  SFPO_RETURN_IF_ERROR(get(l, "stale", s.counts.stale));
  SFPO_RETURN_IF_ERROR(get(l, "expired", s.counts.expired));
  SFPO_RETURN_IF_ERROR(get(l, "released", s.counts.released));
  SFPO_RETURN_IF_ERROR(get(l, "rejected", s.counts.rejected));
  SFPO_RETURN_IF_ERROR(get(l, "in_flight", s.counts.in_flight));
  // Checkpoints written before the ledger had it hold no buffered groups (exported as stale).
  if (l.contains("buffered")) SFPO_RETURN_IF_ERROR(get(l, "buffered", s.counts.buffered));
  leases_->RestoreState(s);
  return absl::OkStatus();
}

absl::Status LearnerLoop::Checkpoint(int64_t steps_done) {
  return updater_->SaveCheckpoint(steps_done, ExtraState());
}

absl::Status LearnerLoop::Start() {
  int64_t start_step = 0;
  if (options_.resume) {
    absl::StatusOr<std::pair<int64_t, std::string>> restored = updater_->RestoreLatest();
    if (restored.ok()) {
      start_step = restored->first;
      SFPO_RETURN_IF_ERROR(RestoreExtra(restored->second));
      SFPO_RETURN_IF_ERROR(log_->TruncateAfter(start_step));
      SFPO_LOG(INFO) << "resumed from step " << start_step << ", policy version " << version_;
    } else if (!absl::IsNotFound(restored.status())) {
      return restored.status();
    }
  }
  step_ = start_step;
  leases_->SetVersion(version_);
  SFPO_ASSIGN_OR_RETURN(PackedWeights packed, updater_->Pack(version_));
  board_->Publish(std::move(packed));
  if (metrics_) metrics_->SetPolicyVersion(version_);
  thread_ = std::thread([this] {
    status_ = Run();
    if (!status_.ok()) SFPO_LOG(ERROR) << "learner: " << status_;
    done_ = true;
    finished_.Notify();
  });
  return absl::OkStatus();
}

void LearnerLoop::RequestStop(bool checkpoint) {
  if (!checkpoint) checkpoint_on_stop_ = false;
  stop_ = true;
}

absl::Status LearnerLoop::Wait() {
  if (!thread_.joinable()) return status_;  // never started
  finished_.WaitForNotification();
  return status_;
}

absl::Status LearnerLoop::Run() {
  const absl::Time run_start = absl::Now();
  const bool tty = isatty(STDERR_FILENO);
  auto seconds_since = [](absl::Time t) { return absl::ToDoubleSeconds(absl::Now() - t); };
  int64_t first_step = step_.load();
  // On a terminal the progress line is rewritten in place; end it however the loop ends.
  bool progress_open = false;
  struct EndProgressLine {
    const bool* open;
    ~EndProgressLine() {
      if (*open) std::cerr << "\n" << std::flush;
    }
  } end_progress_line{&progress_open};
  for (int64_t step = step_.load(); step < options_.total_steps; ++step) {
    StepRecord record;
    // wait_batch: poll in slices so a stop request is noticed.
    absl::Time t = absl::Now();
    absl::StatusOr<std::vector<AcceptedGroup>> batch;
    while (true) {
      if (stop_) {
        if (!checkpoint_on_stop_) return absl::CancelledError("learner stopped before serving");
        wallclock_offset_s_ += seconds_since(run_start);  // the resumed run's clock continues
        SFPO_RETURN_IF_ERROR(Checkpoint(step));
        SFPO_LOG(INFO) << "learner: stopped at step " << step << " (checkpoint written)";
        return absl::OkStatus();
      }
      leases_->ExpireOverdue(absl::Now());
      batch = leases_->TakeBatch(options_.batch_prompts, absl::Milliseconds(200));
      if (batch.ok() || !absl::IsDeadlineExceeded(batch.status())) break;
      if (absl::Now() - t > options_.batch_timeout) {
        return absl::DeadlineExceededError(
            absl::StrCat("learner: no full batch within ", absl::FormatDuration(options_.batch_timeout),
                         " at step ", step, ": are the rollout workers running?"));
      }
    }
    if (!batch.ok()) return batch.status();
    record.seconds["wait_batch"] = seconds_since(t);

    double reward_sum = 0, correct = 0, samples = 0, tokens = 0;
    for (const AcceptedGroup& g : *batch) {
      if (metrics_) metrics_->ObserveStaleness(version_ - g.group.policy_version);
      for (const Completion& c : g.group.completions) {
        reward_sum += c.reward;
        correct += c.verdict == SampleVerdict::kCorrect ? 1 : 0;
        samples += 1;
        tokens += static_cast<double>(c.tokens.size());
      }
    }
    SFPO_ASSIGN_OR_RETURN(UpdateReport report, updater_->Update(*batch, step));
    leases_->MarkTrained(static_cast<int64_t>(samples));
    rollouts_total_ += static_cast<int64_t>(samples);
    for (const auto& [stage, s] : report.seconds) record.seconds[stage] = s;

    t = absl::Now();
    ++version_;
    SFPO_ASSIGN_OR_RETURN(PackedWeights packed, updater_->Pack(version_));
    board_->Publish(std::move(packed));
    leases_->SetVersion(version_);
    record.seconds["publish"] = seconds_since(t);
    step_ = step + 1;

    if (options_.eval_every > 0 &&
        ((step + 1) % options_.eval_every == 0 || step + 1 == options_.total_steps)) {
      t = absl::Now();
      absl::StatusOr<EvalReport> eval = updater_->Evaluate();
      if (eval.ok()) {
        record.accuracy = eval->sampled_accuracy;
        record.accuracy_greedy = eval->greedy_accuracy;
      } else if (!absl::IsUnimplemented(eval.status())) {
        return eval.status();
      }
      record.seconds["eval"] = seconds_since(t);
    }
    if ((options_.checkpoint_every > 0 && (step + 1) % options_.checkpoint_every == 0) ||
        step + 1 == options_.total_steps) {
      t = absl::Now();
      wallclock_offset_s_ += seconds_since(run_start);  // provisional, for the saved state
      absl::Status saved = Checkpoint(step + 1);
      wallclock_offset_s_ -= seconds_since(run_start);
      SFPO_RETURN_IF_ERROR(saved);
      record.seconds["checkpoint"] = seconds_since(t);
    }

    record.step = step + 1;
    record.policy_version = version_;
    record.rollouts_total = rollouts_total_;
    record.wallclock_s = wallclock_offset_s_ + seconds_since(run_start);
    record.reward_mean = samples > 0 ? reward_sum / samples : 0;
    record.train_accuracy = samples > 0 ? correct / samples : 0;
    record.response_tokens_mean = samples > 0 ? tokens / samples : 0;
    record.entropy = report.entropy;
    record.entropy_zscore = report.entropy_zscore;
    record.sfpo_active = report.sfpo_active;
    record.clip_fraction = report.clip_fraction;
    record.approx_kl = report.approx_kl;
    record.grad_norm = report.grad_norm;
    record.logprob_mismatch = report.logprob_mismatch;
    record.param_delta_norm = report.param_delta_norm;
    record.fast_delta_norm = report.fast_delta_norm;
    record.lr = report.lr;
    record.zero_variance_groups = report.zero_variance_groups;
    record.ranks = report.ranks;
    record.all_reduce_seconds = report.all_reduce_seconds;
    record.all_reduce_bytes = report.all_reduce_bytes;
    record.rank_step_seconds = report.rank_step_seconds;
    record.ledger = leases_->counts();
    SFPO_RETURN_IF_ERROR(log_->Append(record));
    if (metrics_) metrics_->OnStep(record);
    if (options_.progress) {
      const double per_step = seconds_since(run_start) / static_cast<double>(step + 1 - first_step);
      const double eta = per_step * static_cast<double>(options_.total_steps - step - 1);
      const bool last = step + 1 == options_.total_steps;
      std::cerr << ProgressOutput(ProgressLine(record, options_.total_steps, eta), tty, last)
                << std::flush;
      progress_open = tty && !last;
    }
  }
  return absl::OkStatus();
}

}  // namespace sfpo
