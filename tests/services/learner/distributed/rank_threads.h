// Test helper: runs data-parallel ranks as threads of one process, each with its own c10d Gloo
// process group, all on one rendezvous store bound to a free loopback port.
#ifndef SFPO_TESTS_SERVICES_LEARNER_DISTRIBUTED_RANK_THREADS_H_
#define SFPO_TESTS_SERVICES_LEARNER_DISTRIBUTED_RANK_THREADS_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/learner/distributed/collectives.h"
#include "services/learner/distributed/gloo_collectives.h"

namespace sfpo {
namespace testing {

struct RankThreadsOptions {
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration heartbeat_interval = absl::ZeroDuration();
  bool barrier_at_end = true;  // all ranks meet before tearing their groups down
};

// Runs fn(rank, collectives) on `world` threads; returns each rank's status (a failure to join
// the group is that rank's status).
inline std::vector<absl::Status> RunGlooRanks(
    int world, const std::function<absl::Status(int, Collectives*)>& fn,
    const RankThreadsOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<RendezvousServer>> server =
      RendezvousServer::Start(0, options.timeout);
  if (!server.ok()) return std::vector<absl::Status>(world, server.status());
  std::vector<absl::Status> out(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      GlooOptions o;
      o.rank = r;
      o.world_size = world;
      o.store_port = (*server)->port();
      o.device_host = "127.0.0.1";
      o.timeout = options.timeout;
      o.heartbeat_interval = options.heartbeat_interval;
      absl::StatusOr<std::unique_ptr<Collectives>> c = CreateGlooCollectives(o);
      if (!c.ok()) {
        out[r] = c.status();
        return;
      }
      out[r] = fn(r, c->get());
      if (out[r].ok() && options.barrier_at_end) out[r] = (*c)->Barrier();
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

}  // namespace testing
}  // namespace sfpo

#endif  // SFPO_TESTS_SERVICES_LEARNER_DISTRIBUTED_RANK_THREADS_H_
