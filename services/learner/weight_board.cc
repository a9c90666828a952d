#include "services/learner/weight_board.h"

namespace sfpo {

void WeightBoard::Publish(PackedWeights weights) {
  auto next = std::make_shared<const PackedWeights>(std::move(weights));
  absl::MutexLock lock(&mu_);
  current_ = std::move(next);
}

std::shared_ptr<const PackedWeights> WeightBoard::WaitNewer(int64_t have_version,
                                                            absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || (current_ != nullptr && current_->manifest.version > have_version);
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (closed_ || current_ == nullptr || current_->manifest.version <= have_version) return nullptr;
  return current_;
}

std::shared_ptr<const PackedWeights> WeightBoard::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void WeightBoard::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

bool WeightBoard::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

}  // namespace sfpo
