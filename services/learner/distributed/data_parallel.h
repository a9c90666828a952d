// The data-parallel SFPO/GRPO outer step over `world_size` ranks, with ZeRO-1 sharded state.
//
// Every rank holds the whole batch and the whole model; it computes on its share of every
// mini-batch, split by whole groups, so that the N ranks together compute exactly the update
// one rank computes on the whole batch:
//   - the mini-batch's token and sequence counts (the aggregation denominators) are all-reduced
//     before its backward pass, so each rank's loss weights are the global ones;
//   - gradients are reduce-scattered in buckets of `bucket_bytes` over the flattened
//     parameters; each rank owns one 1/N chunk of every bucket (its shard);
//   - the grad norm for clipping is the global one (the shards' squared norms all-reduced);
//   - each rank keeps the AdamW moments and SFPO's saved copy theta_0 for its shard only, applies
//     AdamW (LibTorch 1.13's torch::optim::AdamW arithmetic) and the reposition
//     theta <- theta_0 + alpha (theta - theta_0) to its shard, then all-gathers the parameters;
//   - pass statistics (entropy included, which feeds the SFPO gate) are all-reduced sums, so
//     every rank reports, and gates on, the same global figures.
// old_logp (and any per-row log-probs) are computed on a static split of the groups and
// all-reduced (the other ranks contribute zeros), so every rank holds them for every row.
//
// All trainable parameters must share one floating dtype and live on the CPU (the Gloo
// backend). Not thread-safe; each rank drives its own updater, all ranks in lockstep.
#ifndef SFPO_SERVICES_LEARNER_DISTRIBUTED_DATA_PARALLEL_H_
#define SFPO_SERVICES_LEARNER_DISTRIBUTED_DATA_PARALLEL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/algorithm/slow_fast.h"
#include "services/learner/algorithm/update_pass.h"
#include "services/learner/distributed/collectives.h"

namespace sfpo {

// How the flattened parameters [0, total) are cut into buckets and shards. Bucket b covers
// [start, start + length); padded to `chunk` * world_size elements; rank r owns the elements
// [start + r*chunk, start + min((r+1)*chunk, length)) of it, stored at shard_offset in its
// shard (the padding of a chunk past `length` is held as zeros).
struct ShardLayout {
  struct Bucket {
    int64_t start = 0, length = 0, chunk = 0, shard_offset = 0;
  };
  int world_size = 1, rank = 0;
  int64_t total = 0;            // elements of all parameters
  int64_t bucket_elements = 0;  // per bucket (a multiple of world_size)
  int64_t shard_size = 0;       // elements of one rank's shard (padding included)
  std::vector<Bucket> buckets;

  // `bucket_elements` >= 1 (rounded up to a multiple of world_size).
  static ShardLayout Make(int64_t total, int64_t bucket_elements, int world_size, int rank);
  // Flat [begin, end) of this rank's elements in bucket b (end - begin <= chunk, may be 0).
  std::pair<int64_t, int64_t> Owned(const Bucket& b) const;
};

// AdamW's hyperparameters: one set for the single-rank torch::optim::AdamW and the sharded one.
struct AdamWHyperparameters {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

struct DataParallelOptions {
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient and parameter buckets
  AdamWHyperparameters adam;
  // Reduce each gradient bucket as soon as the last backward pass of a mini-batch has made its
  // gradients final (autograd hooks on the parameters' accumulators), overlapping the
  // reduction with the rest of that backward pass. false: every bucket after the backward.
  // Both compute the same update bitwise.
  bool overlap_reduce = true;
};

// The sharded optimizer and SFPO state of one rank, for checkpoints and tests. Tensors are
// [shard_size] views of the updater's storage (copy before changing them).
struct ShardState {
  int64_t adam_step = 0;  // AdamW steps taken (0: moments not yet created)
  at::Tensor exp_avg, exp_avg_sq;
  at::Tensor theta0;  // undefined when no copy is held (GRPO, or before the first SFPO step)
};

// The consolidated flat [total] tensor from every rank's [shard_size] shard (rank order) of a
// layout with `bucket_elements` per bucket. INVALID_ARGUMENT when a shard has the wrong size.
absl::StatusOr<at::Tensor> ConsolidateShards(const std::vector<at::Tensor>& shards, int64_t total,
                                             int64_t bucket_elements);

class DataParallelUpdater {
 public:
  // `params`: the trainable parameters in a fixed order (the same on every rank), updated in
  // place. Broadcasts rank 0's parameter values to every rank. `collectives` must outlive the
  // updater. INVALID_ARGUMENT for mixed dtypes, non-CPU or non-floating parameters.
  static absl::StatusOr<std::unique_ptr<DataParallelUpdater>> Create(
      std::vector<at::Tensor> params, Collectives* collectives, const DataParallelOptions& options);
  ~DataParallelUpdater();

  // One outer step (K fast passes, reposition, slow pass; K = 0: one GRPO pass) at learning
  // rate `lr`, as SlowFastUpdater::Step, over all ranks. Every rank must pass the same batch,
  // options and group order. Errors as SlowFastUpdater::Step, plus a collective's error.
  absl::StatusOr<SlowFastStepStats> Step(const PolicyFn& policy, RolloutBatch* batch,
                                         const UpdateOptions& update,
                                         const SlowFastOptions& options,
                                         const GroupOrderFn& group_order, double lr);

  // Log-probs [N, T] of `policy` for every row (0 beyond the response), each rank computing a
  // static share of the groups; in the parameters' dtype.
  absl::StatusOr<at::Tensor> SequenceLogp(const PolicyFn& policy, const RolloutBatch& batch,
                                          int64_t micro_batch_tokens);

  void ReleaseSavedParameters();
  // Bytes of this rank's shard of theta_0 (0 when none is held).
  int64_t saved_bytes() const;
  // Bytes of the trainable parameters (all of them, unsharded).
  int64_t parameter_bytes() const;
  const ShardLayout& layout() const;
  ShardState state() const;

  // Replaces this rank's state with the slices it owns of full flat [total] tensors (the
  // consolidated state; any world size wrote it). theta0 may be undefined (no copy held).
  // INVALID_ARGUMENT for a wrong size.
  absl::Status LoadFullState(int64_t adam_step, const at::Tensor& exp_avg,
                             const at::Tensor& exp_avg_sq, const at::Tensor& theta0);
  // Replaces this rank's state with shards of this same layout (a resume on the same world
  // size, bitwise).
  absl::Status LoadShardState(const ShardState& state);
  // All-gathers a [shard_size] state tensor of every rank into a full flat [total] one.
  absl::StatusOr<at::Tensor> GatherFull(const at::Tensor& shard);
  // Re-reads this rank's parameter shard from the parameters (after they were loaded).
  absl::Status SyncFromParameters();
  Collectives* collectives() const;
  // This rank's own token-mean entropy of the last pass, before the all-reduce (what a gate on
  // one rank's local estimate would see; NaN when the rank had no tokens). Diagnostics only.
  double last_local_entropy() const;
  // Gradient buckets whose reduction started inside a backward pass (overlap_reduce), so far.
  int64_t buckets_overlapped() const;

 private:
  struct Impl;
  explicit DataParallelUpdater(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_DISTRIBUTED_DATA_PARALLEL_H_
