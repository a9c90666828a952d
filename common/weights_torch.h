// Packs a module's parameters into a wire version and applies one back (torch side of
// common/weights_codec.h). Names are the module's parameter names (Hugging Face's for Policy).
#ifndef SFPO_COMMON_WEIGHTS_TORCH_H_
#define SFPO_COMMON_WEIGHTS_TORCH_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/weights_codec.h"

namespace torch {
namespace nn {
class Module;
}  // namespace nn
}  // namespace torch

namespace sfpo {

// One contiguous payload of every parameter, converted to `dtype`, with per-tensor checksums.
absl::StatusOr<PackedWeights> PackModuleWeights(torch::nn::Module& module, WireDType dtype,
                                                int64_t version, uint32_t chunk_bytes);

// Copies a verified version into the module's parameters in place (no autograd). The names
// and shapes must match the module's exactly: INVALID_ARGUMENT naming the tensor otherwise, and
// the module is left untouched (everything is checked before anything is copied).
absl::Status ApplyPackedWeights(const PackedWeights& weights, torch::nn::Module& module);

}  // namespace sfpo

#endif  // SFPO_COMMON_WEIGHTS_TORCH_H_
