#include "services/learner/algorithm/batch.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "services/learner/algorithm/torch_guard.h"

namespace sfpo {
namespace {

absl::Status CheckRowsByCols(const at::Tensor& t, const char* name, int64_t n, int64_t cols) {
  if (!t.defined()) return absl::OkStatus();
  if (t.dim() != 2 || t.size(0) != n || t.size(1) != cols) {
    return absl::InvalidArgumentError(absl::StrCat("batch.", name, " must be [", n, ", ", cols,
                                                   "], got ",
                                                   c10::str(t.sizes())));
  }
  return absl::OkStatus();
}

at::Tensor SelectRows(const at::Tensor& t, const at::Tensor& index) {
  return t.defined() ? t.index_select(0, index.to(t.device())) : at::Tensor();
}

}  // namespace

absl::Status PrepareBatch(RolloutBatch* batch) {
  return GuardTorch("PrepareBatch", [&]() -> absl::Status {
    if (!batch->input_ids.defined() || batch->input_ids.dim() != 2) {
      return absl::InvalidArgumentError("batch.input_ids must be a [N, T] tensor");
    }
    if (batch->input_ids.scalar_type() != torch::kInt64) {
      return absl::InvalidArgumentError("batch.input_ids must be int64");
    }
    const int64_t n = batch->input_ids.size(0);
    const int64_t t = batch->input_ids.size(1);
    if (batch->group_size < 1 || n % batch->group_size != 0 || n == 0) {
      return absl::InvalidArgumentError(absl::StrCat("batch has ", n,
                                                     " sequences, not a positive multiple of "
                                                     "group_size ",
                                                     batch->group_size));
    }
    if (!batch->response_mask.defined()) {
      return absl::InvalidArgumentError("batch.response_mask is missing");
    }
    for (const auto& [tensor, name] :
         {std::pair<const at::Tensor&, const char*>{batch->response_mask, "response_mask"},
          {batch->old_logp, "old_logp"},
          {batch->ref_logp, "ref_logp"},
          {batch->behavior_logp, "behavior_logp"}}) {
      absl::Status s = CheckRowsByCols(tensor, name, n, t);
      if (!s.ok()) return s;
    }
    for (const auto& [tensor, name] :
         {std::pair<const at::Tensor&, const char*>{batch->rewards, "rewards"},
          {batch->advantages, "advantages"}}) {
      if (tensor.defined() && (tensor.dim() != 1 || tensor.size(0) != n)) {
        return absl::InvalidArgumentError(
            absl::StrCat("batch.", name, " must be [", n, "], got ", c10::str(tensor.sizes())));
      }
    }
    at::Tensor mask = batch->response_mask.to(torch::kCPU);
    if (mask.select(1, 0).ne(0).any().item<bool>()) {
      return absl::InvalidArgumentError(
          "batch.response_mask marks position 0, which no token predicts");
    }
    // lengths[b] = last marked column + 1 (0 for a row without response tokens).
    at::Tensor cols = torch::arange(1, t + 1, torch::kInt64).unsqueeze(0);
    at::Tensor last = (mask.ne(0).to(torch::kInt64) * cols).amax(1);
    batch->lengths.assign(last.data_ptr<int64_t>(), last.data_ptr<int64_t>() + n);
    return absl::OkStatus();
  });
}

RolloutBatch SelectGroups(const RolloutBatch& batch, const std::vector<int64_t>& groups) {
  const int64_t g = batch.group_size;
  std::vector<int64_t> rows;
  rows.reserve(groups.size() * g);
  for (int64_t group : groups) {
    for (int64_t i = 0; i < g; ++i) rows.push_back(group * g + i);
  }
  at::Tensor index = torch::tensor(rows, torch::kInt64);
  RolloutBatch out;
  out.group_size = g;
  out.input_ids = SelectRows(batch.input_ids, index);
  out.response_mask = SelectRows(batch.response_mask, index);
  out.rewards = SelectRows(batch.rewards, index);
  out.advantages = SelectRows(batch.advantages, index);
  out.old_logp = SelectRows(batch.old_logp, index);
  out.ref_logp = SelectRows(batch.ref_logp, index);
  out.behavior_logp = SelectRows(batch.behavior_logp, index);
  if (!batch.lengths.empty()) {
    for (int64_t r : rows) out.lengths.push_back(batch.lengths[r]);
  }
  return out;
}

}  // namespace sfpo
