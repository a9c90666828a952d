#include "services/learner/lease_table.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sfpo {
namespace {
// How many finished lease ids are remembered to tell a duplicate from an unknown id.
constexpr uint64_t kFinishedMemory = 1 << 20;

uint64_t MixSeed(uint64_t seed, uint64_t lease_id) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (lease_id + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

LeaseTable::LeaseTable(LeaseTableOptions options) : options_(std::move(options)) {
  SFPO_CHECK(options_.group_size >= 1 && options_.batch_prompts >= 1);
  SFPO_CHECK(options_.prompt_source != nullptr);
}

int64_t LeaseTable::Unconsumed() const {
  return static_cast<int64_t>(outstanding_.size() + buffer_.size());
}

std::vector<Lease> LeaseTable::LeaseWork(const std::string& worker_id, int max_leases,
                                         absl::Time now) {
  std::vector<Lease> leases;
  absl::MutexLock lock(&mu_);
  if (closed_ || awaiting_version_) return leases;
  const int64_t limit = int64_t{options_.batch_prompts} * (1 + options_.max_staleness);
  const int64_t deadline_ms = absl::ToUnixMillis(now + options_.lease_timeout);
  while (static_cast<int>(leases.size()) < max_leases && Unconsumed() < limit) {
    uint64_t cursor;
    if (!requeue_.empty()) {
      cursor = requeue_.front();
      requeue_.pop_front();
    } else {
      cursor = cursor_++;
    }
    PromptSpec spec = options_.prompt_source(cursor);
    Lease lease;
    lease.lease_id = next_lease_id_++;
    lease.prompt_id = spec.prompt_id;
    lease.task = std::move(spec.task);
    lease.prompt_text = std::move(spec.text);
    lease.prompt_tokens = std::move(spec.tokens);
    lease.answer = std::move(spec.answer);
    lease.group_size = options_.group_size;
    lease.policy_version = std::max<int64_t>(0, version_ - options_.max_staleness);
    lease.deadline_unix_ms = deadline_ms;
    lease.sampling = options_.sampling;
    lease.sampling.seed = MixSeed(options_.seed, lease.lease_id);
    outstanding_[lease.lease_id] = Outstanding{lease, worker_id, cursor};
    counts_.leased += options_.group_size;
    counts_.in_flight += options_.group_size;
    leases.push_back(std::move(lease));
  }
  return leases;
}

absl::Status LeaseTable::Validate(const Lease& lease, const ScoredGroup& group) const {
  if (static_cast<int32_t>(group.completions.size()) != lease.group_size) {
    return absl::InvalidArgumentError(absl::StrCat("lease ", lease.lease_id, ": expected ",
                                                   lease.group_size, " completions, got ",
                                                   group.completions.size()));
  }
  for (size_t i = 0; i < group.completions.size(); ++i) {
    const Completion& c = group.completions[i];
    if (c.tokens.empty() || static_cast<int32_t>(c.tokens.size()) > options_.max_new_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("lease ", lease.lease_id, " completion ", i,
                                                     ": ", c.tokens.size(),
                                                     " tokens, must be 1..",
                                                     options_.max_new_tokens));
    }
    if (c.logprobs.size() != c.tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat("lease ", lease.lease_id, " completion ", i,
                                                     ": ", c.logprobs.size(), " logprobs for ",
                                                     c.tokens.size(), " tokens"));
    }
    for (int32_t t : c.tokens) {
      if (t < 0 || (options_.vocab_size > 0 && t >= options_.vocab_size)) {
        return absl::InvalidArgumentError(absl::StrCat("lease ", lease.lease_id, " completion ",
                                                       i, ": token id ", t, " out of range [0, ",
                                                       options_.vocab_size, ")"));
      }
    }
    for (float lp : c.logprobs) {
      if (!(lp <= 0.0f) || std::isinf(lp)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "lease ", lease.lease_id, " completion ", i, ": logprob ", lp, " not in (-inf, 0]"));
      }
    }
    if (!std::isfinite(c.reward)) {
      return absl::InvalidArgumentError(
          absl::StrCat("lease ", lease.lease_id, " completion ", i, ": reward is not finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status LeaseTable::Submit(const std::string& worker_id, const ScoredGroup& group,
                                absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = outstanding_.find(group.lease_id);
  if (it == outstanding_.end()) {
    counts_.rejected += static_cast<int64_t>(group.completions.size());
    auto done = finished_.find(group.lease_id);
    if (done != finished_.end()) {
      if (absl::IsDeadlineExceeded(done->second)) {
        return absl::DeadlineExceededError(
            absl::StrCat("lease ", group.lease_id, " expired before submission"));
      }
      return absl::AlreadyExistsError(
          absl::StrCat("lease ", group.lease_id, " was already ", done->second.message()));
    }
    return absl::NotFoundError(absl::StrCat("unknown lease ", group.lease_id));
  }
  Outstanding& out = it->second;
  if (out.worker_id != worker_id) {
    counts_.rejected += static_cast<int64_t>(group.completions.size());
    return absl::FailedPreconditionError(absl::StrCat("lease ", group.lease_id, " belongs to ",
                                                      out.worker_id, ", not ", worker_id));
  }
  if (absl::ToUnixMillis(now) > out.lease.deadline_unix_ms) {
    // Expired but not yet swept: same outcome as a sweep.
    counts_.rejected += static_cast<int64_t>(group.completions.size());
    counts_.expired += out.lease.group_size;
    counts_.in_flight -= out.lease.group_size;
    finished_[group.lease_id] = absl::DeadlineExceededError("expired");
    Requeue(out.cursor);
    outstanding_.erase(it);
    return absl::DeadlineExceededError(
        absl::StrCat("lease ", group.lease_id, " expired before submission"));
  }
  absl::Status valid = Validate(out.lease, group);
  if (!valid.ok()) {
    // The lease stays outstanding: a corrected resubmission or expiry settles it.
    counts_.rejected += static_cast<int64_t>(group.completions.size());
    return valid;
  }
  if (group.policy_version > version_ || group.policy_version < out.lease.policy_version ||
      group.policy_version < version_ - options_.max_staleness) {
    counts_.stale += out.lease.group_size;
    counts_.in_flight -= out.lease.group_size;
    finished_[group.lease_id] = absl::FailedPreconditionError("dropped as stale");
    Requeue(out.cursor);
    outstanding_.erase(it);
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", group.lease_id, ": policy version ", group.policy_version,
                     " is outside [", version_ - options_.max_staleness, ", ", version_, "]"));
  }
  counts_.scored += out.lease.group_size;
  counts_.buffered += out.lease.group_size;
  counts_.in_flight -= out.lease.group_size;
  finished_[group.lease_id] = absl::AlreadyExistsError("submitted");
  buffer_.emplace_back(out.cursor, AcceptedGroup{std::move(out.lease), group});
  outstanding_.erase(it);
  while (!finished_.empty() && finished_.begin()->first + kFinishedMemory < next_lease_id_) {
    finished_.erase(finished_.begin());
  }
  return absl::OkStatus();
}

