// The learner's view of one outer step's data: scored groups of sampled sequences as tensors,
// and the "policy function" through which the algorithm sees a model. Pure data; no I/O.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_BATCH_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_BATCH_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sfpo {

// Per-token statistics of a policy on a batch of sequences.
struct PolicyOutput {
  // logp[b, t] = log pi(input_ids[b, t] | input_ids[b, <t]) for t >= 1, 0 at t = 0: [B, T].
  at::Tensor logp;
  // entropy[b, t] = entropy of the distribution that predicted position t: [B, T].
  at::Tensor entropy;
};

// Given right-padded input_ids [B, T] int64, returns differentiable logp/entropy [B, T] of the
// policy's current parameters. May throw c10::Error; the algorithm converts it to a Status.
using PolicyFn = std::function<PolicyOutput(const at::Tensor& input_ids)>;

// One outer step's batch: `num_groups` prompts, `group_size` completions each, groups stored
// contiguously (rows g*G .. g*G+G-1 belong to group g).
struct RolloutBatch {
  int64_t group_size = 0;
  at::Tensor input_ids;      // [N, T] int64, prompt then response, right-padded.
  at::Tensor response_mask;  // [N, T] 1 at positions of sampled response tokens (t >= 1), else 0.
  at::Tensor rewards;        // [N] float64, one per sequence.
  at::Tensor advantages;     // [N] per-sequence advantage (ComputeGroupAdvantages), any float.
  at::Tensor old_logp;       // [N, T] log-probs at theta_0; filled once per step by the learner.
  at::Tensor ref_logp;       // [N, T] frozen reference log-probs; undefined when kl_coef == 0.
  at::Tensor behavior_logp;  // [N, T] the workers' own log-probs; optional (a metric).
  // Per row: index of the last response token + 1 (columns beyond it are padding). Filled by
  // PrepareBatch.
  std::vector<int64_t> lengths;

  int64_t num_sequences() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  int64_t num_groups() const { return group_size > 0 ? num_sequences() / group_size : 0; }
};

// Checks shapes and dtypes (INVALID_ARGUMENT naming the field), converts response_mask to the
// dtype of `rewards`' float type if needed, and fills `lengths`. Rows without response tokens
// are allowed (they carry no weight).
absl::Status PrepareBatch(RolloutBatch* batch);

// The batch restricted to the listed groups, in that order (e.g. to drop zero-variance
// groups). Optional tensors stay undefined when undefined.
RolloutBatch SelectGroups(const RolloutBatch& batch, const std::vector<int64_t>& groups);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_BATCH_H_
