// The reward verifier as a gRPC service: batched Score, the standard health service, metrics.
#ifndef SFPO_SERVICES_REWARD_REWARD_SERVER_H_
#define SFPO_SERVICES_REWARD_REWARD_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/reward/verifier.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sfpo {

struct RewardServerOptions {
  std::string listen = "127.0.0.1:0";
  // Metrics families are added here; may be null (no metrics).
  std::shared_ptr<prometheus::Registry> registry;
  // Time budget per item when the request does not set one.
  absl::Duration default_item_deadline = absl::Milliseconds(100);
  // Largest batch accepted by one Score call; larger ones fail with INVALID_ARGUMENT.
  int max_batch_items = 4096;
  // Limits and math options for every item (format_reward comes from each request).
  VerifierOptions verifier;
};

// A running verifier. Thread-safe. Score checks each item with the checker its `task` names
// ("countdown3", "addition", "math"/empty, "gsm8k", "boxed"); a request that runs past its gRPC
// deadline or is cancelled gets VERDICT_ERROR ("deadline") for the items not yet scored.
// Metrics (when a registry is given): sfpo_reward_verdicts_total{verdict},
// sfpo_reward_errors_total{reason}, sfpo_reward_items_total, sfpo_reward_request_seconds.
class RewardServer {
 public:
  virtual ~RewardServer() = default;
  virtual int port() const = 0;
  virtual void Shutdown(absl::Duration grace) = 0;
  virtual void Wait() = 0;
};

// Starts the verifier; UNAVAILABLE when the address cannot be bound, INVALID_ARGUMENT for bad
// options.
absl::StatusOr<std::unique_ptr<RewardServer>> StartRewardServer(const RewardServerOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_REWARD_SERVER_H_
