#include "services/learner/sft.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/model.h"
#include "common/status.h"
#include "common/torch_util.h"

namespace sfpo {

absl::StatusOr<SftBatch> BuildSftBatch(const std::vector<SftText>& examples,
                                       const Tokenizer& tokenizer, int64_t max_length) {
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> target_start;
  int64_t longest = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    absl::StatusOr<std::vector<int32_t>> prompt = tokenizer.Encode(examples[i].prompt);
    absl::StatusOr<std::vector<int32_t>> completion = tokenizer.Encode(examples[i].completion);
    for (const auto* ids : {&prompt, &completion}) {
      if (!ids->ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("sft example ", i, ": ", ids->status().message()));
      }
    }
    if (completion->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sft example ", i, " has an empty completion"));
    }
    std::vector<int64_t> row = {tokenizer.bos_id()};
    row.insert(row.end(), prompt->begin(), prompt->end());
    target_start.push_back(static_cast<int64_t>(row.size()));
    row.insert(row.end(), completion->begin(), completion->end());
    row.push_back(tokenizer.eos_id());
    if (max_length > 0 && static_cast<int64_t>(row.size()) > max_length) {
      return absl::InvalidArgumentError(absl::StrCat("sft example ", i, " is ", row.size(),
                                                     " tokens long, more than the model's ",
                                                     max_length));
    }
    longest = std::max<int64_t>(longest, row.size());
    rows.push_back(std::move(row));
  }
  if (rows.empty()) return absl::InvalidArgumentError("sft batch is empty");
  SftBatch batch;
  const int64_t n = static_cast<int64_t>(rows.size());
  batch.input_ids = torch::full({n, longest}, tokenizer.pad_id(), torch::kInt64);
  batch.target_mask = torch::zeros({n, longest}, torch::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = static_cast<int64_t>(rows[i].size());
    batch.input_ids[i].narrow(0, 0, len).copy_(torch::tensor(rows[i], torch::kInt64));
    batch.target_mask[i].narrow(0, target_start[i], len - target_start[i]).fill_(1.0);
  }
  return batch;
}

absl::Status RunSft(std::shared_ptr<PolicyImpl> policy_ptr, const Tokenizer& tokenizer,
                    const SftSource& source, const SftOptions& options,
                    const std::function<void(const SftStepLog&)>& on_step) {
  if (options.steps < 0 || options.batch < 1 || !(options.lr > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("sft needs steps >= 0, batch >= 1, lr > 0; got ",
                                                   options.steps, ", ", options.batch, ", ",
                                                   options.lr));
  }
  Policy policy(std::move(policy_ptr));
  const int64_t max_length =
      options.max_length > 0 ? options.max_length : policy->arch().max_position_embeddings;
  std::vector<torch::Tensor> params;
  for (const auto& p : policy->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  torch::optim::AdamW adam(params,
                           torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
  for (int64_t step = 0; step < options.steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<SftText> examples;
    for (int64_t i = 0; i < options.batch; ++i) {
      SFPO_ASSIGN_OR_RETURN(SftText text, source(step * options.batch + i));
      examples.push_back(std::move(text));
    }
    SFPO_ASSIGN_OR_RETURN(SftBatch batch, BuildSftBatch(examples, tokenizer, max_length));
    SftStepLog log;
    log.step = step;
    // Linear warmup, then cosine to 10%.
    if (step < options.warmup_steps) {
      log.lr = options.lr * static_cast<double>(step + 1) / static_cast<double>(options.warmup_steps);
    } else {
      const double span = std::max<int64_t>(1, options.steps - options.warmup_steps);
      const double progress = static_cast<double>(step - options.warmup_steps) / span;
      log.lr = options.lr * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
    SFPO_RETURN_IF_ERROR(TorchCall([&] {
      for (auto& group : adam.param_groups()) group.options().set_lr(log.lr);
      const torch::Device device = policy->device();
      const torch::Tensor ids = batch.input_ids.to(device);
      const torch::Tensor mask = batch.target_mask.to(device);
      adam.zero_grad();
      torch::Tensor logits = policy->forward(ids);  // [B, T, V]
      const int64_t t = ids.size(1);
      // Position t is predicted from logits at t-1.
      torch::Tensor logp = torch::log_softmax(logits.narrow(1, 0, t - 1), -1);  // [B, T-1, V]
      torch::Tensor target = ids.narrow(1, 1, t - 1);
      torch::Tensor m = mask.narrow(1, 1, t - 1);
      torch::Tensor token_logp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1);
      const torch::Tensor count = m.sum();
      torch::Tensor loss = -(token_logp * m).sum() / count.clamp_min(1.0);
      loss.backward();
      if (options.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, options.grad_clip);
      adam.step();
      torch::NoGradGuard no_grad;
      const torch::Tensor correct = (logp.argmax(-1) == target).to(torch::kFloat32) * m;
      log.loss = loss.item<double>();
      log.target_tokens = static_cast<int64_t>(count.item<double>());
      log.token_accuracy = correct.sum().item<double>() / std::max<double>(1.0, count.item<double>());
    }));
    log.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_step) on_step(log);
  }
  return absl::OkStatus();
}

}  // namespace sfpo
