#include "services/learner/algorithm/update_pass.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "services/learner/algorithm/torch_guard.h"

namespace sfpo {
namespace {

at::Tensor RowIndex(const std::vector<int64_t>& rows, const at::Device& device) {
  return torch::tensor(rows, torch::kInt64).to(device);
}

// Rows of `t` ([N, T]) at `index`, trimmed to `max_length` columns; undefined stays undefined.
at::Tensor Rows(const at::Tensor& t, const at::Tensor& index, int64_t max_length) {
  if (!t.defined()) return at::Tensor();
  return t.index_select(0, index.to(t.device())).narrow(1, 0, max_length);
}

void ZeroGrads(const std::vector<at::Tensor>& params) {
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) {
      const_cast<at::Tensor&>(p).mutable_grad().reset();
    }
  }
}

absl::Status CheckReady(const RolloutBatch& batch, const UpdateOptions& options) {
  if (batch.lengths.size() != static_cast<size_t>(batch.num_sequences())) {
    return absl::InvalidArgumentError("batch is not prepared (call PrepareBatch)");
  }
  if (!batch.advantages.defined()) return absl::InvalidArgumentError("batch has no advantages");
  if (!batch.old_logp.defined()) return absl::InvalidArgumentError("batch has no old_logp");
  if (options.loss.kl_coef > 0 && !batch.ref_logp.defined()) {
    return absl::InvalidArgumentError("kl_coef > 0 needs batch.ref_logp");
  }
  if (options.mini_batch_groups < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("mini_batch_groups must be >= 1, got ", options.mini_batch_groups));
  }
  if (options.micro_batch_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_tokens must be >= 1, got ", options.micro_batch_tokens));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<MicroBatch> PackMicroBatches(const std::vector<int64_t>& rows,
                                         const std::vector<int64_t>& lengths,
                                         int64_t token_budget) {
  std::vector<int64_t> sorted;
  for (int64_t r : rows) {
    if (lengths[r] > 0) sorted.push_back(r);  // rows without response tokens carry no loss
  }
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  std::vector<MicroBatch> out;
  for (int64_t r : sorted) {
    if (!out.empty()) {
      MicroBatch& cur = out.back();
      // Sorted longest first: the current micro-batch's longest row is its first.
      if (static_cast<int64_t>(cur.rows.size() + 1) * cur.max_length <= token_budget) {
        cur.rows.push_back(r);
        continue;
      }
    }
    out.push_back(MicroBatch{{r}, lengths[r]});
  }
  return out;
}

std::vector<MiniBatch> PlanPass(const RolloutBatch& batch, const std::vector<int64_t>& group_order,
                                const UpdateOptions& options) {
  std::vector<int64_t> order = group_order;
  if (order.empty()) {
    order.resize(batch.num_groups());
    std::iota(order.begin(), order.end(), 0);
  }
  std::vector<MiniBatch> plan;
  const int64_t g = batch.group_size;
  for (size_t start = 0; start < order.size(); start += options.mini_batch_groups) {
    const size_t end = std::min(order.size(), start + options.mini_batch_groups);
    MiniBatch mb;
    for (size_t i = start; i < end; ++i) {
      for (int64_t j = 0; j < g; ++j) mb.rows.push_back(order[i] * g + j);
    }
    mb.micro_batches = PackMicroBatches(mb.rows, batch.lengths, options.micro_batch_tokens);
    plan.push_back(std::move(mb));
  }
  return plan;
}

PassStats PassAccumulator::Finish() const {
  PassStats s;
  const double t = std::max(tokens, 1.0);
  s.loss = optimizer_steps > 0 ? loss / static_cast<double>(optimizer_steps) : loss;
  s.pg_loss = pg / t;
  s.entropy = entropy / t;
  s.clip_fraction = clipped / t;
  s.approx_kl = approx_kl / t;
  s.ref_kl = ref_kl / t;
  s.grad_norm_mean =
      optimizer_steps > 0 ? grad_norm_sum / static_cast<double>(optimizer_steps) : 0.0;
  s.grad_norm_max = grad_norm_max;
  s.optimizer_steps = optimizer_steps;
  s.micro_batches = micro_batches;
  s.tokens = static_cast<int64_t>(tokens);
  return s;
}

