#include "services/rollout/torch_generator.h"

#include <torch/torch.h>

#include <map>
#include <tuple>

#include "common/model.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/tokenizer.h"
#include "common/torch_util.h"
#include "common/weights_torch.h"
#include "services/rollout/engine.h"

namespace sfpo {
namespace {

class TorchGenerator final : public Generator {
 public:
  TorchGenerator(Policy policy, std::unique_ptr<GenerationEngine> engine,
                 std::unique_ptr<Tokenizer> tokenizer)
      : policy_(std::move(policy)), engine_(std::move(engine)), tokenizer_(std::move(tokenizer)) {}

  absl::StatusOr<std::vector<std::vector<GeneratedSample>>> Generate(
      const std::vector<Lease>& leases) override {
    std::vector<std::vector<GeneratedSample>> out(leases.size());
    // Leases with the same sampling parameters run as one engine batch.
    using Key = std::tuple<double, double, int32_t, int32_t, std::vector<int32_t>>;
    std::map<Key, std::vector<size_t>> by_sampling;
    for (size_t i = 0; i < leases.size(); ++i) {
      const SamplingParams& s = leases[i].sampling;
      by_sampling[Key{s.temperature, s.top_p, s.top_k, s.max_new_tokens, s.stop_tokens}]
          .push_back(i);
    }
    for (const auto& [key, lease_indices] : by_sampling) {
      const SamplingParams& s = leases[lease_indices.front()].sampling;
      SamplingOptions options;
      options.temperature = s.temperature;
      options.top_p = s.top_p;
      options.top_k = s.top_k;
      options.max_new_tokens = s.max_new_tokens;
      options.stop_tokens = s.stop_tokens;
      std::vector<GenerationRequest> requests;
      for (size_t i : lease_indices) {
        for (int32_t k = 0; k < leases[i].group_size; ++k) {
          requests.push_back(GenerationRequest{leases[i].prompt_tokens,
                                               leases[i].sampling.seed + static_cast<uint64_t>(k)});
        }
      }
      SFPO_ASSIGN_OR_RETURN(std::vector<GenerationResult> results,
                            engine_->Generate(requests, options));
      size_t r = 0;
      for (size_t i : lease_indices) {
        for (int32_t k = 0; k < leases[i].group_size; ++k, ++r) {
          GeneratedSample sample;
          sample.text = tokenizer_->Decode(results[r].tokens);
          sample.tokens = std::move(results[r].tokens);
          sample.logprobs = std::move(results[r].logprobs);
          sample.truncated = results[r].truncated;
          out[i].push_back(std::move(sample));
        }
      }
    }
    return out;
  }

  absl::Status ApplyWeights(const PackedWeights& weights) override {
    absl::Status applied;
    SFPO_RETURN_IF_ERROR(TorchCall([&] { applied = ApplyPackedWeights(weights, *policy_); }));
    return applied;
  }

 private:
  Policy policy_;
  std::unique_ptr<GenerationEngine> engine_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Generator>> MakeTorchGenerator(
    const TorchGeneratorOptions& options) {
  SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(options.model_config));
  std::unique_ptr<Tokenizer> tokenizer = MakeCharTokenizer();
  std::unique_ptr<Generator> out;
  SFPO_RETURN_IF_ERROR(TorchCall([&]() -> absl::Status {
    Policy policy(arch);
    InitPolicyWeights(policy, options.init_seed);
    policy->eval();
    EngineOptions eo;
    eo.eos_id = tokenizer->eos_id();
    eo.pad_id = tokenizer->pad_id();
    SFPO_ASSIGN_OR_RETURN(auto engine, GenerationEngine::Create(policy, eo));
    out = std::make_unique<TorchGenerator>(policy, std::move(engine), std::move(tokenizer));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace sfpo
