// Conversions between the wire types (sfpo.v1 ScoreRequest/ScoreResult) and the verifier's
// plain types. The only place the reward service touches protobuf messages' fields.
#ifndef SFPO_SERVICES_REWARD_REWARD_CONVERT_H_
#define SFPO_SERVICES_REWARD_REWARD_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/reward/verdict.h"

namespace sfpo {
namespace v1 {
class ScoreRequest;
class ScoreResult;
}  // namespace v1

struct ScoreItemData {
  std::string task;
  std::string prompt;
  std::string completion;
  std::string gold;
};

struct ScoreBatch {
  std::vector<ScoreItemData> items;
  double format_reward = 0.0;
  // Zero: the server's default.
  absl::Duration item_deadline = absl::ZeroDuration();
};

// INVALID_ARGUMENT when the batch holds more than `max_items` items or format_reward is not in
// [0, 1].
absl::StatusOr<ScoreBatch> BatchFromProto(const v1::ScoreRequest& request, int max_items);
void BatchToProto(const ScoreBatch& batch, v1::ScoreRequest* request);

void ResultToProto(const VerifyResult& result, v1::ScoreResult* out);
// INVALID_ARGUMENT for VERDICT_UNSPECIFIED or an unknown verdict number.
absl::StatusOr<VerifyResult> ResultFromProto(const v1::ScoreResult& result);

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_REWARD_CONVERT_H_
