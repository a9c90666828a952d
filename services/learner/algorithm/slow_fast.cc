#include "services/learner/algorithm/slow_fast.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "services/learner/algorithm/torch_guard.h"

namespace sfpo {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr int64_t kDistanceChunk = int64_t{1} << 20;  // elements per temporary in distances

}  // namespace

void SaveTensor(const at::Tensor& p, at::Tensor* theta0, bool on_host) {
  torch::NoGradGuard no_grad;
  const bool pinned = on_host && p.is_cuda();
  if (!theta0->defined() || theta0->numel() != p.numel() ||
      theta0->scalar_type() != p.scalar_type() ||
      (pinned ? !theta0->is_pinned() : theta0->device() != p.device())) {
    *theta0 = pinned ? torch::empty(p.sizes(), p.options().device(torch::kCPU).pinned_memory(true))
                     : torch::empty_like(p, at::MemoryFormat::Contiguous);
  }
  theta0->view(p.sizes()).copy_(p.detach(), /*non_blocking=*/pinned);
}

void RepositionTensor(const at::Tensor& p, const at::Tensor& theta0, double alpha) {
  torch::NoGradGuard no_grad;
  at::Tensor param = p;  // shares p's storage
  // lerp_(end, w) = self + w (end - self); with w = 1 - alpha this is theta_0 + alpha (theta -
  // theta_0), computed elementwise in place.
  if (theta0.device() == p.device()) {
    param.lerp_(theta0.view(p.sizes()), 1.0 - alpha);
    return;
  }
  const at::Tensor flat = param.view({-1});  // parameters are contiguous
  const at::Tensor saved = theta0.view({-1});
  for (int64_t start = 0; start < flat.numel(); start += kDistanceChunk) {
    const int64_t len = std::min(kDistanceChunk, flat.numel() - start);
    at::Tensor part = flat.narrow(0, start, len);
    part.lerp_(saved.narrow(0, start, len).to(p.device(), /*non_blocking=*/true), 1.0 - alpha);
  }
}

double SquaredDistance(const at::Tensor& p, const at::Tensor& theta0, at::Tensor* scratch) {
  torch::NoGradGuard no_grad;
  const at::Tensor a = p.detach().reshape({-1});
  const at::Tensor b = theta0.reshape({-1});
  double sum = 0;
  for (int64_t start = 0; start < a.numel(); start += kDistanceChunk) {
    const int64_t len = std::min(kDistanceChunk, a.numel() - start);
    if (!scratch->defined() || scratch->scalar_type() != a.scalar_type() ||
        scratch->device() != a.device() || scratch->numel() < len) {
      *scratch = torch::empty({len}, a.options());
    }
    at::Tensor diff = scratch->narrow(0, 0, len);
    at::Tensor saved = b.narrow(0, start, len);
    if (saved.device() != a.device()) saved = saved.to(a.device(), /*non_blocking=*/true);
    at::sub_out(diff, a.narrow(0, start, len), saved);
    const double norm = diff.norm().item<double>();
    sum += norm * norm;
  }
  return sum;
}

void SaveParameters(const std::vector<at::Tensor>& params, std::vector<at::Tensor>* theta0,
                    bool on_host) {
  theta0->resize(params.size());  // SaveTensor (re)allocates what does not fit
  for (size_t i = 0; i < params.size(); ++i) SaveTensor(params[i], &(*theta0)[i], on_host);
}

void Reposition(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& theta0,
                double alpha) {
  for (size_t i = 0; i < params.size(); ++i) RepositionTensor(params[i], theta0[i], alpha);
}

double DistanceToSaved(const std::vector<at::Tensor>& params,
                       const std::vector<at::Tensor>& theta0) {
  double sum = 0;
  at::Tensor scratch;  // one chunk-sized buffer, reused
  for (size_t i = 0; i < params.size(); ++i) sum += SquaredDistance(params[i], theta0[i], &scratch);
  return std::sqrt(sum);
}

SlowFastUpdater::SlowFastUpdater(std::vector<at::Tensor> params) : params_(std::move(params)) {}

void SlowFastUpdater::ReleaseSavedParameters() { theta0_.clear(); }

int64_t SlowFastUpdater::saved_bytes() const {
  int64_t bytes = 0;
  for (const at::Tensor& t : theta0_) bytes += t.numel() * t.element_size();
  return bytes;
}

std::vector<const void*> SlowFastUpdater::saved_data_pointers() const {
  std::vector<const void*> out;
  for (const at::Tensor& t : theta0_) out.push_back(t.data_ptr());
  return out;
}

