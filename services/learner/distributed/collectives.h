// Collective operations among the learner's data-parallel ranks, on flat contiguous tensors:
// the seam between the learner's data-parallel update and a communication backend. Two
// implementations: LocalCollectives (world size 1, every operation is a copy or a no-op) and the
// c10d Gloo one (gloo_collectives.h). Every call is bounded by the implementation's collective
// timeout; a call that fails leaves the group unusable (every later call fails too).
//
// All ranks must issue the same calls in the same order with the same sizes. Not thread-safe:
// one thread drives a Collectives object.
#ifndef SFPO_SERVICES_LEARNER_DISTRIBUTED_COLLECTIVES_H_
#define SFPO_SERVICES_LEARNER_DISTRIBUTED_COLLECTIVES_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sfpo {

// Cumulative traffic of a Collectives object (for metrics: take differences per step).
struct CollectiveStats {
  int64_t calls = 0;
  int64_t bytes = 0;   // payload bytes handed to the backend (this rank's view)
  double seconds = 0;  // wall time spent inside collective calls
  int64_t all_reduce_calls = 0;
  int64_t all_reduce_bytes = 0;
  double all_reduce_seconds = 0;
};

// A collective under way (Collectives::StartReduceScatterSum). Wait() finishes it: blocks until
// it is done (bounded by the collective timeout) and returns what the blocking call would have.
// Destroying a pending collective without Wait() waits for it and drops its status.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual absl::Status Wait() = 0;
};

class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // tensor <- sum over ranks of tensor, in place. `tensor`: contiguous, CPU, any numeric dtype.
  // UNAVAILABLE / DEADLINE_EXCEEDED naming the unresponsive rank(s) on failure.
  virtual absl::Status AllReduceSum(at::Tensor& tensor) = 0;
  // full <- concatenation of every rank's `shard` (rank order). full.numel() must be
  // world_size * shard.numel(); both contiguous, same dtype.
  virtual absl::Status AllGather(const at::Tensor& shard, at::Tensor& full) = 0;
  // shard <- this rank's 1/world_size slice of the sum over ranks of `full` (same layout as
  // AllGather). `full` may be overwritten (it serves as the reduction buffer).
  virtual absl::Status ReduceScatterSum(at::Tensor& full, at::Tensor& shard) = 0;
  // ReduceScatterSum, started and not waited for: the caller may compute (or start more
  // collectives) meanwhile, and must leave `full` and `shard` alone until Wait() returns. Every
  // rank must start the same collectives in the same order. The default runs ReduceScatterSum
  // at once (nothing to overlap with one rank).
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> StartReduceScatterSum(
      at::Tensor& full, at::Tensor& shard);
  // tensor <- root's tensor, in place.
  virtual absl::Status Broadcast(at::Tensor& tensor, int root) = 0;
  virtual absl::Status Barrier() = 0;
  // A small control message (e.g. the leader's next command) from `root` to every other rank:
  // root passes it in *message; the others wait up to `wait` for it (longer than the collective
  // timeout if need be: the leader may be waiting for rollouts) and receive it in *message.
  // A leader that dies ends the wait with an error.
  virtual absl::Status BroadcastMessage(std::string* message, int root, absl::Duration wait) = 0;

  virtual CollectiveStats stats() const = 0;
};

// World size 1: AllReduceSum, Broadcast and Barrier do nothing; AllGather/ReduceScatterSum copy.
std::unique_ptr<Collectives> MakeLocalCollectives();

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_DISTRIBUTED_COLLECTIVES_H_
