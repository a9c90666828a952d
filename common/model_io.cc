// safetensors <-> Torch: SavePolicy, LoadPolicy and tensor conversions (declared in model.h).
#include <sys/stat.h>
#include <torch/torch.h>

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model.h"
#include "common/status.h"
#include "common/torch_util.h"

namespace sfpo {
namespace {

torch::ScalarType ToTorch(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return torch::kFloat32;
    case SafetensorsDtype::kBF16:
      return torch::kBFloat16;
    case SafetensorsDtype::kF16:
      return torch::kFloat16;
  }
  return torch::kFloat32;
}

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// CPU-contiguous copies in `dtype`, kept alive while their bytes are written.
absl::StatusOr<std::vector<torch::Tensor>> ToHost(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors, SafetensorsDtype dtype,
    std::vector<TensorToWrite>* records) {
  std::vector<torch::Tensor> host;
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    torch::NoGradGuard no_grad;
    for (const auto& [name, tensor] : tensors) {
      host.push_back(tensor.detach().to(torch::kCPU).to(ToTorch(dtype)).contiguous());
      TensorToWrite record;
      record.name = name;
      record.dtype = dtype;
      record.shape = host.back().sizes().vec();
      record.data = host.back().data_ptr();
      record.size_bytes = host.back().numel() * host.back().element_size();
      records->push_back(std::move(record));
    }
  }));
  return host;
}

std::vector<std::pair<std::string, torch::Tensor>> NamedParameters(Policy& policy) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : policy->named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace

absl::StatusOr<torch::Tensor> TensorFromView(const TensorView& view) {
  return TorchCallOr([&] {
    torch::Tensor out = torch::empty(view.shape, torch::TensorOptions().dtype(ToTorch(view.dtype)));
    if (view.size_bytes > 0) std::memcpy(out.data_ptr(), view.data, view.size_bytes);
    return out;
  });
}

absl::Status SaveTensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                         const std::string& path, SafetensorsDtype dtype) {
  std::vector<TensorToWrite> records;
  SFPO_ASSIGN_OR_RETURN(std::vector<torch::Tensor> host, ToHost(tensors, dtype, &records));
  return WriteSafetensors(path, records, {{"format", "pt"}});
}

absl::Status SaveTensorsSharded(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                const std::string& dir, SafetensorsDtype dtype,
                                size_t max_shard_bytes) {
  std::vector<TensorToWrite> records;
  SFPO_ASSIGN_OR_RETURN(std::vector<torch::Tensor> host, ToHost(tensors, dtype, &records));
  return WriteShardedSafetensors(dir, records, max_shard_bytes);
}

absl::Status SavePolicy(Policy& policy, const std::string& path) {
  struct stat st {};
  const bool is_dir = stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  return SaveTensors(NamedParameters(policy), is_dir ? path + "/model.safetensors" : path,
                     SafetensorsDtype::kF32);
}

absl::Status LoadPolicy(Policy& policy, const std::string& path_or_dir) {
  SFPO_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsCheckpoint> checkpoint,
                        SafetensorsCheckpoint::Open(path_or_dir));
  auto params = NamedParameters(policy);
  // Validate everything before touching the policy.
  std::set<std::string> expected;
  for (const auto& [name, param] : params) {
    expected.insert(name);
    const TensorView* view = checkpoint->Find(name);
    if (view == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_or_dir, ": tensor \"", name, "\" is missing (the model has it with shape ",
          ShapeString(param.sizes()), ")"));
    }
    if (view->shape != param.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat(
          checkpoint->FileOf(name), ": tensor \"", name, "\" has shape ", ShapeString(view->shape),
          " but the model expects ", ShapeString(param.sizes())));
    }
  }
  for (const TensorView* view : checkpoint->tensors()) {
    if (expected.count(view->name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(checkpoint->FileOf(view->name), ": tensor \"",
                                                     view->name,
                                                     "\" is unexpected (the model has no such parameter)"));
    }
  }
  for (auto& [name, param] : params) {
    SFPO_ASSIGN_OR_RETURN(torch::Tensor value, TensorFromView(*checkpoint->Find(name)));
    SFPO_RETURN_IF_ERROR(TorchCall([&] {
      torch::NoGradGuard no_grad;
      param.copy_(value);
    }));
  }
  return absl::OkStatus();
}

}  // namespace sfpo
