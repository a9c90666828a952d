// gRPC implementations of the worker's LearnerClient and RewardClient (adapter layer).
#ifndef SFPO_SERVICES_ROLLOUT_CLIENTS_H_
#define SFPO_SERVICES_ROLLOUT_CLIENTS_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "services/rollout/worker.h"

namespace sfpo {

struct LearnerClientOptions {
  std::string target;  // gRPC target, e.g. "127.0.0.1:50051" or "dns:///learner:50051"
  std::string worker_id;
  absl::Duration call_timeout = absl::Seconds(10);
  int max_message_bytes = 64 << 20;
};

std::shared_ptr<LearnerClient> MakeGrpcLearnerClient(const LearnerClientOptions& options);

struct RewardClientOptions {
  // gRPC target; "dns:///host:port" (several A records) or "ipv4:a:p,b:q" balance round_robin.
  std::string target;
  double format_reward = 0.0;
  absl::Duration item_deadline = absl::Milliseconds(100);
  absl::Duration call_timeout = absl::Seconds(10);
  int max_batch_items = 4096;
};

std::shared_ptr<RewardClient> MakeGrpcRewardClient(const RewardClientOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_CLIENTS_H_
