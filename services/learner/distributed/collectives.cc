#include "services/learner/distributed/collectives.h"

#include <ATen/ATen.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/torch_util.h"

namespace sfpo {
namespace {

// A collective that finished, successfully, when it was started.
class DonePending final : public PendingCollective {
 public:
  absl::Status Wait() override { return absl::OkStatus(); }
};

class LocalCollectives final : public Collectives {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(at::Tensor&) override { return absl::OkStatus(); }
  absl::Status AllGather(const at::Tensor& shard, at::Tensor& full) override {
    if (full.numel() != shard.numel()) {
      return absl::InvalidArgumentError(absl::StrCat("all_gather: output has ", full.numel(),
                                                     " elements, expected ", shard.numel()));
    }
    return TorchCall([&] { full.view({-1}).copy_(shard.view({-1})); });
  }
  absl::Status ReduceScatterSum(at::Tensor& full, at::Tensor& shard) override {
    if (full.numel() != shard.numel()) {
      return absl::InvalidArgumentError(absl::StrCat("reduce_scatter: input has ", full.numel(),
                                                     " elements, expected ", shard.numel()));
    }
    return TorchCall([&] { shard.view({-1}).copy_(full.view({-1})); });
  }
  absl::Status Broadcast(at::Tensor&, int root) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("broadcast from rank ", root));
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::Status BroadcastMessage(std::string*, int root, absl::Duration) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("message from rank ", root));
    return absl::OkStatus();
  }
  CollectiveStats stats() const override { return {}; }
};

}  // namespace

absl::StatusOr<std::unique_ptr<PendingCollective>> Collectives::StartReduceScatterSum(
    at::Tensor& full, at::Tensor& shard) {
  absl::Status status = ReduceScatterSum(full, shard);
  if (!status.ok()) return status;
  return std::unique_ptr<PendingCollective>(new DonePending());
}

std::unique_ptr<Collectives> MakeLocalCollectives() { return std::make_unique<LocalCollectives>(); }

}  // namespace sfpo