absl::StatusOr<at::Tensor> ComputeSequenceLogp(const PolicyFn& policy, const RolloutBatch& batch,
                                               int64_t micro_batch_tokens) {
  at::Tensor result;
  absl::Status status = GuardTorch("old_logp", [&]() -> absl::Status {
    if (batch.lengths.size() != static_cast<size_t>(batch.num_sequences())) {
      return absl::InvalidArgumentError("batch is not prepared (call PrepareBatch)");
    }
    torch::NoGradGuard no_grad;
    std::vector<int64_t> rows(batch.num_sequences());
    std::iota(rows.begin(), rows.end(), 0);
    for (const MicroBatch& micro :
         PackMicroBatches(rows, batch.lengths, std::max<int64_t>(1, micro_batch_tokens))) {
      const at::Tensor index = RowIndex(micro.rows, batch.input_ids.device());
      const at::Tensor ids = Rows(batch.input_ids, index, micro.max_length);
      PolicyOutput out = policy(ids);
      if (!result.defined()) {
        result = torch::zeros(batch.input_ids.sizes(), out.logp.options());
      }
      const at::Tensor mask = Rows(batch.response_mask, index, micro.max_length);
      result.narrow(1, 0, micro.max_length)
          .index_copy_(0, index.to(result.device()), out.logp * mask.to(out.logp.dtype()));
    }
    if (!result.defined()) {  // no response tokens at all
      result = torch::zeros(batch.input_ids.sizes(), torch::kFloat32);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::Status AccumulateMiniBatchGradients(const PolicyFn& policy,
                                          const std::vector<at::Tensor>& params,
                                          const RolloutBatch& batch, const MiniBatch& mini_batch,
                                          const UpdateOptions& options, PassAccumulator* acc,
                                          const std::function<void()>& before_last_backward) {
  SFPO_RETURN_IF_ERROR(CheckReady(batch, options));
  return GuardTorch("update pass", [&]() -> absl::Status {
    ZeroGrads(params);
    // Aggregation weights over the whole mini-batch, whatever its micro-batch split.
    const at::Tensor mb_index = RowIndex(mini_batch.rows, batch.input_ids.device());
    const at::Tensor row_tokens =
        batch.response_mask.index_select(0, mb_index).ne(0).sum(1).to(torch::kCPU, torch::kFloat64);
    const double* tok = row_tokens.data_ptr<double>();
    double total_tokens = 0;
    int64_t sequences = 0;
    std::vector<double> row_weight(batch.num_sequences(), 0.0);
    for (size_t i = 0; i < mini_batch.rows.size(); ++i) {
      total_tokens += tok[i];
      if (tok[i] > 0) ++sequences;
    }
    if (mini_batch.total_tokens >= 0) total_tokens = mini_batch.total_tokens;
    if (mini_batch.total_sequences >= 0) {
      sequences = static_cast<int64_t>(mini_batch.total_sequences);
    }
    for (size_t i = 0; i < mini_batch.rows.size(); ++i) {
      if (tok[i] == 0) continue;
      row_weight[mini_batch.rows[i]] = options.aggregation == LossAggregation::kTokenMean
                                           ? 1.0 / total_tokens
                                           : 1.0 / (tok[i] * static_cast<double>(sequences));
    }
    double mb_loss = 0;
    for (size_t m = 0; m < mini_batch.micro_batches.size(); ++m) {
      const MicroBatch& micro = mini_batch.micro_batches[m];
      const at::Tensor index = RowIndex(micro.rows, batch.input_ids.device());
      const at::Tensor ids = Rows(batch.input_ids, index, micro.max_length);
      PolicyOutput out = policy(ids);
      std::vector<double> w;
      for (int64_t r : micro.rows) w.push_back(row_weight[r]);
      LossInputs in;
      in.logp = out.logp;
      in.entropy = out.entropy;
      in.old_logp = Rows(batch.old_logp, index, micro.max_length);
      in.advantages = batch.advantages.index_select(0, index.to(batch.advantages.device()));
      in.mask = Rows(batch.response_mask, index, micro.max_length).to(out.logp.dtype());
      in.token_weight =
          in.mask * torch::tensor(w, torch::kFloat64).to(out.logp.options()).unsqueeze(1);
      in.ref_logp = Rows(batch.ref_logp, index, micro.max_length);
      LossTerms terms = ComputeTokenLoss(in, options.loss);
      if (before_last_backward && m + 1 == mini_batch.micro_batches.size()) {
        before_last_backward();
      }
      terms.loss.backward();
      mb_loss += terms.loss.item<double>();
      acc->tokens += terms.tokens;
      acc->pg += terms.pg_sum;
      acc->entropy += terms.entropy_sum;
      acc->clipped += terms.clipped_sum;
      acc->approx_kl += terms.approx_kl_sum;
      acc->ref_kl += terms.ref_kl_sum;
      ++acc->micro_batches;
    }
    acc->loss += mb_loss;
    return absl::OkStatus();
  });
}

absl::StatusOr<PassStats> RunUpdatePass(const PolicyFn& policy,
                                        const std::vector<at::Tensor>& params,
                                        torch::optim::Optimizer* optimizer,
                                        const RolloutBatch& batch,
                                        const std::vector<int64_t>& group_order,
                                        const UpdateOptions& options) {
  SFPO_RETURN_IF_ERROR(CheckReady(batch, options));
  if (!group_order.empty()) {
    std::vector<int64_t> sorted = group_order;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i] != static_cast<int64_t>(i) ||
          sorted.size() != static_cast<size_t>(batch.num_groups())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "group order is not a permutation of the batch's ", batch.num_groups(), " groups"));
      }
    }
  }
  PassAccumulator acc;
  for (const MiniBatch& mb : PlanPass(batch, group_order, options)) {
    if (mb.micro_batches.empty()) continue;  // no response tokens: nothing to learn from
    SFPO_RETURN_IF_ERROR(AccumulateMiniBatchGradients(policy, params, batch, mb, options, &acc));
    SFPO_RETURN_IF_ERROR(GuardTorch("optimizer step", [&]() -> absl::Status {
      const double max_norm =
          options.grad_clip > 0 ? options.grad_clip : std::numeric_limits<double>::infinity();
      const double norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
      acc.grad_norm_sum += norm;
      acc.grad_norm_max = std::max(acc.grad_norm_max, norm);
      optimizer->step();
      ++acc.optimizer_steps;
      return absl::OkStatus();
    }));
  }
  return acc.Finish();
}

}  // namespace sfpo
