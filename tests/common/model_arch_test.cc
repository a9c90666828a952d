#include "common/model_arch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

// The config.json of Qwen2.5-0.5B (abridged to the fields transformers reads).
constexpr char kQwen25Half[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

TEST(ModelArchTest, ParsesARealQwen2Config) {
  SFPO_ASSERT_OK_AND_ASSIGN(ModelArch arch, ParseHfConfigJson(kQwen25Half, "config.json"));
  EXPECT_EQ(arch.vocab_size, 151936);
  EXPECT_EQ(arch.hidden_size, 896);
  EXPECT_EQ(arch.intermediate_size, 4864);
  EXPECT_EQ(arch.num_hidden_layers, 24);
  EXPECT_EQ(arch.num_attention_heads, 14);
  EXPECT_EQ(arch.num_key_value_heads, 2);
  EXPECT_EQ(arch.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(arch.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(arch.rms_norm_eps, 1e-6);
  EXPECT_TRUE(arch.tie_word_embeddings);
  EXPECT_EQ(arch.head_dim(), 64);
  // The published parameter count of Qwen2.5-0.5B: 494,032,768.
  EXPECT_EQ(ParameterCount(arch), 494032768);
}

TEST(ModelArchTest, AppliesHuggingFaceDefaultsForOmittedFields) {
  SFPO_ASSERT_OK_AND_ASSIGN(
      ModelArch arch,
      ParseHfConfigJson(R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                            "num_hidden_layers": 1, "num_attention_heads": 2})",
                        "c.json"));
  EXPECT_EQ(arch.num_key_value_heads, 2);
  EXPECT_EQ(arch.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(arch.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(arch.rms_norm_eps, 1e-6);
  EXPECT_FALSE(arch.tie_word_embeddings);
}

TEST(ModelArchTest, RejectsBadConfigsNamingSourceAndKey) {
  const std::string base = R"("vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1)";
  EXPECT_THAT(ParseHfConfigJson("{" + base + "}", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("a.json"), HasSubstr("num_attention_heads"),
                                        HasSubstr("required"))));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": "2"})", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be an integer")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 3})", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiple of num_attention_heads")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 4, "num_key_value_heads": 3})", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_key_value_heads")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 8})", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("odd head_dim")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 2, "vocab_size": 0})", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("vocab_size")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 2, "model_type": "llama"})", "a.json"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("llama")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 2, "rope_scaling": {"type": "yarn"}})", "a.json"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("rope_scaling")));
  EXPECT_THAT(ParseHfConfigJson("{" + base + R"(, "num_attention_heads": 2, "use_sliding_window": true})", "a.json"),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("use_sliding_window")));
  EXPECT_THAT(ParseHfConfigJson("{not json", "a.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid JSON")));
}

TEST(ModelArchTest, TinyCharBuiltinHasTheDocumentedShape) {
  SFPO_ASSERT_OK_AND_ASSIGN(ModelArch arch, LoadModelArch("tiny-char"));
  EXPECT_EQ(arch.hidden_size, 96);
  EXPECT_EQ(arch.num_hidden_layers, 3);
  EXPECT_EQ(arch.num_attention_heads, 4);
  EXPECT_EQ(arch.num_key_value_heads, 2);
  EXPECT_EQ(arch.intermediate_size, 256);
  EXPECT_EQ(arch.vocab_size, 98);
  EXPECT_EQ(arch.max_position_embeddings, 64);
  EXPECT_TRUE(arch.tie_word_embeddings);
  SFPO_EXPECT_OK(ValidateModelArch(arch, "tiny-char"));
}

TEST(ModelArchTest, LoadsADirectoryAndRoundTripsThroughJson) {
  SFPO_ASSERT_OK_AND_ASSIGN(ModelArch tiny, LoadModelArch("tiny-char"));
  tiny.rope_theta = 12345.0;
  std::string dir = ::testing::TempDir() + "/sfpo_arch_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  std::ofstream(dir + "/config.json") << ModelArchToHfConfigJson(tiny);
  SFPO_ASSERT_OK_AND_ASSIGN(ModelArch loaded, LoadModelArch(dir));
  EXPECT_EQ(loaded.hidden_size, tiny.hidden_size);
  EXPECT_EQ(loaded.num_key_value_heads, tiny.num_key_value_heads);
  EXPECT_DOUBLE_EQ(loaded.rope_theta, 12345.0);
  EXPECT_TRUE(loaded.tie_word_embeddings);
  EXPECT_THAT(LoadModelArch("no-such-model"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-model")));
}

}  // namespace
}  // namespace sfpo
