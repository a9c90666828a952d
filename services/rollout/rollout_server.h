// A rollout worker: the lease-generate-score-submit loop plus its status/drain service.
#ifndef SFPO_SERVICES_ROLLOUT_ROLLOUT_SERVER_H_
#define SFPO_SERVICES_ROLLOUT_ROLLOUT_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/rollout/worker.h"

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
  int max_leases = 8;           // leases generated together
  double format_reward = 0.0;   // forwarded to the verifier
  absl::Duration item_deadline = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(2);
  // Builds the model side (called once, before serving).
  std::function<absl::StatusOr<std::unique_ptr<Generator>>()> make_generator;
};

// A running worker. Thread-safe.
class RolloutServer {
 public:
  virtual ~RolloutServer() = default;
  virtual int port() const = 0;
  virtual void Shutdown(absl::Duration grace) = 0;
  virtual void Wait() = 0;
  // Stops taking leases; finishes or releases those in flight, then the worker stops.
  virtual void Drain() = 0;
  // True once the worker loop has stopped (learner done, drained, or failed).
  virtual bool stopped() const = 0;
  virtual absl::Status status() const = 0;
  virtual WorkerStatusSnapshot snapshot() const = 0;
};

// Starts the worker; UNAVAILABLE when the address cannot be bound.
absl::StatusOr<std::unique_ptr<RolloutServer>> StartRolloutServer(const RolloutServerOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_ROLLOUT_SERVER_H_
