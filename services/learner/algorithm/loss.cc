#include "services/learner/algorithm/loss.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace sfpo {

absl::StatusOr<KlEstimator> ParseKlEstimator(const std::string& name) {
  if (name == "k1") return KlEstimator::kK1;
  if (name == "k3") return KlEstimator::kK3;
  return absl::InvalidArgumentError(
      absl::StrCat("learner.kl_estimator: unknown estimator '", name, "' (expected k1 or k3)"));
}

absl::StatusOr<LossAggregation> ParseLossAggregation(const std::string& name) {
  if (name == "token_mean") return LossAggregation::kTokenMean;
  if (name == "seq_mean") return LossAggregation::kSequenceMean;
  return absl::InvalidArgumentError(absl::StrCat(
      "learner.loss_agg: unknown aggregation '", name, "' (expected token_mean or seq_mean)"));
}

LossTerms ComputeTokenLoss(const LossInputs& in, const LossOptions& options) {
  // All [b, t] except advantages [b] -> [b, 1].
  const at::Tensor& logp = in.logp;
  const at::Tensor mask = in.mask.to(logp.scalar_type());
  const at::Tensor weight = in.token_weight.to(logp.scalar_type());
  const at::Tensor old_logp = in.old_logp.to(logp.scalar_type());
  const at::Tensor adv = in.advantages.to(logp.scalar_type()).unsqueeze(1);

  // The mask zeroes log-ratios outside the response so padding can never overflow exp().
  const at::Tensor log_ratio = (logp - old_logp) * mask;
  const at::Tensor ratio = torch::exp(log_ratio);
  const at::Tensor pg_unclipped = -adv * ratio;
  const at::Tensor pg_clipped =
      -adv * torch::clamp(ratio, 1.0 - options.clip_low, 1.0 + options.clip_high);
  const at::Tensor pg = torch::max(pg_unclipped, pg_clipped);
  at::Tensor per_token = pg - options.entropy_coef * in.entropy;

  at::Tensor ref_kl;
  if (options.kl_coef > 0 && in.ref_logp.defined()) {
    const at::Tensor diff = (in.ref_logp.to(logp.scalar_type()) - logp) * mask;  // ref - logp
    ref_kl = options.kl_estimator == KlEstimator::kK1 ? -diff : torch::exp(diff) - diff - 1.0;
    per_token = per_token + options.kl_coef * ref_kl;
  }

  LossTerms terms;
  terms.loss = (per_token * weight).sum();
  {
    torch::NoGradGuard no_grad;
    const at::Tensor ratio_d = ratio.detach();
    // Five sums in one device->host copy.
    std::vector<at::Tensor> sums = {
        mask.sum(),
        (pg.detach() * mask).sum(),
        (in.entropy.detach().to(logp.scalar_type()) * mask).sum(),
        (pg_clipped.detach() > pg_unclipped.detach()).to(logp.scalar_type()).mul(mask).sum(),
        ((ratio_d - 1.0 - log_ratio.detach()) * mask).sum(),
        ref_kl.defined() ? (ref_kl.detach() * mask).sum() : torch::zeros({}, logp.options()),
    };
    at::Tensor host = torch::stack(sums).to(torch::kCPU, torch::kFloat64);
    const double* v = host.data_ptr<double>();
    terms.tokens = v[0];
    terms.pg_sum = v[1];
    terms.entropy_sum = v[2];
    terms.clipped_sum = v[3];
    terms.approx_kl_sum = v[4];
    terms.ref_kl_sum = v[5];
  }
  return terms;
}

}  // namespace sfpo
