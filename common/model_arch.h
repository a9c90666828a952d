// The policy network's shape: the fields of a Hugging Face Qwen2 `config.json`, parsed and
// validated, plus the built-in tiny configs. No Torch here: every service may include it.
#ifndef SFPO_COMMON_MODEL_ARCH_H_
#define SFPO_COMMON_MODEL_ARCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfpo {

// A decoder-only Qwen2 transformer: RMSNorm, rotary positions, grouped-query attention with
// q/k/v biases, a SwiGLU MLP, tied or untied embeddings. head_dim = hidden / heads.
struct ModelArch {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = true;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Checks the invariants the model relies on (positive sizes, heads dividing hidden, kv heads
// dividing heads, an even head_dim). INVALID_ARGUMENT naming `source` and the field otherwise.
absl::Status ValidateModelArch(const ModelArch& arch, const std::string& source);

// Parses a Hugging Face Qwen2 config.json. Required: vocab_size, hidden_size,
// intermediate_size, num_hidden_layers, num_attention_heads. Defaults as in Hugging Face's
// Qwen2Config: num_key_value_heads = num_attention_heads, max_position_embeddings = 32768,
// rope_theta = 10000, rms_norm_eps = 1e-6, tie_word_embeddings = false. INVALID_ARGUMENT (naming
// `source` and the key) for malformed JSON, a wrong type or a bad value; UNIMPLEMENTED for
// features this model does not implement (model_type other than qwen2, hidden_act other than
// silu, rope_scaling, use_sliding_window: true).
absl::StatusOr<ModelArch> ParseHfConfigJson(const std::string& json_text, const std::string& source);

// Serialises `arch` as a Hugging Face Qwen2 config.json (model_type qwen2), readable by
// ParseHfConfigJson and by transformers.
std::string ModelArchToHfConfigJson(const ModelArch& arch);

// `name_or_dir`: a built-in name (see BuiltinModelNames) or a directory holding config.json.
// NOT_FOUND when it is neither.
//   tiny-char: hidden 96, 3 layers, 4 heads, 2 kv heads, intermediate 256, the char
//              tokenizer's vocabulary (98), 64 positions, tied embeddings.
absl::StatusOr<ModelArch> LoadModelArch(const std::string& name_or_dir);

// The built-in config names.
std::vector<std::string> BuiltinModelNames();

// Number of parameters (lm_head counted only when untied).
int64_t ParameterCount(const ModelArch& arch);

}  // namespace sfpo

#endif  // SFPO_COMMON_MODEL_ARCH_H_
