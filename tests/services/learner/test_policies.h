// Tiny hand-checkable policies for the learner's tests: a bigram table (logits of position t
// are a row of a [V, V] table picked by token t-1, plus a bias), in any dtype, with a buffer
// that the algorithm must never touch.
#ifndef SFPO_TESTS_SERVICES_LEARNER_TEST_POLICIES_H_
#define SFPO_TESTS_SERVICES_LEARNER_TEST_POLICIES_H_

#include <torch/torch.h>

#include <vector>

#include "services/learner/algorithm/batch.h"

namespace sfpo {
namespace testing {

// logits [B, T, V] -> PolicyOutput following the model contract: logp[b, t] = log softmax(
// logits[b, t-1])[ids[b, t]] for t >= 1, 0 at t = 0; entropy likewise.
inline PolicyOutput StatsFromLogits(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t b = ids.size(0), t = ids.size(1);
  torch::Tensor logp_all = torch::log_softmax(logits.narrow(1, 0, t - 1), -1);  // [B, T-1, V]
  torch::Tensor picked =
      logp_all.gather(2, ids.narrow(1, 1, t - 1).unsqueeze(2)).squeeze(2);  // [B, T-1]
  torch::Tensor ent = -(logp_all.exp() * logp_all).sum(-1);                 // [B, T-1]
  torch::Tensor zero = torch::zeros({b, 1}, logits.options());
  return PolicyOutput{torch::cat({zero, picked}, 1), torch::cat({zero, ent}, 1)};
}

struct BigramPolicyImpl : torch::nn::Module {
  BigramPolicyImpl(int64_t vocab, torch::Dtype dtype, uint64_t seed) {
    torch::manual_seed(seed);
    table = register_parameter("table", torch::randn({vocab, vocab}, dtype));
    bias = register_parameter("bias", 0.1 * torch::randn({vocab}, dtype));
    counter = register_buffer("counter", torch::arange(vocab, dtype));
  }
  // ids [B, T] -> logits [B, T, V]
  torch::Tensor forward(const torch::Tensor& ids) { return table.index_select(0, ids.reshape({-1}))
        .reshape({ids.size(0), ids.size(1), -1}) + bias; }
  PolicyOutput Stats(const torch::Tensor& ids) { return StatsFromLogits(forward(ids), ids); }
  std::vector<torch::Tensor> Trainable() { return {table, bias}; }

  torch::Tensor table, bias, counter;
};
TORCH_MODULE(BigramPolicy);

inline PolicyFn AsPolicyFn(BigramPolicy policy) {
  return [policy](const at::Tensor& ids) mutable { return policy->Stats(ids); };
}

// A random prepared-shape batch: `groups` x `group_size` rows of length up to `max_len`, prompt
// of 2 tokens, response of 1..max_len-2 tokens, right-padded with 0; rewards in {0, 1};
// advantages (r - mean) within groups (not normalised: tests set what they need).
inline RolloutBatch RandomBatch(int64_t groups, int64_t group_size, int64_t max_len,
                                int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t n = groups * group_size;
  RolloutBatch batch;
  batch.group_size = group_size;
  batch.input_ids = torch::randint(1, vocab, {n, max_len}, torch::kInt64);
  batch.response_mask = torch::zeros({n, max_len}, torch::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = 3 + torch::randint(0, max_len - 2, {1}).item<int64_t>();  // 3..max_len
    batch.response_mask[i].narrow(0, 2, len - 2).fill_(1);
    if (len < max_len) batch.input_ids[i].narrow(0, len, max_len - len).fill_(0);
  }
  batch.rewards = torch::randint(0, 2, {n}, torch::kFloat64);
  torch::Tensor r = batch.rewards.reshape({groups, group_size});
  batch.advantages = (r - r.mean(1, true)).reshape({-1}) + 0.25 * torch::randn({n}, torch::kFloat64);
  return batch;
}

}  // namespace testing
}  // namespace sfpo

#endif  // SFPO_TESTS_SERVICES_LEARNER_TEST_POLICIES_H_
