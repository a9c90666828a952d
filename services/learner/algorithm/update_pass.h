// One update pass over a batch: mini-batches of prompt groups, each accumulated over
// micro-batches packed to a token budget, then a global grad-norm clip and one optimizer step.
// Loss scaling makes the mini-batch gradient independent of the micro-batch split: every token
// is weighted by its share of the mini-batch aggregate (1 / response tokens of the mini-batch
// for the token mean; 1 / (tokens of its sequence * sequences of the mini-batch) for the
// sequence mean).
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_UPDATE_PASS_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_UPDATE_PASS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/algorithm/loss.h"

namespace torch {
namespace optim {
class Optimizer;
}  // namespace optim
}  // namespace torch

namespace sfpo {

struct UpdateOptions {
  LossOptions loss;
  LossAggregation aggregation = LossAggregation::kTokenMean;
  int64_t mini_batch_groups = 64;      // prompts (groups) per optimizer step
  int64_t micro_batch_tokens = 16384;  // padded tokens per forward (rows * longest row)
  double grad_clip = 1.0;              // global L2 norm; <= 0 disables clipping
};

// A micro-batch: rows of the batch, run together, trimmed to the longest row.
struct MicroBatch {
  std::vector<int64_t> rows;
  int64_t max_length = 0;
};

struct MiniBatch {
  std::vector<int64_t> rows;  // every row of the mini-batch's groups
  std::vector<MicroBatch> micro_batches;
  // Aggregation totals of the whole mini-batch when `rows` are only one data-parallel rank's
  // share of it (response tokens; sequences with at least one); negative: counted from `rows`.
  double total_tokens = -1;
  double total_sequences = -1;
};

// Splits rows into micro-batches: rows sorted by length (longest first, ties by row), packed
// greedily while rows * longest <= token_budget; a row longer than the budget runs alone.
std::vector<MicroBatch> PackMicroBatches(const std::vector<int64_t>& rows,
                                         const std::vector<int64_t>& lengths, int64_t token_budget);

// The pass's plan: groups in `group_order`, `mini_batch_groups` at a time.
std::vector<MiniBatch> PlanPass(const RolloutBatch& batch, const std::vector<int64_t>& group_order,
                                const UpdateOptions& options);

// Diagnostics of one pass. Token-level figures are means over all response tokens of the
// pass, measured on each mini-batch's forward before its optimizer step.
struct PassStats {
  double loss = 0;            // mean over mini-batches of the aggregated loss
  double pg_loss = 0;         // token mean of the PPO-clip term
  double entropy = 0;         // token mean entropy
  double clip_fraction = 0;   // share of tokens where the clip is active
  double approx_kl = 0;       // token mean of (r - 1) - log r, KL(theta_0 || theta)
  double ref_kl = 0;          // token mean of the reference KL estimate
  double grad_norm_mean = 0;  // pre-clip global grad norm, mean and max over mini-batches
  double grad_norm_max = 0;
  int64_t optimizer_steps = 0;
  int64_t micro_batches = 0;
  int64_t tokens = 0;
};

// Running sums for a pass (internal to RunUpdatePass, exposed for tests).
struct PassAccumulator {
  double loss = 0, pg = 0, entropy = 0, clipped = 0, approx_kl = 0, ref_kl = 0, tokens = 0;
  double grad_norm_sum = 0, grad_norm_max = 0;
  int64_t optimizer_steps = 0, micro_batches = 0;
  PassStats Finish() const;
};

// Computes old_logp [N, T] of the current policy for every row, without gradients, in
// micro-batches of `micro_batch_tokens`; positions beyond a row's length are 0.
absl::StatusOr<at::Tensor> ComputeSequenceLogp(const PolicyFn& policy, const RolloutBatch& batch,
                                               int64_t micro_batch_tokens);

// Zeroes the gradients of `params` (set to undefined), then backpropagates the mini-batch loss
// micro-batch by micro-batch. The batch must be prepared, with advantages and old_logp.
// `before_last_backward`, when set, runs just before the last micro-batch's backward pass (the
// one that leaves every gradient final: a data-parallel rank arms its reduction there).
absl::Status AccumulateMiniBatchGradients(
    const PolicyFn& policy, const std::vector<at::Tensor>& params, const RolloutBatch& batch,
    const MiniBatch& mini_batch, const UpdateOptions& options, PassAccumulator* acc,
    const std::function<void()>& before_last_backward = nullptr);

// One update pass. `group_order` is a permutation of [0, num_groups) (empty: natural order).
// INVALID_ARGUMENT for a bad batch or order, INTERNAL for a Torch error, with its message.
absl::StatusOr<PassStats> RunUpdatePass(const PolicyFn& policy,
                                        const std::vector<at::Tensor>& params,
                                        torch::optim::Optimizer* optimizer,
                                        const RolloutBatch& batch,
                                        const std::vector<int64_t>& group_order,
                                        const UpdateOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_UPDATE_PASS_H_
