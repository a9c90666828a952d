#include "common/model_arch.h"

#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

using Json = nlohmann::json;

absl::Status BadKey(const std::string& source, const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": \"", key, "\" ", why));
}

// Reads an integer key into *out; `required` decides whether absence is an error.
absl::Status ReadInt(const Json& j, const std::string& source, const std::string& key,
                     bool required, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? BadKey(source, key, "is required") : absl::OkStatus();
  }
  if (!it->is_number_integer()) return BadKey(source, key, "must be an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadDouble(const Json& j, const std::string& source, const std::string& key,
                        double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return BadKey(source, key, "must be a number");
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& j, const std::string& source, const std::string& key,
                      bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return BadKey(source, key, "must be true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}

ModelArch TinyChar() {
  ModelArch arch;
  arch.vocab_size = kCharTokenizerVocabSize;
  arch.hidden_size = 96;
  arch.intermediate_size = 256;
  arch.num_hidden_layers = 3;
  arch.num_attention_heads = 4;
  arch.num_key_value_heads = 2;
  arch.max_position_embeddings = 64;
  arch.rope_theta = 10000.0;
  arch.rms_norm_eps = 1e-6;
  arch.tie_word_embeddings = true;
  return arch;
}

}  // namespace

absl::Status ValidateModelArch(const ModelArch& arch, const std::string& source) {
  const std::pair<const char*, int64_t> positive[] = {
      {"vocab_size", arch.vocab_size},
      {"hidden_size", arch.hidden_size},
      {"intermediate_size", arch.intermediate_size},
      {"num_hidden_layers", arch.num_hidden_layers},
      {"num_attention_heads", arch.num_attention_heads},
      {"num_key_value_heads", arch.num_key_value_heads},
      {"max_position_embeddings", arch.max_position_embeddings},
  };
  for (const auto& [key, value] : positive) {
    if (value <= 0) return BadKey(source, key, absl::StrCat("must be positive, got ", value));
  }
  if (arch.hidden_size % arch.num_attention_heads != 0) {
    return BadKey(source, "hidden_size",
                  absl::StrCat("(", arch.hidden_size, ") must be a multiple of num_attention_heads (",
                               arch.num_attention_heads, ")"));
  }
  if (arch.num_attention_heads % arch.num_key_value_heads != 0) {
    return BadKey(source, "num_key_value_heads",
                  absl::StrCat("(", arch.num_key_value_heads,
                               ") must divide num_attention_heads (", arch.num_attention_heads, ")"));
  }
  if (arch.head_dim() % 2 != 0) {
    return BadKey(source, "hidden_size",
                  absl::StrCat("gives an odd head_dim (", arch.head_dim(),
                               "); rotary embeddings need an even one"));
  }
  if (!(arch.rope_theta > 0)) return BadKey(source, "rope_theta", "must be positive");
  if (!(arch.rms_norm_eps > 0)) return BadKey(source, "rms_norm_eps", "must be positive");
  return absl::OkStatus();
}

absl::StatusOr<ModelArch> ParseHfConfigJson(const std::string& json_text,
                                            const std::string& source) {
  Json j = Json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));

  if (auto it = j.find("model_type"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return BadKey(source, "model_type", "must be a string");
    if (it->get<std::string>() != "qwen2") {
      return absl::UnimplementedError(absl::StrCat(source, ": model_type \"", it->get<std::string>(),
                                                   "\" is not supported (only qwen2)"));
    }
  }
  if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "silu") {
      return absl::UnimplementedError(
          absl::StrCat(source, ": hidden_act ", it->dump(), " is not supported (only \"silu\")"));
    }
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    return absl::UnimplementedError(absl::StrCat(source, ": rope_scaling is not supported"));
  }
  bool sliding = false;
  SFPO_RETURN_IF_ERROR(ReadBool(j, source, "use_sliding_window", &sliding));
  if (sliding) {
    return absl::UnimplementedError(absl::StrCat(source, ": use_sliding_window is not supported"));
  }

  ModelArch arch;
  arch.max_position_embeddings = 32768;
  arch.tie_word_embeddings = false;
  SFPO_RETURN_IF_ERROR(ReadInt(j, source, "vocab_size", true, &arch.vocab_size));
  SFPO_RETURN_IF_ERROR(ReadInt(j, source, "hidden_size", true, &arch.hidden_size));
  SFPO_RETURN_IF_ERROR(ReadInt(j, source, "intermediate_size", true, &arch.intermediate_size));
  SFPO_RETURN_IF_ERROR(ReadInt(j, source, "num_hidden_layers", true, &arch.num_hidden_layers));
  SFPO_RETURN_IF_ERROR(ReadInt(j, source, "num_attention_heads", true, &arch.num_attention_heads));
  arch.num_key_value_heads = arch.num_attention_heads;
  SFPO_RETURN_IF_ERROR(ReadInt(j, source, "num_key_value_heads", false, &arch.num_key_value_heads));
  SFPO_RETURN_IF_ERROR(
      ReadInt(j, source, "max_position_embeddings", false, &arch.max_position_embeddings));
  SFPO_RETURN_IF_ERROR(ReadDouble(j, source, "rope_theta", &arch.rope_theta));
  SFPO_RETURN_IF_ERROR(ReadDouble(j, source, "rms_norm_eps", &arch.rms_norm_eps));
  SFPO_RETURN_IF_ERROR(ReadBool(j, source, "tie_word_embeddings", &arch.tie_word_embeddings));
  SFPO_RETURN_IF_ERROR(ValidateModelArch(arch, source));
  if (auto it = j.find("head_dim"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != arch.head_dim()) {
      return absl::UnimplementedError(absl::StrCat(source, ": head_dim ", it->dump(),
                                                   " differs from hidden_size / num_attention_heads (",
                                                   arch.head_dim(), ")"));
    }
  }
  return arch;
}

