#include "services/learner/distributed/shard_checkpoint.h"

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/torch_util.h"

namespace sfpo {

std::string ShardFileName(int rank, int world_size) {
  return absl::StrCat("optimizer_shard_", rank, "_of_", world_size, ".pt");
}

absl::Status WriteShardFile(const ShardState& state, const std::string& path) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  absl::Status st = TorchCall([&] {
    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor(state.adam_step, torch::kInt64));
    archive.write("exp_avg", state.exp_avg);
    archive.write("exp_avg_sq", state.exp_avg_sq);
    archive.save_to(tmp);
  });
  if (!st.ok()) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", st.message()));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<ShardState> ReadShardFile(const std::string& path) {
  ShardState s;
  bool complete = false;
  absl::Status st = TorchCall([&] {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor step;
    complete = archive.try_read("step", step) && archive.try_read("exp_avg", s.exp_avg) &&
               archive.try_read("exp_avg_sq", s.exp_avg_sq);
    if (complete) s.adam_step = step.item<int64_t>();
  });
  if (!st.ok()) return absl::DataLossError(absl::StrCat(path, ": ", st.message()));
  if (!complete) return absl::DataLossError(absl::StrCat(path, ": missing step or AdamW moments"));
  return s;
}

absl::Status AgreeOnStatus(Collectives* c, const absl::Status& local, const std::string& what) {
  at::Tensor mine, all;
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    mine = torch::tensor({local.ok() ? int64_t{0} : int64_t{1}}, torch::kInt64);
    all = torch::zeros({c->world_size()}, torch::kInt64);
  }));
  SFPO_RETURN_IF_ERROR(c->AllGather(mine, all));
  if (!local.ok()) return local;
  std::vector<std::string> failed;
  for (int r = 0; r < c->world_size(); ++r) {
    if (all[r].item<int64_t>() != 0) failed.push_back(absl::StrCat("rank ", r));
  }
  if (failed.empty()) return absl::OkStatus();
  return absl::AbortedError(
      absl::StrCat(what, " failed on ", absl::StrJoin(failed, ", "), " (see that rank's log)"));
}

}  // namespace sfpo
