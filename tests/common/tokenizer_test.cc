#include "common/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "common/status_matchers.h"

namespace sfpo {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CharTokenizerTest, HasTheDocumentedSpecialTokensAndVocabulary) {
  auto tok = MakeCharTokenizer();
  EXPECT_EQ(tok->vocab_size(), 98);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  SFPO_ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode(" ~A"));
  EXPECT_THAT(ids, ElementsAre(3, 97, 3 + ('A' - 32)));
}

TEST(CharTokenizerTest, RoundTripsEveryPrintableCharacter) {
  auto tok = MakeCharTokenizer();
  std::string all;
  for (int c = 32; c <= 126; ++c) all.push_back(static_cast<char>(c));
  SFPO_ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode(all));
  ASSERT_EQ(ids.size(), all.size());
  for (int32_t id : ids) {
    EXPECT_GE(id, 3);
    EXPECT_LT(id, tok->vocab_size());
  }
  EXPECT_EQ(tok->Decode(ids), all);
  SFPO_ASSERT_OK_AND_ASSIGN(auto math, tok->Encode("12 + 7 * (3 - 1) = 26"));
  EXPECT_EQ(tok->Decode(math), "12 + 7 * (3 - 1) = 26");
  SFPO_ASSERT_OK_AND_ASSIGN(auto empty, tok->Encode(""));
  EXPECT_TRUE(empty.empty());
}

TEST(CharTokenizerTest, DecodeSkipsSpecialAndOutOfRangeIds) {
  auto tok = MakeCharTokenizer();
  SFPO_ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode("ab"));
  std::vector<int32_t> with_specials = {tok->bos_id(), ids[0], tok->pad_id(), ids[1],
                                        tok->eos_id(), 98, -1, 1000};
  EXPECT_EQ(tok->Decode(with_specials), "ab");
}

TEST(CharTokenizerTest, EncodeNamesTheFirstUnknownCharacter) {
  auto tok = MakeCharTokenizer();
  EXPECT_THAT(tok->Encode("ab\ncd"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0x0a at offset 2")));
  EXPECT_THAT(tok->Encode("caf\xc3\xa9"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0xc3 at offset 3")));
}

TEST(TokenizerTest, MakeTokenizerKnowsTheBuiltinsOnly) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto tok, MakeTokenizer("char"));
  EXPECT_EQ(tok->vocab_size(), kCharTokenizerVocabSize);
  EXPECT_THAT(MakeTokenizer("bpe"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("bpe")));
}

}  // namespace
}  // namespace sfpo
