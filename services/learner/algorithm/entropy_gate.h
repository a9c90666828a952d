// When SFPO stops: the entropy gate (a one-sided z-score of the newest entropy against a window
// of recent ones; once it reaches the threshold the run is GRPO for good), a fixed stop step,
// or never. Plain arithmetic; no Torch. Not thread-safe.
#ifndef SFPO_SERVICES_LEARNER_ALGORITHM_ENTROPY_GATE_H_
#define SFPO_SERVICES_LEARNER_ALGORITHM_ENTROPY_GATE_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sfpo {

enum class GateMode { kEntropy, kStep, kNone };
absl::StatusOr<GateMode> ParseGateMode(const std::string& name);  // entropy | step | none
const char* GateModeName(GateMode mode);

struct EntropyGateOptions {
  GateMode mode = GateMode::kEntropy;
  int64_t window = 30;      // W
  double threshold = 1.0;   // tau
  int64_t stop_step = 0;    // kStep: SFPO for steps < stop_step
};

// What a checkpoint stores.
struct EntropyGateState {
  std::vector<double> window;  // oldest first, at most W values
  bool sfpo_active = true;
  int64_t switched_at_step = -1;  // step at which it switched to GRPO, -1 if not
};

class EntropyGate {
 public:
  // INVALID_ARGUMENT for window < 1 or stop_step < 0.
  static absl::StatusOr<EntropyGate> Create(const EntropyGateOptions& options);

  // Called before the update of outer step `step`: decides whether this step runs SFPO. With
  // kEntropy, when the window holds W values and z = (H_last - mean(window)) /
  // (pstd(window) + 1e-9) >= tau (H_last the newest value, which is part of the window), the
  // gate switches to GRPO permanently. With kStep, it switches at step >= stop_step.
  bool Decide(int64_t step);
  // Called after every update with the mean token entropy of its last pass.
  void Record(double entropy);

  bool sfpo_active() const { return state_.sfpo_active; }
  // z of the last Decide (NaN when the window was not full or the mode is not kEntropy).
  double last_z() const { return last_z_; }
  const EntropyGateState& state() const { return state_; }
  // INVALID_ARGUMENT when the window is longer than W.
  absl::Status Restore(const EntropyGateState& state);

  // The z-score of the newest value of `window` against the window; NaN when empty.
  static double ZScore(const std::vector<double>& window);

 private:
  explicit EntropyGate(const EntropyGateOptions& options) : options_(options) {}
  EntropyGateOptions options_;
  EntropyGateState state_;
  double last_z_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_ALGORITHM_ENTROPY_GATE_H_