std::string ModelArchToHfConfigJson(const ModelArch& arch) {
  Json j = {
      {"architectures", {"Qwen2ForCausalLM"}},
      {"model_type", "qwen2"},
      {"hidden_act", "silu"},
      {"vocab_size", arch.vocab_size},
      {"hidden_size", arch.hidden_size},
      {"intermediate_size", arch.intermediate_size},
      {"num_hidden_layers", arch.num_hidden_layers},
      {"num_attention_heads", arch.num_attention_heads},
      {"num_key_value_heads", arch.num_key_value_heads},
      {"max_position_embeddings", arch.max_position_embeddings},
      {"rope_theta", arch.rope_theta},
      {"rms_norm_eps", arch.rms_norm_eps},
      {"tie_word_embeddings", arch.tie_word_embeddings},
      {"use_sliding_window", false},
      {"torch_dtype", "float32"},
  };
  return j.dump(2) + "\n";
}

std::vector<std::string> BuiltinModelNames() { return {"tiny-char"}; }

absl::StatusOr<ModelArch> LoadModelArch(const std::string& name_or_dir) {
  if (name_or_dir == "tiny-char") return TinyChar();
  struct stat st {};
  if (stat(name_or_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("model config \"", name_or_dir,
                                            "\" is neither a built-in (tiny-char) nor a directory"));
  }
  const std::string path = name_or_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseHfConfigJson(buffer.str(), path);
}

int64_t ParameterCount(const ModelArch& arch) {
  const int64_t d = arch.hidden_size;
  const int64_t kv = arch.num_key_value_heads * arch.head_dim();
  const int64_t attention = (d * d + d) + 2 * (d * kv + kv) + d * d;
  const int64_t mlp = 3 * d * arch.intermediate_size;
  const int64_t layer = attention + mlp + 2 * d;
  int64_t total = arch.vocab_size * d + arch.num_hidden_layers * layer + d;
  if (!arch.tie_word_embeddings) total += arch.vocab_size * d;
  return total;
}

}  // namespace sfpo
