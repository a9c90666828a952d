// A bounded, closable multi-producer multi-consumer queue.
#ifndef SFPO_COMMON_CLOSABLE_QUEUE_H_
#define SFPO_COMMON_CLOSABLE_QUEUE_H_

#include <cstddef>
#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sfpo {

// Thread-safe. Push blocks while full, Pop while empty; Close() wakes every waiter. After Close,
// Push fails with CANCELLED and Pop drains what is left, then fails with CANCELLED.
template <typename T>
class ClosableQueue {
 public:
  // capacity == 0 means unbounded.
  explicit ClosableQueue(size_t capacity = 0) : capacity_(capacity) {}

  // Returns CANCELLED if the queue is closed.
  absl::Status Push(T item) {
    absl::MutexLock lock(&mu_);
    auto can_push = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || capacity_ == 0 || items_.size() < capacity_;
    };
    mu_.Await(absl::Condition(&can_push));
    if (closed_) return absl::CancelledError("queue closed");
    items_.push_back(std::move(item));
    return absl::OkStatus();
  }

  // Returns the oldest item, or CANCELLED once closed and empty.
  absl::StatusOr<T> Pop() { return PopWithTimeout(absl::InfiniteDuration()); }

  // As Pop, but DEADLINE_EXCEEDED when nothing arrives within `timeout`.
  absl::StatusOr<T> PopWithTimeout(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || !items_.empty();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
      return absl::DeadlineExceededError("queue pop timed out");
    }
    if (items_.empty()) return absl::CancelledError("queue closed");
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return items_.size();
  }

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sfpo

#endif  // SFPO_COMMON_CLOSABLE_QUEUE_H_
