#include "services/reward/reward_convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/status_matchers.h"
#include "sfpo/v1/reward.pb.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

TEST(RewardConvert, BatchRoundTripsThroughTheWireType) {
  ScoreBatch batch;
  batch.format_reward = 0.25;
  batch.item_deadline = absl::Milliseconds(40);
  batch.items = {{"countdown3", "3 5 7=22:", "3*5+7", "3 5 7=22"},
                 {"", "What is 1+1?", "\\boxed{2}", "2"},
                 {"math", "", "", "\xce\xbb"}};
  v1::ScoreRequest request;
  BatchToProto(batch, &request);
  ASSERT_EQ(request.items_size(), 3);
  EXPECT_EQ(request.items(0).task(), "countdown3");
  EXPECT_EQ(request.item_deadline_ms(), 40u);
  SFPO_ASSERT_OK_AND_ASSIGN(ScoreBatch back, BatchFromProto(request, 10));
  EXPECT_DOUBLE_EQ(back.format_reward, 0.25);
  EXPECT_EQ(back.item_deadline, absl::Milliseconds(40));
  ASSERT_EQ(back.items.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.items[i].task, batch.items[i].task);
    EXPECT_EQ(back.items[i].prompt, batch.items[i].prompt);
    EXPECT_EQ(back.items[i].completion, batch.items[i].completion);
    EXPECT_EQ(back.items[i].gold, batch.items[i].gold);
  }
}

TEST(RewardConvert, RejectsOversizedBatchesAndBadFormatReward) {
  v1::ScoreRequest request;
  for (int i = 0; i < 5; ++i) request.add_items()->set_gold("1");
  EXPECT_THAT(BatchFromProto(request, 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds the limit of 4")));
  SFPO_EXPECT_OK(BatchFromProto(request, 5));
  request.set_format_reward(1.5f);
  EXPECT_THAT(BatchFromProto(request, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format_reward")));
  request.set_format_reward(-0.1f);
  EXPECT_THAT(BatchFromProto(request, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("format_reward")));
}

TEST(RewardConvert, ResultRoundTripsEveryVerdict) {
  for (Verdict v : {Verdict::kCorrect, Verdict::kIncorrect, Verdict::kUnparseable,
                    Verdict::kError}) {
    VerifyResult r;
    r.verdict = v;
    r.reward = v == Verdict::kCorrect ? 1.0 : 0.0;
    r.extracted = "\\frac{1}{2}";
    r.reason = "why";
    r.verifier_version = "sfpo-reward/test";
    v1::ScoreResult proto;
    ResultToProto(r, &proto);
    SFPO_ASSERT_OK_AND_ASSIGN(VerifyResult back, ResultFromProto(proto));
    EXPECT_EQ(back.verdict, v);
    EXPECT_DOUBLE_EQ(back.reward, r.reward);
    EXPECT_EQ(back.extracted, r.extracted);
    EXPECT_EQ(back.reason, r.reason);
    EXPECT_EQ(back.verifier_version, r.verifier_version);
  }
}

TEST(RewardConvert, FillsTheVersionAndRejectsAMissingVerdict) {
  VerifyResult r;
  r.verdict = Verdict::kCorrect;
  v1::ScoreResult proto;
  ResultToProto(r, &proto);
  EXPECT_EQ(proto.verifier_version(), kVerifierVersion);
  proto.set_verdict(v1::VERDICT_UNSPECIFIED);
  EXPECT_THAT(ResultFromProto(proto),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no valid verdict")));
}

}  // namespace
}  // namespace sfpo
