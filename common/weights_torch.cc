#include "common/weights_torch.h"

#include <torch/torch.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sfpo {
namespace {
torch::ScalarType ToTorch(WireDType dtype) {
  return dtype == WireDType::kBF16 ? torch::kBFloat16 : torch::kFloat32;
}
}  // namespace

absl::StatusOr<PackedWeights> PackModuleWeights(torch::nn::Module& module, WireDType dtype,
                                                int64_t version, uint32_t chunk_bytes) {
  torch::NoGradGuard no_grad;
  PackedWeights out;
  WeightManifest& m = out.manifest;
  m.version = version;
  m.chunk_bytes = chunk_bytes;
  auto params = module.named_parameters(/*recurse=*/true);
  for (const auto& item : params) {
    WeightTensorInfo info;
    info.name = item.key();
    info.dtype = dtype;
    info.shape = item.value().sizes().vec();
    info.offset = m.total_bytes;
    info.nbytes = static_cast<uint64_t>(item.value().numel()) * WireDTypeSize(dtype);
    m.total_bytes += info.nbytes;
    m.tensors.push_back(std::move(info));
  }
  auto payload = std::make_shared<std::string>();
  payload->resize(m.total_bytes);
  size_t i = 0;
  for (const auto& item : params) {
    WeightTensorInfo& info = m.tensors[i++];
    torch::Tensor src = item.value().detach().to(torch::kCPU, ToTorch(dtype)).contiguous();
    std::memcpy(payload->data() + info.offset, src.data_ptr(), info.nbytes);
    info.xxh64 = Checksum(absl::string_view(payload->data() + info.offset, info.nbytes));
  }
  out.payload = std::move(payload);
  return out;
}

absl::Status ApplyPackedWeights(const PackedWeights& weights, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters(/*recurse=*/true);
  const WeightManifest& m = weights.manifest;
  if (params.size() != m.tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", m.version, " carry ",
                                                   m.tensors.size(), " tensors; the model has ",
                                                   params.size()));
  }
  if (weights.payload == nullptr || weights.payload->size() != m.total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("weights v", m.version, ": payload size"));
  }
  for (const WeightTensorInfo& t : m.tensors) {
    const torch::Tensor* p = params.find(t.name);
    if (p == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights v", m.version, ": unexpected tensor '", t.name, "'"));
    }
    if (p->sizes().vec() != t.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights v", m.version, ": tensor '", t.name, "' has shape [",
          absl::StrJoin(t.shape, ","), "], the model's is [", absl::StrJoin(p->sizes(), ","), "]"));
    }
  }
  for (const WeightTensorInfo& t : m.tensors) {
    torch::Tensor& p = params[t.name];
    auto src = torch::from_blob(const_cast<char*>(weights.payload->data()) + t.offset, t.shape,
                                torch::TensorOptions().dtype(ToTorch(t.dtype)));
    p.copy_(src);
  }
  return absl::OkStatus();
}

}  // namespace sfpo
