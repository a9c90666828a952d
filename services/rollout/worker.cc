#include "services/rollout/worker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace sfpo {

RolloutWorker::RolloutWorker(WorkerOptions options, std::shared_ptr<LearnerClient> learner,
                             std::shared_ptr<RewardClient> reward,
                             std::unique_ptr<Generator> generator)
    : options_(std::move(options)),
      learner_(std::move(learner)),
      reward_(std::move(reward)),
      generator_(std::move(generator)),
      rng_(options_.seed * 0x9E3779B97F4A7C15ULL + 1) {}

RolloutWorker::~RolloutWorker() { Stop(); }

void RolloutWorker::Start() {
  work_thread_ = std::thread([this] { WorkLoop(); });
  weights_thread_ = std::thread([this] { WeightsLoop(); });
}

void RolloutWorker::Drain() {
  draining_ = true;
  absl::MutexLock lock(&mu_);
  snap_.draining = true;
}

void RolloutWorker::Stop() {
  stop_ = true;
  stream_stop_ = true;
  if (work_thread_.joinable()) work_thread_.join();
  if (weights_thread_.joinable()) weights_thread_.join();
}

void RolloutWorker::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&finished_));
}

bool RolloutWorker::stopped() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

absl::Status RolloutWorker::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

WorkerStatusSnapshot RolloutWorker::snapshot() const {
  absl::MutexLock lock(&mu_);
  return snap_;
}

void RolloutWorker::SetState(const std::string& s) {
  absl::MutexLock lock(&mu_);
  snap_.state = s;
}

void RolloutWorker::Finish(absl::Status status) {
  stream_stop_ = true;
  SetLeasesInFlight(0, 0);
  absl::MutexLock lock(&mu_);
  status_ = std::move(status);
  snap_.state = "stopped";
  finished_ = true;
}

void RolloutWorker::SetLeasesInFlight(uint32_t in_flight, uint32_t newly_leased) {
  {
    absl::MutexLock lock(&mu_);
    snap_.leases_in_flight = in_flight;
  }
  if (options_.on_leases) options_.on_leases(in_flight, newly_leased);
}

bool RolloutWorker::Pause(absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (!stop_) {
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    absl::SleepFor(std::min(left, absl::Milliseconds(10)));
  }
  return false;
}

absl::Duration RolloutWorker::NextBackoff(absl::Duration* current) {
  absl::MutexLock lock(&mu_);
  // Full jitter: a uniform draw in [current/2, current], then double the ceiling.
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const double u = 0.5 + 0.5 * static_cast<double>(rng_ % 1000000) / 1e6;
  const absl::Duration d = *current * u;
  *current = std::min(*current * 2, options_.backoff_max);
  return d;
}

bool RolloutWorker::ApplyPendingWeights() {
  std::unique_ptr<PackedWeights> w;
  {
    absl::MutexLock lock(&mu_);
    w = std::move(pending_);
  }
  if (w == nullptr) return true;
  const absl::Time start = absl::Now();
  absl::Status applied = generator_->ApplyWeights(*w);
  if (!applied.ok()) {
    // A verified version that does not fit the model: a deployment error, not a transient one.
    Finish(absl::FailedPreconditionError(absl::StrCat(
        "cannot apply policy version ", w->manifest.version, ": ", applied.message())));
    return false;
  }
  if (options_.on_weights_applied) {
    options_.on_weights_applied(w->manifest.version, absl::Now() - start);
  }
  absl::MutexLock lock(&mu_);
  snap_.policy_version = w->manifest.version;
  return true;
}

void RolloutWorker::WeightsLoop() {
  absl::Duration backoff = options_.backoff_initial;
  while (!stop_ && !stream_stop_) {
    absl::Status st = learner_->WatchWeights(
        /*have_version=*/-1,
        [this](PackedWeights w) {
          absl::MutexLock lock(&mu_);
          pending_ = std::make_unique<PackedWeights>(std::move(w));
        },
        stream_stop_);
    if (stop_ || stream_stop_) break;
    if (absl::IsDataLoss(st) || absl::IsInvalidArgument(st)) {
      SFPO_LOG(WARNING) << options_.worker_id << ": refused a policy version: " << st;
      if (options_.on_weights_failed) options_.on_weights_failed();
      absl::MutexLock lock(&mu_);
      ++snap_.weight_failures;
    } else if (!st.ok()) {
      SFPO_LOG(DEBUG) << options_.worker_id << ": weight stream: " << st;
    }
    Pause(NextBackoff(&backoff));
    if (st.ok()) backoff = options_.backoff_initial;
  }
}

