// The learner service: the lease table, the weight board, the outer loop and the gRPC service,
// started together and stopped together.
#ifndef SFPO_SERVICES_LEARNER_LEARNER_SERVER_H_
#define SFPO_SERVICES_LEARNER_LEARNER_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/learner/lease_table.h"
#include "services/learner/learner_loop.h"

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
  LeaseTableOptions leases;
  LearnerLoopOptions loop;
  // Builds the model side (called once, before serving).
  std::function<absl::StatusOr<std::unique_ptr<PolicyUpdater>>()> make_updater;
  // Fault injection for tests (see LearnerServiceOptions::chunk_filter).
  std::function<void(int64_t version, uint64_t offset, std::string* data)> chunk_filter;
};

// A running learner. Thread-safe.
class LearnerServer {
 public:
  virtual ~LearnerServer() = default;
  virtual int port() const = 0;
  // True once the loop has finished (total_steps reached, stopped, or failed).
  virtual bool done() const = 0;
  // Blocks until the loop finishes; its status.
  virtual absl::Status WaitDone() = 0;
  // Stops the loop (checkpointing first), then the server, waiting up to `grace` for calls.
  virtual void Shutdown(absl::Duration grace) = 0;
  virtual void Wait() = 0;
  virtual LedgerCounts ledger() const = 0;
  virtual int64_t step() const = 0;
};

// Starts the learner: restores (with resume), publishes the current version, serves, trains.
// UNAVAILABLE when the address cannot be bound; errors from building the model side.
absl::StatusOr<std::unique_ptr<LearnerServer>> StartLearnerServer(
    const LearnerServerOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_LEARNER_SERVER_H_
