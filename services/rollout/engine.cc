#include "services/rollout/engine.h"

#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/allocator.h"
#include "common/status.h"
#include "common/torch_util.h"
#include "services/rollout/sampler.h"

namespace sfpo {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

GenerationEngine::GenerationEngine(Policy policy, const EngineOptions& options)
    : policy_(std::move(policy)), options_(options) {}

absl::StatusOr<std::unique_ptr<GenerationEngine>> GenerationEngine::Create(
    Policy policy, const EngineOptions& options) {
  if (policy.is_empty()) return absl::InvalidArgumentError("engine: no policy");
  const int64_t vocab = policy->arch().vocab_size;
  if (options.eos_id < -1 || options.eos_id >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat("engine: eos_id ", options.eos_id,
                                                   " is outside the vocabulary [0, ", vocab, ")"));
  }
  if (options.pad_id < 0 || options.pad_id >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat("engine: pad_id ", options.pad_id,
                                                   " is outside the vocabulary [0, ", vocab, ")"));
  }
  if (options.max_batch_size < 1) {
    return absl::InvalidArgumentError("engine: max_batch_size must be >= 1");
  }
  KeepFreedMemory();
  return std::unique_ptr<GenerationEngine>(new GenerationEngine(std::move(policy), options));
}

absl::StatusOr<std::vector<GenerationResult>> GenerationEngine::Generate(
    const std::vector<GenerationRequest>& requests, const SamplingOptions& sampling) {
  const ModelArch& arch = policy_->arch();
  SFPO_RETURN_IF_ERROR(ValidateSamplingOptions(sampling, arch.vocab_size));
  for (size_t i = 0; i < requests.size(); ++i) {
    const std::vector<int32_t>& prompt = requests[i].prompt;
    if (prompt.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("engine: request ", i, " has an empty prompt"));
    }
    if (static_cast<int64_t>(prompt.size()) >= arch.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "engine: request ", i, " has a prompt of ", prompt.size(),
          " tokens; the model holds at most ", arch.max_position_embeddings, " positions"));
    }
    for (int32_t token : prompt) {
      if (token < 0 || token >= arch.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("engine: request ", i, " has token ", token,
                                                       " outside the vocabulary [0, ",
                                                       arch.vocab_size, ")"));
      }
    }
  }
  stats_ = GenerationStats();
  std::vector<GenerationResult> results;
  results.reserve(requests.size());
  for (size_t begin = 0; begin < requests.size();
       begin += static_cast<size_t>(options_.max_batch_size)) {
    const size_t end =
        std::min(requests.size(), begin + static_cast<size_t>(options_.max_batch_size));
    SFPO_RETURN_IF_ERROR(
        TorchCall([&] { return RunBatch(requests, begin, end, sampling, &results); }));
  }
  return results;
}

absl::Status GenerationEngine::RunBatch(const std::vector<GenerationRequest>& requests,
                                        size_t begin, size_t end, const SamplingOptions& sampling,
                                        std::vector<GenerationResult>* results) {
  const ModelArch& arch = policy_->arch();
  const int64_t b = static_cast<int64_t>(end - begin);
  // Row r: prompt length len[r], left pad P - len[r], at most limit[r] new tokens.
  std::vector<int64_t> len(b), limit(b);
  int64_t p = 0, steps = 0;
  for (int64_t r = 0; r < b; ++r) {
    len[r] = static_cast<int64_t>(requests[begin + r].prompt.size());
    limit[r] = std::min<int64_t>(sampling.max_new_tokens, arch.max_position_embeddings - len[r]);
    p = std::max(p, len[r]);
    steps = std::max(steps, limit[r]);
  }
  const int64_t capacity = p + steps;
  if (cache_.batch < b || cache_.capacity < capacity) {
    cache_ = KvCache();  // free the old one first
    cache_ = policy_->NewKvCache(std::max(b, cache_.batch), capacity);
  }

  c10::InferenceMode inference;
  const c10::Device device = policy_->device();
  // ids, positions: [B, P]; valid: [B, capacity]; lens: [B, 1].
  torch::Tensor ids = torch::full({b, p}, options_.pad_id, torch::kInt64);
  torch::Tensor positions = torch::zeros({b, p}, torch::kInt64);
  torch::Tensor valid = torch::ones({b, capacity}, torch::kBool);
  torch::Tensor lens = torch::empty({b, 1}, torch::kInt64);
  {
    auto ids_a = ids.accessor<int64_t, 2>();
    auto pos_a = positions.accessor<int64_t, 2>();
    auto valid_a = valid.accessor<bool, 2>();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t pad = p - len[r];
      const std::vector<int32_t>& prompt = requests[begin + r].prompt;
      for (int64_t c = 0; c < pad; ++c) valid_a[r][c] = false;
      for (int64_t i = 0; i < len[r]; ++i) {
        ids_a[r][pad + i] = prompt[i];
        pos_a[r][pad + i] = i;
      }
      lens[r][0] = len[r];
    }
  }
  ids = ids.to(device);
  positions = positions.to(device);
  valid = valid.to(device);
  lens = lens.to(device);

  auto t0 = std::chrono::steady_clock::now();
  torch::Tensor logits = policy_->ForwardCached(ids, positions, valid, 0, &cache_);  // [B, V]
  stats_.prefill_seconds += SecondsSince(t0);
  for (int64_t r = 0; r < b; ++r) stats_.prompt_tokens += len[r];

  t0 = std::chrono::steady_clock::now();
  std::vector<GenerationResult> batch(b);
  std::vector<bool> done(b, false);
  int64_t remaining = b;
  torch::Tensor uniforms = torch::zeros({b}, torch::kFloat64);
  auto uniform_a = uniforms.accessor<double, 1>();
  for (int64_t s = 0; s < steps && remaining > 0; ++s) {
    if (sampling.temperature > 0) {
      for (int64_t r = 0; r < b; ++r) uniform_a[r] = UniformForStep(requests[begin + r].seed, s);
    }
    SampledTokens sampled = SampleTokens(logits, sampling, uniforms);
    torch::Tensor tokens = sampled.tokens.to(torch::kCPU);
    torch::Tensor logprobs = sampled.logprobs.to(torch::kCPU);
    auto token_a = tokens.accessor<int64_t, 1>();
    auto logprob_a = logprobs.accessor<float, 1>();
    for (int64_t r = 0; r < b; ++r) {
      if (done[r]) continue;
      const int32_t token = static_cast<int32_t>(token_a[r]);
      batch[r].tokens.push_back(token);
      batch[r].logprobs.push_back(logprob_a[r]);
      const bool stop = token == options_.eos_id ||
                        std::find(sampling.stop_tokens.begin(), sampling.stop_tokens.end(),
                                  token) != sampling.stop_tokens.end();
      const bool full = static_cast<int64_t>(batch[r].tokens.size()) >= limit[r];
      if (stop || full) {
        done[r] = true;
        batch[r].truncated = !stop;
        --remaining;
      }
    }
    if (remaining == 0 || s + 1 == steps) break;
    // Column p + s holds each row's token s at position len + s; finished rows keep decoding
    // their (ignored) samples, which keeps the batch rectangular.
    logits = policy_->ForwardCached(sampled.tokens.view({b, 1}), lens + s, valid, p + s, &cache_);
    ++stats_.decode_steps;
  }
  stats_.decode_seconds += SecondsSince(t0);
  for (GenerationResult& result : batch) {
    stats_.generated_tokens += static_cast<int64_t>(result.tokens.size());
    results->push_back(std::move(result));
  }
  return absl::OkStatus();
}

}  // namespace sfpo
