#include "services/learner/algorithm/advantages.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "services/learner/algorithm/torch_guard.h"

namespace sfpo {

absl::StatusOr<GroupAdvantages> ComputeGroupAdvantages(const at::Tensor& rewards,
                                                       int64_t group_size,
                                                       const AdvantageOptions& options) {
  GroupAdvantages out;
  absl::Status status = GuardTorch("ComputeGroupAdvantages", [&]() -> absl::Status {
    if (!rewards.defined() || rewards.dim() != 1 || !rewards.is_floating_point()) {
      return absl::InvalidArgumentError("rewards must be a 1-d floating tensor");
    }
    if (group_size < 1 || rewards.size(0) == 0 || rewards.size(0) % group_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(rewards.size(0),
                                                     " rewards are not a positive multiple of "
                                                     "group_size ",
                                                     group_size));
    }
    if (options.normalize_std && group_size < 2) {
      return absl::InvalidArgumentError(
          "normalising advantages by the group std needs group_size >= 2");
    }
    if (!torch::isfinite(rewards).all().item<bool>()) {
      return absl::InvalidArgumentError("rewards contain a non-finite value");
    }
    // r: [num_groups, G]
    at::Tensor r = rewards.reshape({-1, group_size});
    at::Tensor centered = r - r.mean(1, /*keepdim=*/true);
    at::Tensor adv = centered;
    if (options.normalize_std) {
      adv = centered / (r.std(1, /*unbiased=*/true, /*keepdim=*/true) + options.eps);
    }
    at::Tensor constant = (r.amax(1) == r.amin(1)).to(torch::kCPU);
    // Exactly zero for constant groups, whatever rounding the mean had.
    adv = adv.masked_fill(constant.to(adv.device()).unsqueeze(1), 0.0);
    out.advantages = adv.reshape({-1});
    const bool* flags = constant.data_ptr<bool>();
    for (int64_t g = 0; g < constant.size(0); ++g) {
      if (flags[g]) {
        ++out.zero_variance_groups;
      } else {
        out.informative_groups.push_back(g);
      }
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace sfpo
