#include "services/rollout/sampler.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace sfpo {
namespace {

bool Filters(const SamplingOptions& options, int64_t vocab) {
  return (options.top_k > 0 && options.top_k < vocab) || options.top_p < 1.0;
}

// Probabilities of the kept tokens, in most-likely-first order (`order`: [B, V] vocabulary ids)
// with dropped tokens at 0. The kept tokens are always a prefix of that order.
struct Kept {
  torch::Tensor probs;  // [B, V]
  torch::Tensor order;  // [B, V] int64
};

// logp: [B, V] log softmax at the sampling temperature.
Kept KeepTokens(const torch::Tensor& logp, const SamplingOptions& options) {
  const int64_t vocab = logp.size(1);
  auto [sorted, order] = logp.sort(/*dim=*/-1, /*descending=*/true);
  torch::Tensor probs = sorted.exp();
  if (options.top_k > 0 && options.top_k < vocab) {
    probs.narrow(1, options.top_k, vocab - options.top_k).zero_();
  }
  if (options.top_p < 1.0) {
    // Keep token j while the (renormalised) mass strictly before it is below top_p.
    torch::Tensor cum = probs.cumsum(-1);
    torch::Tensor total = cum.narrow(1, vocab - 1, 1);
    probs.masked_fill_((cum - probs) >= total * options.top_p, 0.0);
  }
  return {probs, order};
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

absl::Status ValidateSamplingOptions(const SamplingOptions& options, int64_t vocab_size) {
  if (!std::isfinite(options.temperature) || options.temperature < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: temperature must be finite and >= 0, got ", options.temperature));
  }
  if (!(options.top_p > 0.0 && options.top_p <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: top_p must be in (0, 1], got ", options.top_p));
  }
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling: max_new_tokens must be >= 1, got ", options.max_new_tokens));
  }
  for (int32_t token : options.stop_tokens) {
    if (token < 0 || token >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("sampling: stop token ", token,
                                                     " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

double UniformForStep(uint64_t seed, int64_t step) {
  const uint64_t x = SplitMix64(SplitMix64(seed) + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(step));
  return static_cast<double>(x >> 12) * 0x1.0p-52;
}

SampledTokens SampleTokens(const torch::Tensor& logits, const SamplingOptions& options,
                           const torch::Tensor& uniforms) {
  const int64_t vocab = logits.size(1);
  SampledTokens out;
  if (options.temperature <= 0.0) {
    out.tokens = logits.argmax(-1);
    out.logprobs = torch::log_softmax(logits, -1).gather(1, out.tokens.unsqueeze(1)).squeeze(1);
    return out;
  }
  torch::Tensor scaled = options.temperature == 1.0 ? logits : logits / options.temperature;
  torch::Tensor logp = torch::log_softmax(scaled, -1);  // [B, V]
  torch::Tensor u = uniforms.to(logits.device(), torch::kFloat64).unsqueeze(1);  // [B, 1]
  if (Filters(options, vocab)) {
    Kept kept = KeepTokens(logp, options);
    torch::Tensor cdf = kept.probs.to(torch::kFloat64).cumsum(-1);  // [B, V]
    torch::Tensor index = (cdf <= u * cdf.narrow(1, vocab - 1, 1)).sum(-1, /*keepdim=*/true);
    torch::Tensor last_kept = (kept.probs > 0).sum(-1, /*keepdim=*/true) - 1;
    index = torch::minimum(index, last_kept);
    out.tokens = kept.order.gather(1, index).squeeze(1);
  } else {
    torch::Tensor cdf = logp.exp().to(torch::kFloat64).cumsum(-1);
    out.tokens = (cdf <= u * cdf.narrow(1, vocab - 1, 1)).sum(-1).clamp_max(vocab - 1);
  }
  out.logprobs = logp.gather(1, out.tokens.unsqueeze(1)).squeeze(1);
  return out;
}

torch::Tensor FilterLogits(const torch::Tensor& logits, const SamplingOptions& options) {
  torch::Tensor scaled = logits / options.temperature;
  if (!Filters(options, logits.size(1))) return scaled;
  Kept kept = KeepTokens(torch::log_softmax(scaled, -1), options);
  torch::Tensor keep = torch::zeros_like(kept.probs, torch::kBool).scatter(1, kept.order, kept.probs > 0);
  return scaled.masked_fill(keep.logical_not(), -std::numeric_limits<float>::infinity());
}

}  // namespace sfpo
