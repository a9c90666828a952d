// Supervised warm start: trains a policy to continue each prompt with its completion, as the
// base policy for RL on the built-in tasks. Each example is [bos] prompt completion [eos]; the
// loss is the cross-entropy of the completion tokens and the eos (bos and prompt are context
// only), averaged over those tokens in the batch. Same model code and AdamW as the learner.
// Not thread-safe.
#ifndef SFPO_SERVICES_LEARNER_SFT_H_
#define SFPO_SERVICES_LEARNER_SFT_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer.h"

namespace sfpo {

class PolicyImpl;  // common/model.h

struct SftText {
  std::string prompt;
  std::string completion;
};

// The `index`-th training example (deterministic in `index`; sources cycle or generate).
using SftSource = std::function<absl::StatusOr<SftText>(int64_t index)>;

struct SftOptions {
  int64_t steps = 1000;
  int64_t batch = 64;       // examples per optimizer step
  double lr = 1e-3;
  int64_t warmup_steps = 0;  // linear warmup, then cosine decay to 10% over `steps`
  double weight_decay = 0.0;
  double grad_clip = 1.0;    // <= 0: no clipping
  int64_t max_length = 0;    // tokens per example incl. bos/eos; 0: the model's positions
};

// One optimizer step's figures.
struct SftStepLog {
  int64_t step = 0;
  double loss = 0;            // mean cross-entropy per target token
  double token_accuracy = 0;  // share of target tokens that are the model's argmax
  int64_t target_tokens = 0;
  double lr = 0;
  double seconds = 0;
};

// A tokenized batch.
struct SftBatch {
  at::Tensor input_ids;    // [B, T] int64, right-padded with pad_id
  at::Tensor target_mask;  // [B, T] float32: 1 at completion and eos positions
};

// Tokenizes and pads `examples`. INVALID_ARGUMENT naming the example for text the tokenizer
// cannot encode, an empty completion, or a sequence longer than `max_length` (> 0).
absl::StatusOr<SftBatch> BuildSftBatch(const std::vector<SftText>& examples,
                                       const Tokenizer& tokenizer, int64_t max_length);

// Runs `options.steps` steps on examples step * batch + i from `source`, calling `on_step`
// after each (may be null). The policy is trained in place. Errors from the source, the
// batch (above) or Torch (INTERNAL).
absl::Status RunSft(std::shared_ptr<PolicyImpl> policy, const Tokenizer& tokenizer,
                    const SftSource& source, const SftOptions& options,
                    const std::function<void(const SftStepLog&)>& on_step);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_SFT_H_
