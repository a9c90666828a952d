#include "common/torch_util.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

namespace sfpo {

absl::StatusOr<c10::Device> ResolveDevice(const std::string& name) {
  if (name == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      return absl::UnavailableError(absl::StrCat("device \"", name, "\": no CUDA device available"));
    }
    return TorchCallOr([&] { return c10::Device(name); });
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device \"", name, "\" (auto, cpu, cuda or cuda:N)"));
}

void SetTorchThreads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

}  // namespace sfpo
