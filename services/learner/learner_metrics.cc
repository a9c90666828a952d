#include "services/learner/learner_metrics.h"

#include <cmath>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace sfpo {
namespace {
const char* const kStages[] = {"wait_batch", "old_logprob", "fast",      "reposition",
                               "slow",       "publish",     "checkpoint", "eval"};
prometheus::Gauge& G(prometheus::Registry& r, const char* name, const char* help,
                     const prometheus::Labels& labels = {}) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add(labels);
}
}  // namespace

struct LearnerMetrics::Families {
  explicit Families(prometheus::Registry& r)
      : rollouts(prometheus::BuildCounter()
                     .Name("sfpo_rollouts_total")
                     .Help("Samples trained on")
                     .Register(r)
                     .Add({})),
        samples(prometheus::BuildCounter()
                    .Name("sfpo_samples_total")
                    .Help("Sample ledger: samples by state")
                    .Register(r)),
        steps(prometheus::BuildCounter()
                  .Name("sfpo_learner_steps_total")
                  .Help("Learner outer steps completed")
                  .Register(r)
                  .Add({})),
        version(G(r, "sfpo_policy_version", "Newest published policy version")),
        step_seconds(prometheus::BuildHistogram()
                         .Name("sfpo_step_seconds")
                         .Help("Seconds per learner step stage")
                         .Register(r)),
        wallclock(G(r, "sfpo_run_wallclock_seconds", "Seconds since the run started")),
        reward_mean(G(r, "sfpo_reward_mean", "Mean reward of the last step's samples")),
        accuracy(prometheus::BuildGauge()
                     .Name("sfpo_accuracy")
                     .Help("Accuracy by split (train, eval_sampled, eval_greedy)")
                     .Register(r)),
        entropy(G(r, "sfpo_entropy", "Mean token entropy of the last update pass")),
        zscore(G(r, "sfpo_entropy_zscore", "Entropy gate z-score (NaN until the window fills)")),
        active(G(r, "sfpo_sfpo_active", "1 while SFPO is active, 0 after the gate switched")),
        clip_fraction(G(r, "sfpo_clip_fraction", "Fraction of tokens clipped, last pass")),
        grad_norm(G(r, "sfpo_grad_norm", "Gradient norm before clipping, last optimizer step")),
        mismatch(G(r, "sfpo_logprob_mismatch",
                   "Mean |learner old logprob - worker logprob| per response token")),
        delta_norm(G(r, "sfpo_param_delta_norm", "||theta_next - theta_0|| of the last step")),
        lr(G(r, "sfpo_learning_rate", "Learning rate of the last step")),
        zero_var(G(r, "sfpo_zero_variance_groups", "Groups with all-equal rewards, last step")),
        ranks(G(r, "sfpo_learner_ranks", "Data-parallel learner ranks")),
        allreduce_seconds(G(r, "sfpo_learner_allreduce_seconds",
                            "Seconds rank 0 spent in all-reduces during the last step")),
        allreduce_bytes(G(r, "sfpo_learner_allreduce_bytes",
                          "Bytes rank 0 all-reduced during the last step")),
        rank_step(prometheus::BuildGauge()
                      .Name("sfpo_learner_rank_step_seconds")
                      .Help("Trainer step seconds of each data-parallel rank, last step")
                      .Register(r)),
        staleness(prometheus::BuildHistogram()
                      .Name("sfpo_policy_staleness")
                      .Help("Versions between a trained group's policy and the learner's")
                      .Register(r)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 3, 4, 8})) {
    for (const char* stage : kStages) {
      stage_hist[stage] = &step_seconds.Add(
          {{"stage", stage}}, prometheus::Histogram::BucketBoundaries{
                                  0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300});
    }
    for (const char* state :
         {"leased", "scored", "trained", "stale", "expired", "released", "rejected"}) {
      sample_counter[state] = &samples.Add({{"state", state}});
    }
    for (const char* split : {"train", "eval_sampled", "eval_greedy"}) {
      accuracy_gauge[split] = &accuracy.Add({{"split", split}});
    }
    ranks.Set(1);
    rank_step.Add({{"rank", "0"}});
  }
  prometheus::Counter& rollouts;
  prometheus::Family<prometheus::Counter>& samples;
  prometheus::Counter& steps;
  prometheus::Gauge& version;
  prometheus::Family<prometheus::Histogram>& step_seconds;
  prometheus::Gauge& wallclock;
  prometheus::Gauge& reward_mean;
  prometheus::Family<prometheus::Gauge>& accuracy;
  prometheus::Gauge& entropy;
  prometheus::Gauge& zscore;
  prometheus::Gauge& active;
  prometheus::Gauge& clip_fraction;
  prometheus::Gauge& grad_norm;
  prometheus::Gauge& mismatch;
  prometheus::Gauge& delta_norm;
  prometheus::Gauge& lr;
  prometheus::Gauge& zero_var;
  prometheus::Gauge& ranks;
  prometheus::Gauge& allreduce_seconds;
  prometheus::Gauge& allreduce_bytes;
  prometheus::Family<prometheus::Gauge>& rank_step;
  prometheus::Histogram& staleness;
  std::map<std::string, prometheus::Histogram*> stage_hist;
  std::map<std::string, prometheus::Counter*> sample_counter;
  std::map<std::string, prometheus::Gauge*> accuracy_gauge;
  absl::Mutex mu;
  LedgerCounts seen ABSL_GUARDED_BY(mu);
};