namespace {

// Validates the options and sets old_logp (RunOuterStep's first stage).
absl::StatusOr<SlowFastStepStats> BeginOuterStep(
    RolloutBatch* batch, const SlowFastOptions& options,
    const std::function<absl::StatusOr<at::Tensor>()>& compute_logp) {
  if (options.inner_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sfpo.inner_steps must be >= 0, got ", options.inner_steps));
  }
  if (!(options.alpha >= 0.0 && options.alpha <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sfpo.alpha must be in [0, 1], got ", options.alpha));
  }
  SlowFastStepStats stats;
  stats.inner_steps = options.inner_steps;
  stats.alpha = options.alpha;

  if (options.behavior_as_old_logp) {
    if (!batch->behavior_logp.defined()) {
      return absl::InvalidArgumentError("behavior_as_old_logp needs batch.behavior_logp");
    }
    batch->old_logp = batch->behavior_logp;
  } else {
    SFPO_ASSIGN_OR_RETURN(batch->old_logp, compute_logp());
    if (batch->behavior_logp.defined()) {
      SFPO_RETURN_IF_ERROR(GuardTorch("behavior logp", [&]() -> absl::Status {
        torch::NoGradGuard no_grad;
        const at::Tensor mask = batch->response_mask.ne(0).to(torch::kFloat64);
        const at::Tensor diff =
            (batch->old_logp.to(torch::kFloat64) - batch->behavior_logp.to(torch::kFloat64)).abs() *
            mask;
        stats.behavior_logp_abs_diff =
            diff.sum().item<double>() / std::max(1.0, mask.sum().item<double>());
        return absl::OkStatus();
      }));
    }
  }
  return stats;
}

}  // namespace

absl::StatusOr<SlowFastStepStats> RunOuterStep(RolloutBatch* batch, const SlowFastOptions& options,
                                               const GroupOrderFn& group_order,
                                               const OuterStepStages& stages) {
  auto pass = [&] {
    return stages.update_pass(group_order ? group_order(batch->num_groups())
                                          : std::vector<int64_t>());
  };
  // 1. old_logp at theta_0, once, before any update.
  Clock::time_point t = Clock::now();
  SFPO_ASSIGN_OR_RETURN(SlowFastStepStats stats,
                        BeginOuterStep(batch, options, stages.compute_old_logp));
  stats.old_logprob_seconds = SecondsSince(t);

  // 2. Fast trajectory: K passes from theta_0.
  t = Clock::now();
  const bool keep_theta0 = options.inner_steps > 0 || options.grpo_distance;
  if (keep_theta0) SFPO_RETURN_IF_ERROR(stages.save_theta0());
  for (int64_t k = 0; k < options.inner_steps; ++k) {
    SFPO_ASSIGN_OR_RETURN(PassStats fast, pass());
    stats.passes.push_back(fast);
  }
  stats.fast_seconds = SecondsSince(t);

  // 3. Reposition theta <- theta_0 + alpha (theta_K - theta_0).
  t = Clock::now();
  stats.theta_next_distance = std::numeric_limits<double>::quiet_NaN();
  if (options.inner_steps > 0) {
    SFPO_ASSIGN_OR_RETURN(stats.theta_k_distance, stages.distance());
    SFPO_RETURN_IF_ERROR(stages.reposition(options.alpha));
  }
  stats.reposition_seconds = SecondsSince(t);

  // 4. Slow correction (the only pass of a GRPO step).
  t = Clock::now();
  SFPO_ASSIGN_OR_RETURN(PassStats slow, pass());
  stats.passes.push_back(slow);
  if (keep_theta0) {
    SFPO_ASSIGN_OR_RETURN(stats.theta_next_distance, stages.distance());
  }
  stats.slow_seconds = SecondsSince(t);
  return stats;
}

absl::StatusOr<SlowFastStepStats> SlowFastUpdater::Step(
    const PolicyFn& policy, torch::optim::Optimizer* optimizer, RolloutBatch* batch,
    const UpdateOptions& update, const SlowFastOptions& options, const GroupOrderFn& group_order) {
  OuterStepStages stages;
  stages.compute_old_logp = [&] {
    return ComputeSequenceLogp(policy, *batch, update.micro_batch_tokens);
  };
  stages.save_theta0 = [&] {
    return GuardTorch("save theta_0", [&] {
      SaveParameters(params_, &theta0_, options.theta0_on_host);
      return absl::OkStatus();
    });
  };
  stages.update_pass = [&](const std::vector<int64_t>& order) {
    return RunUpdatePass(policy, params_, optimizer, *batch, order, update);
  };
  stages.distance = [&]() -> absl::StatusOr<double> {
    double d = 0;
    SFPO_RETURN_IF_ERROR(GuardTorch("distance", [&] {
      d = DistanceToSaved(params_, theta0_);
      return absl::OkStatus();
    }));
    return d;
  };
  stages.reposition = [&](double alpha) {
    return GuardTorch("reposition", [&] {
      Reposition(params_, theta0_, alpha);
      return absl::OkStatus();
    });
  };
  return RunOuterStep(batch, options, group_order, stages);
}

}  // namespace sfpo
