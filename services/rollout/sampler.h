// The batched sampler chain (temperature, top-k, top-p, greedy) of the generation engine. See
// SamplingOptions in engine_types.h for the semantics.
#ifndef SFPO_SERVICES_ROLLOUT_SAMPLER_H_
#define SFPO_SERVICES_ROLLOUT_SAMPLER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "services/rollout/engine_types.h"

namespace sfpo {

struct SampledTokens {
  at::Tensor tokens;    // [B] int64
  at::Tensor logprobs;  // [B] float32, under the temperature-scaled full distribution
};

// logits: [B, V] float32; uniforms: [B] float64 in [0, 1), one per row (see UniformForStep).
// Row b takes the first token, in the kept tokens' most-likely-first order (vocabulary order
// when nothing is filtered), whose cumulative kept probability exceeds uniforms[b] times the
// kept mass. Deterministic given its inputs. Options must be valid.
SampledTokens SampleTokens(const at::Tensor& logits, const SamplingOptions& options,
                           const at::Tensor& uniforms);

// The logits after temperature, top-k and top-p, with dropped tokens set to -inf: exactly the
// tokens SampleTokens can draw (temperature must be > 0). logits: [B, V] -> [B, V].
at::Tensor FilterLogits(const at::Tensor& logits, const SamplingOptions& options);

// A uniform in [0, 1) from (seed, step) by a counter-based hash (splitmix64), 52-bit resolution.
double UniformForStep(uint64_t seed, int64_t step);

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_SAMPLER_H_
