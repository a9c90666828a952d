// The newest published policy version, shared by every WatchWeights stream. Pure; thread-safe.
#ifndef SFPO_SERVICES_LEARNER_WEIGHT_BOARD_H_
#define SFPO_SERVICES_LEARNER_WEIGHT_BOARD_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/weights_codec.h"

namespace sfpo {

class WeightBoard {
 public:
  // Replaces the current version (the previous payload is freed once no stream holds it).
  void Publish(PackedWeights weights);
  // The current version if it is newer than `have_version`, waiting up to `timeout` for one;
  // nullptr on timeout or once closed.
  std::shared_ptr<const PackedWeights> WaitNewer(int64_t have_version, absl::Duration timeout);
  std::shared_ptr<const PackedWeights> current() const;
  // Wakes every waiter; WaitNewer returns nullptr from now on.
  void Close();
  bool closed() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const PackedWeights> current_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_WEIGHT_BOARD_H_
