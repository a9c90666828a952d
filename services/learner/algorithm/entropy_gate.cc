#include "services/learner/algorithm/entropy_gate.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace sfpo {

absl::StatusOr<GateMode> ParseGateMode(const std::string& name) {
  if (name == "entropy") return GateMode::kEntropy;
  if (name == "step") return GateMode::kStep;
  if (name == "none") return GateMode::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("sfpo.gate: unknown gate '", name, "' (expected entropy, step or none)"));
}

const char* GateModeName(GateMode mode) {
  switch (mode) {
    case GateMode::kEntropy:
      return "entropy";
    case GateMode::kStep:
      return "step";
    case GateMode::kNone:
      return "none";
  }
  return "?";
}

absl::StatusOr<EntropyGate> EntropyGate::Create(const EntropyGateOptions& options) {
  if (options.window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sfpo.gate_window must be >= 1, got ", options.window));
  }
  if (options.stop_step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sfpo.stop_step must be >= 0, got ", options.stop_step));
  }
  EntropyGate gate(options);
  gate.last_z_ = std::numeric_limits<double>::quiet_NaN();
  return gate;
}

double EntropyGate::ZScore(const std::vector<double>& window) {
  if (window.empty()) return std::numeric_limits<double>::quiet_NaN();
  double mean = 0;
  for (double h : window) mean += h;
  mean /= static_cast<double>(window.size());
  double var = 0;
  for (double h : window) var += (h - mean) * (h - mean);
  var /= static_cast<double>(window.size());  // population variance
  return (window.back() - mean) / (std::sqrt(var) + 1e-9);
}

bool EntropyGate::Decide(int64_t step) {
  last_z_ = std::numeric_limits<double>::quiet_NaN();
  if (!state_.sfpo_active) return false;
  switch (options_.mode) {
    case GateMode::kNone:
      return true;
    case GateMode::kStep:
      if (step >= options_.stop_step) {
        state_.sfpo_active = false;
        state_.switched_at_step = step;
      }
      return state_.sfpo_active;
    case GateMode::kEntropy:
      if (static_cast<int64_t>(state_.window.size()) < options_.window) return true;
      last_z_ = ZScore(state_.window);
      if (last_z_ >= options_.threshold) {
        state_.sfpo_active = false;
        state_.switched_at_step = step;
      }
      return state_.sfpo_active;
  }
  return state_.sfpo_active;
}

void EntropyGate::Record(double entropy) {
  state_.window.push_back(entropy);
  while (static_cast<int64_t>(state_.window.size()) > options_.window) {
    state_.window.erase(state_.window.begin());
  }
}

absl::Status EntropyGate::Restore(const EntropyGateState& state) {
  if (static_cast<int64_t>(state.window.size()) > options_.window) {
    return absl::InvalidArgumentError(absl::StrCat("entropy gate window holds ",
                                                   state.window.size(),
                                                   " values, more than gate_window = ",
                                                   options_.window));
  }
  state_ = state;
  return absl::OkStatus();
}

}  // namespace sfpo
