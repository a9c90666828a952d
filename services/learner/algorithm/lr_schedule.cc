#include "services/learner/algorithm/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace sfpo {

absl::StatusOr<LrScheduleKind> ParseLrSchedule(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "cosine") return LrScheduleKind::kCosine;
  return absl::InvalidArgumentError(absl::StrCat(
      "learner.schedule: unknown schedule '", name, "' (expected constant or cosine)"));
}

double LearningRateAt(const LrScheduleOptions& options, int64_t step) {
  const double base = options.base_lr;
  if (step < options.warmup_steps) {
    return base * static_cast<double>(step + 1) / static_cast<double>(options.warmup_steps);
  }
  if (options.kind == LrScheduleKind::kConstant) return base;
  const int64_t span = std::max<int64_t>(1, options.total_steps - options.warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - options.warmup_steps) / static_cast<double>(span));
  const double floor = base * options.min_lr_ratio;
  return floor + (base - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace sfpo