LearnerMetrics::LearnerMetrics(prometheus::Registry& registry)
    : f_(std::make_unique<Families>(registry)) {}
LearnerMetrics::~LearnerMetrics() = default;

void LearnerMetrics::OnStep(const StepRecord& r) {
  f_->steps.Increment();
  const double new_rollouts = static_cast<double>(r.rollouts_total) - f_->rollouts.Value();
  if (new_rollouts > 0) f_->rollouts.Increment(new_rollouts);
  f_->version.Set(static_cast<double>(r.policy_version));
  f_->wallclock.Set(r.wallclock_s);
  f_->reward_mean.Set(r.reward_mean);
  f_->accuracy_gauge["train"]->Set(r.train_accuracy);
  if (r.accuracy) f_->accuracy_gauge["eval_sampled"]->Set(*r.accuracy);
  if (r.accuracy_greedy) f_->accuracy_gauge["eval_greedy"]->Set(*r.accuracy_greedy);
  f_->entropy.Set(r.entropy);
  f_->zscore.Set(r.entropy_zscore);
  f_->active.Set(r.sfpo_active ? 1 : 0);
  f_->clip_fraction.Set(r.clip_fraction);
  f_->grad_norm.Set(r.grad_norm);
  f_->mismatch.Set(r.logprob_mismatch);
  f_->delta_norm.Set(r.param_delta_norm);
  f_->lr.Set(r.lr);
  f_->zero_var.Set(static_cast<double>(r.zero_variance_groups));
  f_->ranks.Set(static_cast<double>(r.ranks));
  f_->allreduce_seconds.Set(r.all_reduce_seconds);
  f_->allreduce_bytes.Set(static_cast<double>(r.all_reduce_bytes));
  for (size_t i = 0; i < r.rank_step_seconds.size(); ++i) {
    f_->rank_step.Add({{"rank", std::to_string(i)}}).Set(r.rank_step_seconds[i]);
  }
  for (const auto& [stage, s] : r.seconds) {
    auto it = f_->stage_hist.find(stage);
    if (it != f_->stage_hist.end()) it->second->Observe(s);
  }
  SetLedger(r.ledger);
}

void LearnerMetrics::SetLedger(const LedgerCounts& c) {
  absl::MutexLock lock(&f_->mu);
  auto bump = [&](const char* state, int64_t now, int64_t& seen) {
    if (now > seen) f_->sample_counter[state]->Increment(static_cast<double>(now - seen));
    seen = std::max(seen, now);
  };
  bump("leased", c.leased, f_->seen.leased);
  bump("scored", c.scored, f_->seen.scored);
  bump("trained", c.trained, f_->seen.trained);
  bump("stale", c.stale, f_->seen.stale);
  bump("expired", c.expired, f_->seen.expired);
  bump("released", c.released, f_->seen.released);
  bump("rejected", c.rejected, f_->seen.rejected);
}

void LearnerMetrics::SetPolicyVersion(int64_t version) {
  f_->version.Set(static_cast<double>(version));
}

void LearnerMetrics::ObserveStaleness(int64_t versions) {
  f_->staleness.Observe(static_cast<double>(versions));
}

void LearnerMetrics::SetWallclock(double seconds) { f_->wallclock.Set(seconds); }

}  // namespace sfpo
