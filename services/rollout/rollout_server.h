// A rollout worker: the lease-generate-score-submit loop plus its status/drain service.
#ifndef SFPO_SERVICES_ROLLOUT_ROLLOUT_SERVER_H_
#define SFPO_SERVICES_ROLLOUT_ROLLOUT_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sfpo {

struct RolloutServerOptions {
  std::string listen = "127.0.0.1:0";
  // Metrics families are added here; may be null (no metrics).
  std::shared_ptr<prometheus::Registry> registry;
  // Learner and verifier addresses (gRPC target strings, e.g. dns:///host:port).
  std::string learner_address;
  std::string reward_address;
  std::string worker_id = "worker-0";
};

// A running worker. Thread-safe.
class RolloutServer {
 public:
  virtual ~RolloutServer() = default;
  virtual int port() const = 0;
  virtual void Shutdown(absl::Duration grace) = 0;
  virtual void Wait() = 0;
};

// Starts the worker; UNAVAILABLE when the address cannot be bound.
absl::StatusOr<std::unique_ptr<RolloutServer>> StartRolloutServer(const RolloutServerOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_ROLLOUT_SERVER_H_
