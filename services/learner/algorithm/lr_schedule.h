// Learning-rate schedules, stepped once per outer step. No Torch.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_LR_SCHEDULE_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_LR_SCHEDULE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace sfpo {

enum class LrScheduleKind { kConstant, kCosine };
absl::StatusOr<LrScheduleKind> ParseLrSchedule(const std::string& name);  // constant | cosine

struct LrScheduleOptions {
  double base_lr = 1e-6;
  int64_t warmup_steps = 0;
  LrScheduleKind kind = LrScheduleKind::kConstant;
  int64_t total_steps = 1;    // cosine horizon
  double min_lr_ratio = 0.0;  // cosine floor as a fraction of base_lr
};

// The lr of outer step `step` (0-based). Warmup: base * (step + 1) / warmup_steps for
// step < warmup_steps, so the first step is never at 0. Then constant, or cosine from base to
// base * min_lr_ratio over [warmup_steps, total_steps).
double LearningRateAt(const LrScheduleOptions& options, int64_t step);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_LR_SCHEDULE_H_
