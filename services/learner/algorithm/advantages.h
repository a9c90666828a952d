// Group-relative advantages (GRPO): A_i = (r_i - mean(r)) / (std(r) + eps) within each prompt's
// group of completions, std unbiased; the division can be switched off.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_ADVANTAGES_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_ADVANTAGES_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace sfpo {

struct AdvantageOptions {
  bool normalize_std = true;  // divide by the group's unbiased std + eps
  double eps = 1e-6;
};

struct GroupAdvantages {
  at::Tensor advantages;  // [N], dtype of the rewards; 0 for every member of a zero-variance group.
  int64_t zero_variance_groups = 0;  // groups whose rewards are all exactly equal
  std::vector<int64_t> informative_groups;  // indices of the other groups, ascending
};

// rewards: [N] floating, N a multiple of group_size. INVALID_ARGUMENT for a bad shape, a
// non-finite reward, or group_size < 2 with normalize_std (the unbiased std needs 2 samples).
absl::StatusOr<GroupAdvantages> ComputeGroupAdvantages(const at::Tensor& rewards,
                                                       int64_t group_size,
                                                       const AdvantageOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_ADVANTAGES_H_
