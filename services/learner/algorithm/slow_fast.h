// One outer step of SFPO (Slow-Fast Policy Optimization), with GRPO as the case K = 0:
//   old_logp <- logp at theta_0, once, without gradients;
//   theta_0 saved (one copy of the trainable parameters, allocated once and reused);
//   K fast update passes with old_logp fixed;
//   reposition in place: theta <- theta_0 + alpha (theta - theta_0)   (p.lerp_(theta_0, 1-alpha));
//   one slow update pass.
// Optimizer moments carry on through all passes and are not touched by the reposition; buffers
// are never touched. Not thread-safe; the caller owns the policy and the optimizer.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_SLOW_FAST_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_SLOW_FAST_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "services/learner/algorithm/batch.h"
#include "services/learner/algorithm/update_pass.h"

namespace sfpo {

struct SlowFastStepStats {
  int64_t inner_steps = 0;  // K used for this step (0: a GRPO step)
  double alpha = 1.0;
  std::vector<PassStats> passes;  // K fast passes, then the slow one (the last)
  double theta_k_distance = 0;    // ||theta_K - theta_0|| (0 when K = 0)
  // ||theta_next - theta_0||; NaN on a GRPO step (K = 0) unless options.grpo_distance kept a copy.
  double theta_next_distance = 0;
  double behavior_logp_abs_diff = 0;  // token mean |old_logp - behavior_logp| (0 without)
  double old_logprob_seconds = 0, fast_seconds = 0, reposition_seconds = 0, slow_seconds = 0;
};

struct SlowFastOptions {
  int64_t inner_steps = 3;  // K; 0 runs exactly one plain update pass (GRPO)
  double alpha = 0.8;       // reposition factor in [0, 1]
  // Use the workers' behavior_logp as old_logp instead of recomputing it (bounded staleness).
  bool behavior_as_old_logp = false;
  // On a GRPO step (K = 0), save theta_0 anyway so theta_next_distance is measured (one copy of
  // the parameters, as SFPO keeps). false: no copy, theta_next_distance is NaN.
  bool grpo_distance = false;
  // Keep theta_0 in host memory (pinned, for parameters on a GPU) instead of beside the
  // parameters: no extra accelerator memory, a device-host copy each way per step. For CPU
  // parameters host memory is where they are anyway.
  bool theta0_on_host = false;
};

// Supplies the group order of each pass (e.g. a shuffle); nullptr: natural order.
using GroupOrderFn = std::function<std::vector<int64_t>(int64_t num_groups)>;

class SlowFastUpdater {
 public:
  // `params`: the trainable parameters, in a fixed order, shared with the optimizer.
  explicit SlowFastUpdater(std::vector<at::Tensor> params);

  // Runs one outer step on `batch` (prepared, with advantages; old_logp is computed here, once,
  // and stored in the batch). INVALID_ARGUMENT for bad options or batch, INTERNAL for Torch
  // errors.
  absl::StatusOr<SlowFastStepStats> Step(const PolicyFn& policy, torch::optim::Optimizer* optimizer,
                                         RolloutBatch* batch, const UpdateOptions& update,
                                         const SlowFastOptions& options,
                                         const GroupOrderFn& group_order = nullptr);

  // Frees theta_0 (e.g. once the gate has switched to GRPO for good).
  void ReleaseSavedParameters();
  // Bytes held by the saved copy theta_0 (0 before the first SFPO step or after release).
  int64_t saved_bytes() const;
  // Storage addresses of the saved copy, to check that it is allocated once.
  std::vector<const void*> saved_data_pointers() const;

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> theta0_;  // one per parameter, same shape/dtype/device
};

// What an outer step does to its parameter storage (all the parameters on one rank, or this
// rank's shard of them on data-parallel ranks). RunOuterStep calls these in the algorithm's
// order; each returns a Status (Torch errors caught).
struct OuterStepStages {
  std::function<absl::StatusOr<at::Tensor>()> compute_old_logp;  // logp at theta_0 [N, T]
  std::function<absl::Status()> save_theta0;                     // theta_0 <- theta
  // One update pass over the batch's groups in `order` (empty: natural order).
  std::function<absl::StatusOr<PassStats>(const std::vector<int64_t>& order)> update_pass;
  std::function<absl::StatusOr<double>()> distance;  // ||theta - theta_0||
  // theta <- theta_0 + alpha (theta - theta_0)
  std::function<absl::Status(double alpha)> reposition;
};

// One outer step, shared by SlowFastUpdater and the data-parallel updater: validates `options`
// (INVALID_ARGUMENT naming sfpo.inner_steps / sfpo.alpha); sets batch->old_logp to the workers'
// behavior_logp (options.behavior_as_old_logp) or to compute_old_logp(); saves theta_0 (when
// K > 0 or options.grpo_distance); K fast passes; the reposition; the slow pass (each pass in a
// fresh `group_order`); and fills the stats, stage times included.
absl::StatusOr<SlowFastStepStats> RunOuterStep(RolloutBatch* batch, const SlowFastOptions& options,
                                               const GroupOrderFn& group_order,
                                               const OuterStepStages& stages);

// theta_0 <- p, allocating theta_0 when undefined or of another size: like `p`, or with
// `on_host` and `p` on a GPU, in pinned host memory (the copy is then asynchronous on the
// current stream, ordered before every later use of theta_0 from that stream).
void SaveTensor(const at::Tensor& p, at::Tensor* theta0, bool on_host);
// p <- theta_0 + alpha (p - theta_0), in place. theta_0 beside p: no temporaries; theta_0 in
// host memory: brought over in bounded-size chunks.
void RepositionTensor(const at::Tensor& p, const at::Tensor& theta0, double alpha);
// sum((p - theta_0)^2) in double, in bounded-size chunks (no full-size temporary); `scratch`
// is a reusable buffer.
double SquaredDistance(const at::Tensor& p, const at::Tensor& theta0, at::Tensor* scratch);

// The same, parameter by parameter.
void SaveParameters(const std::vector<at::Tensor>& params, std::vector<at::Tensor>* theta0,
                    bool on_host = false);
void Reposition(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& theta0,
                double alpha);
// ||params - theta_0|| over all parameters.
double DistanceToSaved(const std::vector<at::Tensor>& params,
                       const std::vector<at::Tensor>& theta0);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_SLOW_FAST_H_
