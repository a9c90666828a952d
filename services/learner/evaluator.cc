#include "services/learner/evaluator.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/model.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/tasks.h"
#include "common/tokenizer.h"
#include "common/torch_util.h"
#include "common/weights_torch.h"
#include "services/reward/verifier.h"
#include "services/rollout/engine.h"

namespace sfpo {
namespace {

class EngineEvaluator final : public Evaluator {
 public:
  EngineEvaluator(EvaluatorOptions options, std::unique_ptr<Task> task,
                  std::unique_ptr<Tokenizer> tokenizer, Policy policy,
                  std::unique_ptr<GenerationEngine> engine)
      : options_(std::move(options)),
        task_(std::move(task)),
        tokenizer_(std::move(tokenizer)),
        policy_(std::move(policy)),
        engine_(std::move(engine)) {}

  absl::StatusOr<EvalReport> Evaluate(const PackedWeights& weights) override {
    absl::Status applied;
    SFPO_RETURN_IF_ERROR(TorchCall([&] { applied = ApplyPackedWeights(weights, *policy_); }));
    SFPO_RETURN_IF_ERROR(applied);
    return Run();
  }

  absl::StatusOr<EvalReport> EvaluateCheckpoint(const std::string& path) override {
    absl::Status loaded;
    SFPO_RETURN_IF_ERROR(TorchCall([&] { loaded = LoadPolicy(policy_, path); }));
    SFPO_RETURN_IF_ERROR(loaded);
    return Run();
  }

 private:
  absl::StatusOr<EvalReport> Run() {
    const std::vector<Problem>& test = task_->TestSet();
    const size_t n = std::min<size_t>(test.size(), static_cast<size_t>(options_.problems));
    if (n == 0) return absl::FailedPreconditionError("the task has no held-out problems");
    std::vector<GenerationRequest> requests;
    requests.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      SFPO_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer_->Encode(test[i].prompt));
      ids.insert(ids.begin(), tokenizer_->bos_id());
      requests.push_back(GenerationRequest{std::move(ids), options_.seed + i});
    }
    EvalReport report;
    for (const double temperature : {1.0, 0.0}) {
      SamplingOptions sampling;
      sampling.temperature = temperature;
      sampling.max_new_tokens = options_.max_new_tokens;
      SFPO_ASSIGN_OR_RETURN(std::vector<GenerationResult> results,
                            engine_->Generate(requests, sampling));
      VerifierOptions vo;
      vo.format_reward = options_.format_reward;
      int64_t correct = 0;
      for (size_t i = 0; i < n; ++i) {
        const std::string text = tokenizer_->Decode(results[i].tokens);
        VerifyResult v = Score(ScoreInput{task_->checker(), test[i].prompt, text, test[i].answer},
                               vo, absl::Now() + absl::Milliseconds(100));
        correct += v.verdict == Verdict::kCorrect ? 1 : 0;
      }
      const double acc = static_cast<double>(correct) / static_cast<double>(n);
      (temperature > 0 ? report.sampled_accuracy : report.greedy_accuracy) = acc;
    }
    return report;
  }

  EvaluatorOptions options_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<Tokenizer> tokenizer_;
  Policy policy_;
  std::unique_ptr<GenerationEngine> engine_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Evaluator>> Evaluator::Create(const EvaluatorOptions& options) {
  TaskOptions to;
  to.test_size = options.problems;
  SFPO_ASSIGN_OR_RETURN(std::unique_ptr<Task> task, CreateTask(options.task, to));
  SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(options.model_config));
  std::unique_ptr<Tokenizer> tokenizer = MakeCharTokenizer();
  std::unique_ptr<Evaluator> out;
  SFPO_RETURN_IF_ERROR(TorchCall([&]() -> absl::Status {
    Policy policy(arch);
    policy->eval();
    EngineOptions eo;
    eo.eos_id = tokenizer->eos_id();
    eo.pad_id = tokenizer->pad_id();
    SFPO_ASSIGN_OR_RETURN(auto engine, GenerationEngine::Create(policy, eo));
    out = std::make_unique<EngineEvaluator>(options, std::move(task), std::move(tokenizer),
                                            policy, std::move(engine));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace sfpo
