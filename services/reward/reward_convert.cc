#include "services/reward/reward_convert.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "sfpo/v1/reward.pb.h"

namespace sfpo {

absl::StatusOr<ScoreBatch> BatchFromProto(const v1::ScoreRequest& request, int max_items) {
  if (request.items_size() > max_items) {
    return absl::InvalidArgumentError(absl::StrCat("batch of ", request.items_size(),
                                                   " items exceeds the limit of ", max_items));
  }
  if (!(request.format_reward() >= 0.0f && request.format_reward() <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("format_reward must be in [0, 1], got ", request.format_reward()));
  }
  ScoreBatch batch;
  batch.format_reward = request.format_reward();
  batch.item_deadline = absl::Milliseconds(request.item_deadline_ms());
  batch.items.reserve(request.items_size());
  for (const v1::ScoreItem& item : request.items()) {
    batch.items.push_back({item.task(), item.prompt(), item.completion(), item.gold()});
  }
  return batch;
}

void BatchToProto(const ScoreBatch& batch, v1::ScoreRequest* request) {
  request->Clear();
  request->set_format_reward(static_cast<float>(batch.format_reward));
  request->set_item_deadline_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(batch.item_deadline)));
  for (const ScoreItemData& item : batch.items) {
    v1::ScoreItem* out = request->add_items();
    out->set_task(item.task);
    out->set_prompt(item.prompt);
    out->set_completion(item.completion);
    out->set_gold(item.gold);
  }
}

namespace {
v1::Verdict VerdictToProto(Verdict v) {
  switch (v) {
    case Verdict::kCorrect: return v1::VERDICT_CORRECT;
    case Verdict::kIncorrect: return v1::VERDICT_INCORRECT;
    case Verdict::kUnparseable: return v1::VERDICT_UNPARSEABLE;
    case Verdict::kError: return v1::VERDICT_ERROR;
  }
  return v1::VERDICT_ERROR;
}
}  // namespace

void ResultToProto(const VerifyResult& result, v1::ScoreResult* out) {
  out->set_verdict(VerdictToProto(result.verdict));
  out->set_reward(static_cast<float>(result.reward));
  out->set_extracted(result.extracted);
  out->set_reason(result.reason);
  out->set_verifier_version(result.verifier_version.empty() ? std::string(kVerifierVersion)
                                                            : result.verifier_version);
}

absl::StatusOr<VerifyResult> ResultFromProto(const v1::ScoreResult& result) {
  VerifyResult r;
  switch (result.verdict()) {
    case v1::VERDICT_CORRECT: r.verdict = Verdict::kCorrect; break;
    case v1::VERDICT_INCORRECT: r.verdict = Verdict::kIncorrect; break;
    case v1::VERDICT_UNPARSEABLE: r.verdict = Verdict::kUnparseable; break;
    case v1::VERDICT_ERROR: r.verdict = Verdict::kError; break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("result has no valid verdict (", static_cast<int>(result.verdict()), ")"));
  }
  r.reward = result.reward();
  r.extracted = result.extracted();
  r.reason = result.reason();
  r.verifier_version = result.verifier_version();
  return r;
}

}  // namespace sfpo
