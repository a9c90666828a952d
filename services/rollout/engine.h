// The batched generation engine of a rollout worker: left-padded batched prefill, then batched
// one-token decode steps over a preallocated KV cache (no concatenation in the decode loop),
// the sampler chain of sampler.h, stop tokens, per-token log-probabilities, per-row seeds.
#ifndef SFPO_SERVICES_ROLLOUT_ENGINE_H_
#define SFPO_SERVICES_ROLLOUT_ENGINE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "services/rollout/engine_types.h"

namespace sfpo {

struct EngineOptions {
  // Always stops a row (2: the char tokenizer's eos). -1: no eos (benchmarks).
  int32_t eos_id = 2;
  // Fed at left-padding columns (which are masked out) and to rows already finished.
  int32_t pad_id = 0;
  // A longer request list runs as consecutive batches of at most this many rows.
  int64_t max_batch_size = 256;
};

// Figures of the last Generate call.
struct GenerationStats {
  int64_t prompt_tokens = 0;     // real (unpadded) prompt tokens prefilled
  int64_t generated_tokens = 0;  // tokens returned
  int64_t decode_steps = 0;      // batched one-token forward passes
  double prefill_seconds = 0;    // prompt forward passes
  double decode_seconds = 0;     // sampling plus the decode forward passes
};

// Generates completions with a Policy it shares with its owner. Not thread-safe: one thread
// (the worker's model thread) calls Generate at a time.
//
// Weights: the engine reads the policy's parameters at every forward pass and keeps no copy of
// them, so the owner may swap weights between Generate calls by writing new values into the
// parameters in place (copy_ under torch::NoGradGuard); see PolicyImpl for the fused storage.
class GenerationEngine {
 public:
  // INVALID_ARGUMENT for bad options (eos/pad outside the vocabulary, max_batch_size < 1).
  // Calls KeepFreedMemory() (common/allocator.h): a process-wide allocator setting.
  static absl::StatusOr<std::unique_ptr<GenerationEngine>> Create(Policy policy,
                                                                  const EngineOptions& options);

  // One result per request, in order. INVALID_ARGUMENT for invalid sampling options, an empty
  // prompt, a token outside the vocabulary or a prompt of max_position_embeddings tokens or
  // more (naming the request index); INTERNAL for a Torch failure.
  absl::StatusOr<std::vector<GenerationResult>> Generate(
      const std::vector<GenerationRequest>& requests, const SamplingOptions& sampling);

  const GenerationStats& last_stats() const { return stats_; }
  Policy policy() const { return policy_; }

 private:
  GenerationEngine(Policy policy, const EngineOptions& options);
  // Runs one batch (at most max_batch_size rows) and appends its results to `results`.
  absl::Status RunBatch(const std::vector<GenerationRequest>& requests, size_t begin, size_t end,
                        const SamplingOptions& sampling, std::vector<GenerationResult>* results);

  Policy policy_;
  EngineOptions options_;
  KvCache cache_;  // reused across calls while large enough
  GenerationStats stats_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_ENGINE_H_