int LeaseTable::Release(const std::string& worker_id, const std::vector<uint64_t>& lease_ids) {
  absl::MutexLock lock(&mu_);
  int released = 0;
  for (uint64_t id : lease_ids) {
    auto it = outstanding_.find(id);
    if (it == outstanding_.end() || it->second.worker_id != worker_id) continue;
    counts_.released += it->second.lease.group_size;
    counts_.in_flight -= it->second.lease.group_size;
    finished_[id] = absl::AlreadyExistsError("released");
    Requeue(it->second.cursor);
    outstanding_.erase(it);
    ++released;
  }
  return released;
}

int LeaseTable::ExpireOverdue(absl::Time now) {
  absl::MutexLock lock(&mu_);
  const int64_t now_ms = absl::ToUnixMillis(now);
  int expired = 0;
  for (auto it = outstanding_.begin(); it != outstanding_.end();) {
    if (it->second.lease.deadline_unix_ms < now_ms) {
      counts_.expired += it->second.lease.group_size;
      counts_.in_flight -= it->second.lease.group_size;
      finished_[it->first] = absl::DeadlineExceededError("expired");
      Requeue(it->second.cursor);
      it = outstanding_.erase(it);
      ++expired;
    } else {
      ++it;
    }
  }
  return expired;
}

void LeaseTable::Requeue(uint64_t cursor) { requeue_.push_front(cursor); }

absl::StatusOr<std::vector<AcceptedGroup>> LeaseTable::TakeBatch(int count,
                                                                 absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Drop groups that fell out of the staleness window while buffered.
    while (!buffer_.empty() &&
           buffer_.front().second.group.policy_version < version_ - options_.max_staleness) {
      counts_.stale += buffer_.front().second.lease.group_size;
      counts_.buffered -= buffer_.front().second.lease.group_size;
      Requeue(buffer_.front().first);
      buffer_.pop_front();
    }
    return closed_ || static_cast<int>(buffer_.size()) >= count;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("only ", buffer_.size(), " of ", count,
                                                    " groups arrived in time"));
  }
  if (closed_) return absl::CancelledError("lease table closed");
  std::vector<AcceptedGroup> batch;
  batch.reserve(count);
  for (int i = 0; i < count; ++i) {
    counts_.buffered -= buffer_.front().second.lease.group_size;
    batch.push_back(std::move(buffer_.front().second));
    buffer_.pop_front();
  }
  if (options_.max_staleness == 0) awaiting_version_ = true;
  return batch;
}

void LeaseTable::MarkTrained(int64_t samples) {
  absl::MutexLock lock(&mu_);
  counts_.trained += samples;
}

void LeaseTable::SetVersion(int64_t version) {
  absl::MutexLock lock(&mu_);
  version_ = version;
  awaiting_version_ = false;
}

int64_t LeaseTable::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

void LeaseTable::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

LedgerCounts LeaseTable::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

LeaseTable::State LeaseTable::ExportState() const {
  absl::MutexLock lock(&mu_);
  State state;
  state.cursor = cursor_;
  state.counts = counts_;
  state.next_lease_id = next_lease_id_;
  for (const auto& [id, out] : outstanding_) state.requeue.push_back(out.cursor);
  for (const auto& [cursor, group] : buffer_) state.requeue.push_back(cursor);
  state.requeue.insert(state.requeue.end(), requeue_.begin(), requeue_.end());
  // Outstanding leases will never be answered to the restarted learner: count them expired.
  for (const auto& [id, out] : outstanding_) {
    state.counts.expired += out.lease.group_size;
    state.counts.in_flight -= out.lease.group_size;
  }
  // Buffered groups were scored but will not be trained: the restart drops them as stale.
  for (const auto& [cursor, group] : buffer_) {
    state.counts.stale += group.lease.group_size;
    state.counts.buffered -= group.lease.group_size;
  }
  return state;
}

void LeaseTable::RestoreState(const State& state) {
  absl::MutexLock lock(&mu_);
  cursor_ = state.cursor;
  counts_ = state.counts;
  next_lease_id_ = state.next_lease_id;
  requeue_.assign(state.requeue.begin(), state.requeue.end());
  outstanding_.clear();
  buffer_.clear();
  finished_.clear();
  awaiting_version_ = false;
}

}  // namespace sfpo
