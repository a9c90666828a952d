// The rollout worker's model side: a Policy driven by the batched generation engine, with the
// character tokenizer for decoding. Implements Generator.
#ifndef SFPO_SERVICES_ROLLOUT_TORCH_GENERATOR_H_
#define SFPO_SERVICES_ROLLOUT_TORCH_GENERATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/rollout/worker.h"

namespace sfpo {

struct TorchGeneratorOptions {
  std::string model_config = "tiny-char";  // built-in name or HF config directory
  uint64_t init_seed = 0;                  // weights before the first version arrives
};

absl::StatusOr<std::unique_ptr<Generator>> MakeTorchGenerator(const TorchGeneratorOptions& options);

}  // namespace sfpo

#endif  // SFPO_SERVICES_ROLLOUT_TORCH_GENERATOR_H_
