// Collectives over PyTorch's c10d: a TCPStore for the rendezvous and ProcessGroupGloo (CPU) for
// the operations. Every collective is bounded by `timeout` (Gloo's own timeout and the wait on
// the work item). A failing collective is diagnosed through the store before its error is
// returned: each rank keeps a heartbeat key there (a background thread) carrying how many
// collectives it has entered, so the error names the rank that died (its heartbeat stopped) or
// lags (it has not reached this collective), or says that the store host, rank 0, is gone.
//
// The c10d headers stay in gloo_collectives.cc.
#ifndef SFPO_SERVICES_LEARNER_DISTRIBUTED_GLOO_COLLECTIVES_H_
#define SFPO_SERVICES_LEARNER_DISTRIBUTED_GLOO_COLLECTIVES_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/learner/distributed/collectives.h"

namespace sfpo {

// The rendezvous store's server (a c10d TCPStore server). Rank 0 hosts it (GlooOptions.
// host_store), or a launcher that runs every rank in one process starts it first, on port 0,
// and hands port() to the ranks. Thread-safe; stops serving when destroyed.
class RendezvousServer {
 public:
  // Listens on `port` (0: any free port). UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<RendezvousServer>> Start(int port, absl::Duration timeout);
  virtual ~RendezvousServer() = default;
  virtual int port() const = 0;
};

struct GlooOptions {
  int rank = 0;
  int world_size = 1;
  std::string store_host = "127.0.0.1";  // the rendezvous store's address
  int store_port = 0;                    // must be set unless host_store (then 0: any port)
  bool host_store = false;               // this rank (normally 0) starts the store's server
  // Address this rank's Gloo transport binds to; empty: the machine's hostname (Gloo's default
  // device). "127.0.0.1" for ranks on one machine.
  std::string device_host;
  absl::Duration timeout = absl::Seconds(300);  // rendezvous and every collective
  // Period of the heartbeat; zero: timeout / 10, at most one second.
  absl::Duration heartbeat_interval = absl::ZeroDuration();
};

// Connects to the store, joins the process group (waits up to `timeout` for every rank) and
// starts the heartbeat. INVALID_ARGUMENT for bad ranks; UNAVAILABLE / DEADLINE_EXCEEDED when the
// store or a rank does not answer in time.
absl::StatusOr<std::unique_ptr<Collectives>> CreateGlooCollectives(const GlooOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_DISTRIBUTED_GLOO_COLLECTIVES_H_
