#include "services/learner/sft.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model.h"
#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

Policy TinyCharPolicy(uint64_t seed) {
  ModelArch a;
  a.vocab_size = kCharTokenizerVocabSize;
  a.hidden_size = 32;
  a.intermediate_size = 64;
  a.num_hidden_layers = 1;
  a.num_attention_heads = 2;
  a.num_key_value_heads = 1;
  a.max_position_embeddings = 24;
  Policy p(a);
  InitPolicyWeights(p, seed);
  return p;
}

TEST(SftTest, BatchMarksCompletionAndEosAsTargets) {
  auto tok = MakeCharTokenizer();
  SFPO_ASSERT_OK_AND_ASSIGN(SftBatch b, BuildSftBatch({{"1+2=", "3"}, {"10+2=", "12"}}, *tok, 0));
  ASSERT_EQ(b.input_ids.size(0), 2);
  ASSERT_EQ(b.input_ids.size(1), 9);  // bos + 5 + 2 + eos
  EXPECT_EQ(b.input_ids[0][0].item<int64_t>(), tok->bos_id());
  EXPECT_EQ(b.input_ids[0][6].item<int64_t>(), tok->eos_id());
  EXPECT_EQ(b.input_ids[0][7].item<int64_t>(), tok->pad_id());
  // Row 0: bos 1 + 2 = | 3 eos -> targets at 5, 6.
  std::vector<float> row0(b.target_mask[0].data_ptr<float>(), b.target_mask[0].data_ptr<float>() + 9);
  EXPECT_EQ(row0, std::vector<float>({0, 0, 0, 0, 0, 1, 1, 0, 0}));
  std::vector<float> row1(b.target_mask[1].data_ptr<float>(), b.target_mask[1].data_ptr<float>() + 9);
  EXPECT_EQ(row1, std::vector<float>({0, 0, 0, 0, 0, 0, 1, 1, 1}));
}

TEST(SftTest, BatchRejectsBadExamplesNamingThem) {
  auto tok = MakeCharTokenizer();
  EXPECT_THAT(BuildSftBatch({{"ok", "1"}, {"p", ""}}, *tok, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("example 1 has an empty")));
  EXPECT_THAT(BuildSftBatch({{"0123456789", "0123456789"}}, *tok, 12),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than the model's 12")));
  EXPECT_THAT(BuildSftBatch({{"caf\xc3\xa9", "1"}}, *tok, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("example 0")));
}

TEST(SftTest, LearnsASmallMappingFromPromptToCompletion) {
  torch::manual_seed(0);
  Policy policy = TinyCharPolicy(3);
  auto tok = MakeCharTokenizer();
  // Four fixed pairs: the completion depends on the prompt.
  const std::vector<SftText> data = {{"a=", "17"}, {"b=", "42"}, {"c=", "90"}, {"d=", "63"}};
  SftOptions options;
  options.steps = 120;
  options.batch = 8;
  options.lr = 1e-2;
  std::vector<SftStepLog> logs;
  SFPO_ASSERT_OK(RunSft(policy.ptr(), *tok,
                        [&](int64_t i) -> absl::StatusOr<SftText> { return data[i % 4]; },
                        options, [&](const SftStepLog& l) { logs.push_back(l); }));
  ASSERT_EQ(logs.size(), 120u);
  EXPECT_EQ(logs[0].target_tokens, 8 * 3);
  EXPECT_GT(logs.front().loss, 3.0);  // about log(98) at initialisation
  EXPECT_LT(logs.back().loss, 0.2);
  EXPECT_GT(logs.back().token_accuracy, 0.99);
}

TEST(SftTest, SourceErrorsStopTheRun) {
  Policy policy = TinyCharPolicy(1);
  auto tok = MakeCharTokenizer();
  SftOptions options;
  options.steps = 3;
  options.batch = 2;
  EXPECT_THAT(RunSft(policy.ptr(), *tok,
                     [](int64_t i) -> absl::StatusOr<SftText> {
                       if (i == 3) return absl::OutOfRangeError("source exhausted at 3");
                       return SftText{"x", "y"};
                     },
                     options, nullptr),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("exhausted")));
}

}  // namespace
}  // namespace sfpo
