// The token-level policy loss: PPO-clip with asymmetric bounds, entropy bonus and an optional
// KL penalty to a frozen reference policy, weighted per token so that the caller chooses the
// aggregation (token mean or sequence mean) and any micro-batch split sums to the same value.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_LOSS_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_LOSS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace sfpo {

enum class KlEstimator { kK1, kK3 };
enum class LossAggregation { kTokenMean, kSequenceMean };

absl::StatusOr<KlEstimator> ParseKlEstimator(const std::string& name);       // "k1" | "k3"
absl::StatusOr<LossAggregation> ParseLossAggregation(const std::string& name);  // token_mean | seq_mean

struct LossOptions {
  double clip_low = 0.2;   // ratio lower bound 1 - clip_low
  double clip_high = 0.2;  // ratio upper bound 1 + clip_high
  double entropy_coef = 0.001;
  double kl_coef = 0.0;  // > 0 needs ref_logp
  KlEstimator kl_estimator = KlEstimator::kK3;
};

// Inputs for a set of rows (a micro-batch), all [b, t] except advantages [b].
struct LossInputs {
  at::Tensor logp;          // current policy, differentiable
  at::Tensor entropy;       // current policy, differentiable
  at::Tensor old_logp;      // theta_0 (behaviour), constant
  at::Tensor advantages;    // [b]
  at::Tensor mask;          // 1 at response tokens, 0 elsewhere
  at::Tensor token_weight;  // mask * aggregation weight
  at::Tensor ref_logp;      // undefined unless kl_coef > 0
};

// Weighted loss and unweighted diagnostic sums over the response tokens (mask == 1).
struct LossTerms {
  at::Tensor loss;            // scalar: sum_t w_t * (pg_t - entropy_coef*H_t + kl_coef*KL_t)
  double tokens = 0;          // number of response tokens
  double pg_sum = 0;          // sum of the PPO-clip term
  double entropy_sum = 0;     // sum of token entropies
  double clipped_sum = 0;     // tokens where the clipped branch is the active one
  double approx_kl_sum = 0;   // sum of (r - 1) - log r: k3 estimate of KL(theta_0 || theta)
  double ref_kl_sum = 0;      // sum of the reference KL estimate (0 without a reference)
};

// Per token: r = exp(logp - old_logp); pg = max(-A r, -A clip(r, 1-clip_low, 1+clip_high));
// KL k1 = logp - ref_logp; k3 = exp(ref - logp) - (ref - logp) - 1.
LossTerms ComputeTokenLoss(const LossInputs& in, const LossOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_LOSS_H_
