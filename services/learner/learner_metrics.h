// The learner's Prometheus families, created once on the injected registry.
#ifndef SFPO_SERVICES_LEARNER_LEARNER_METRICS_H_
#define SFPO_SERVICES_LEARNER_LEARNER_METRICS_H_

#include <memory>

#include "services/learner/step_log.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sfpo {

// Thread-safe (prometheus-cpp metrics are).
class LearnerMetrics {
 public:
  explicit LearnerMetrics(prometheus::Registry& registry);
  ~LearnerMetrics();
  // Updates every gauge/counter/histogram from a finished step.
  void OnStep(const StepRecord& record);
  // Brings sfpo_samples_total{state} up to `counts` (counters only grow).
  void SetLedger(const LedgerCounts& counts);
  void SetPolicyVersion(int64_t version);
  // Staleness (versions) of a trained group.
  void ObserveStaleness(int64_t versions);
  void SetWallclock(double seconds);

 private:
  struct Families;
  std::unique_ptr<Families> f_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_LEARNER_METRICS_H_
