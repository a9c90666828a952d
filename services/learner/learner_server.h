// The learner as a gRPC service: leases, scored groups, weight broadcast, health, metrics.
#ifndef SFPO_SERVICES_LEARNER_LEARNER_SERVER_H_
#define SFPO_SERVICES_LEARNER_LEARNER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sfpo {

struct LearnerServerOptions {
  std::string listen = "127.0.0.1:0";
  // Metrics families are added here; may be null (no metrics).
  std::shared_ptr<prometheus::Registry> registry;
  // Largest SubmitGroups message accepted, in bytes.
  int max_receive_message_bytes = 16 << 20;
};

// A running learner. Thread-safe.
class LearnerServer {
 public:
  virtual ~LearnerServer() = default;
  virtual int port() const = 0;
  virtual void Shutdown(absl::Duration grace) = 0;
  virtual void Wait() = 0;
};

// Starts the learner; UNAVAILABLE when the address cannot be bound.
absl::StatusOr<std::unique_ptr<LearnerServer>> StartLearnerServer(const LearnerServerOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_LEARNER_SERVER_H_
