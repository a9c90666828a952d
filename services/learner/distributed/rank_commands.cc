#include "services/learner/distributed/rank_commands.h"

#include <torch/torch.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/torch_util.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

using nlohmann::json;

// The batch's tensors in broadcast order, with the wire dtypes.
std::vector<at::Tensor*> BatchTensors(RolloutBatch* b, bool behavior) {
  std::vector<at::Tensor*> out = {&b->input_ids, &b->response_mask, &b->rewards};
  if (behavior) out.push_back(&b->behavior_logp);
  return out;
}

}  // namespace

absl::Status SendCommand(Collectives* c, const RankCommand& command) {
  json header = {
      {"kind", static_cast<int>(command.kind)}, {"step", command.step}, {"text", command.text}};
  RolloutBatch batch;
  const bool step = command.kind == RankCommand::Kind::kStep;
  if (step) {
    const RolloutBatch& b = command.batch;
    if (!b.input_ids.defined() || b.input_ids.dim() != 2 || !b.response_mask.defined() ||
        !b.rewards.defined()) {
      return absl::InvalidArgumentError("step command without input_ids, response_mask, rewards");
    }
    SFPO_RETURN_IF_ERROR(TorchCall([&] {
      batch.group_size = b.group_size;
      batch.input_ids = b.input_ids.to(torch::kInt64).contiguous();
      batch.response_mask = b.response_mask.to(torch::kFloat32).contiguous();
      batch.rewards = b.rewards.to(torch::kFloat64).contiguous();
      if (b.behavior_logp.defined()) {
        batch.behavior_logp = b.behavior_logp.to(torch::kFloat32).contiguous();
      }
    }));
    header["rows"] = batch.input_ids.size(0);
    header["width"] = batch.input_ids.size(1);
    header["group_size"] = batch.group_size;
    header["behavior"] = batch.behavior_logp.defined();
  }
  std::string message = header.dump();
  SFPO_RETURN_IF_ERROR(c->BroadcastMessage(&message, 0, absl::ZeroDuration()));
  if (step) {
    for (at::Tensor* t : BatchTensors(&batch, batch.behavior_logp.defined())) {
      SFPO_RETURN_IF_ERROR(c->Broadcast(*t, 0));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RankCommand> ReceiveCommand(Collectives* c, absl::Duration wait) {
  std::string message;
  SFPO_RETURN_IF_ERROR(c->BroadcastMessage(&message, 0, wait));
  const json header = json::parse(message, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const char* what) {
    return absl::InvalidArgumentError(absl::StrCat("rank command: ", what, ": ", message));
  };
  if (!header.is_object() || !header.contains("kind") || !header["kind"].is_number_integer()) {
    return bad("no kind");
  }
  RankCommand command;
  const int kind = header["kind"].get<int>();
  if (kind < 0 || kind > static_cast<int>(RankCommand::Kind::kRestore)) return bad("unknown kind");
  command.kind = static_cast<RankCommand::Kind>(kind);
  command.step = header.value("step", int64_t{0});
  command.text = header.value("text", std::string());
  if (command.kind != RankCommand::Kind::kStep) return command;
  const int64_t rows = header.value("rows", int64_t{-1});
  const int64_t width = header.value("width", int64_t{-1});
  const int64_t group_size = header.value("group_size", int64_t{-1});
  if (rows < 1 || width < 1 || group_size < 1) return bad("bad batch shape");
  RolloutBatch& b = command.batch;
  b.group_size = group_size;
  const bool behavior = header.value("behavior", false);
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    b.input_ids = torch::empty({rows, width}, torch::kInt64);
    b.response_mask = torch::empty({rows, width}, torch::kFloat32);
    b.rewards = torch::empty({rows}, torch::kFloat64);
    if (behavior) b.behavior_logp = torch::empty({rows, width}, torch::kFloat32);
  }));
  for (at::Tensor* t : BatchTensors(&b, behavior)) SFPO_RETURN_IF_ERROR(c->Broadcast(*t, 0));
  return command;
}

}  // namespace sfpo