void RolloutWorker::WorkLoop() {
  absl::Duration backoff = options_.backoff_initial;
  auto release = [this](const std::vector<Lease>& leases) {
    std::vector<uint64_t> ids;
    for (const Lease& l : leases) ids.push_back(l.lease_id);
    if (ids.empty()) return;
    absl::Status st = learner_->Release(ids);
    if (st.ok()) {
      absl::MutexLock lock(&mu_);
      snap_.leases_released += ids.size();
    }
    SetLeasesInFlight(0, 0);
  };
  SetState("waiting_weights");
  while (!stop_) {
    if (!ApplyPendingWeights()) return;
    int64_t version;
    {
      absl::MutexLock lock(&mu_);
      version = snap_.policy_version;
    }
    if (draining_) break;  // also before the first version arrives
    if (version < 0) {
      const absl::Time wait_start = absl::Now();
      Pause(absl::Milliseconds(10));
      if (options_.on_wait_weights) options_.on_wait_weights(absl::Now() - wait_start);
      continue;
    }
    absl::StatusOr<LeaseReply> reply = learner_->LeaseWork(options_.max_leases, version);
    if (!reply.ok()) {
      SetState("backoff");
      SFPO_LOG(DEBUG) << options_.worker_id << ": LeaseWork: " << reply.status();
      Pause(NextBackoff(&backoff));
      continue;
    }
    backoff = options_.backoff_initial;
    if (reply->done) break;
    std::vector<Lease>& leases = reply->leases;
    if (leases.empty()) {
      SetState(version > reply->current_version || version < reply->current_version
                   ? "waiting_weights"
                   : "idle");
      const absl::Time wait_start = absl::Now();
      Pause(std::min(reply->retry_after, absl::Seconds(1)));
      if (options_.on_wait_weights) options_.on_wait_weights(absl::Now() - wait_start);
      continue;
    }
    SetLeasesInFlight(static_cast<uint32_t>(leases.size()), static_cast<uint32_t>(leases.size()));
    // Weights acceptable for every lease: at least the lease's oldest version, at most the
    // learner's current one. Wait for the stream to deliver them (between batches).
    int64_t need = 0;
    for (const Lease& l : leases) need = std::max(need, l.policy_version);
    const int64_t newest = reply->current_version;
    int64_t deadline_ms = leases.front().deadline_unix_ms;
    for (const Lease& l : leases) deadline_ms = std::min(deadline_ms, l.deadline_unix_ms);
    const absl::Time wait_start = absl::Now();
    while (!stop_ && (version < need || version > newest) &&
           absl::ToUnixMillis(absl::Now()) < deadline_ms) {
      SetState("waiting_weights");
      Pause(absl::Milliseconds(5));
      if (!ApplyPendingWeights()) return;
      absl::MutexLock lock(&mu_);
      version = snap_.policy_version;
    }
    if (options_.on_wait_weights) options_.on_wait_weights(absl::Now() - wait_start);
    if (stop_ || version < need || version > newest) {
      release(leases);
      continue;
    }
    SetState("generating");
    const absl::Time gen_start = absl::Now();
    auto generated = generator_->Generate(leases);
    if (!generated.ok()) {
      release(leases);
      Finish(generated.status());
      return;
    }
    int64_t sequences = 0, tokens = 0;
    std::vector<ScoreRequestItem> items;
    for (size_t i = 0; i < leases.size(); ++i) {
      for (const GeneratedSample& s : (*generated)[i]) {
        ++sequences;
        tokens += static_cast<int64_t>(s.tokens.size());
        items.push_back({leases[i].task, leases[i].prompt_text, s.text, leases[i].answer});
      }
    }
    if (options_.on_generated) options_.on_generated(absl::Now() - gen_start, sequences, tokens);
    {
      absl::MutexLock lock(&mu_);
      snap_.sequences_generated += sequences;
      snap_.tokens_generated += tokens;
    }
    // Score, retrying while the verifier is away.
    SetState("scoring");
    absl::StatusOr<std::vector<ScoreOutcome>> outcomes;
    absl::Duration score_backoff = options_.backoff_initial;
    while (!stop_) {
      outcomes = reward_->Score(items);
      if (outcomes.ok() && outcomes->size() == items.size()) break;
      if (outcomes.ok()) outcomes = absl::InternalError("verifier returned a short batch");
      SetState("backoff");
      SFPO_LOG(DEBUG) << options_.worker_id << ": Score: " << outcomes.status();
      Pause(NextBackoff(&score_backoff));
    }
    if (stop_) {
      release(leases);
      break;
    }
    std::vector<ScoredGroup> groups;
    size_t k = 0;
    for (size_t i = 0; i < leases.size(); ++i) {
      ScoredGroup g;
      g.lease_id = leases[i].lease_id;
      g.policy_version = version;
      for (GeneratedSample& s : (*generated)[i]) {
        const ScoreOutcome& o = (*outcomes)[k++];
        Completion c;
        c.tokens = std::move(s.tokens);
        c.logprobs = std::move(s.logprobs);
        c.reward = o.reward;
        c.verdict = o.verdict;
        c.truncated = s.truncated;
        g.completions.push_back(std::move(c));
      }
      groups.push_back(std::move(g));
    }
    SetState("submitting");
    absl::Duration submit_backoff = options_.backoff_initial;
    while (!stop_) {
      absl::StatusOr<std::vector<absl::Status>> results = learner_->Submit(groups);
      if (results.ok()) {
        {
          absl::MutexLock lock(&mu_);
          for (const absl::Status& r : *results) {
            if (r.ok()) {
              ++snap_.groups_submitted;
            } else {
              ++snap_.groups_rejected;
            }
          }
        }
        SetLeasesInFlight(0, 0);
        break;
      }
      SetState("backoff");
      Pause(NextBackoff(&submit_backoff));
    }
    if (stop_) {
      release(leases);
      break;
    }
  }
  Finish(absl::OkStatus());
}

}  // namespace sfpo
