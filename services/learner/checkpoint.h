// Checkpoint directories: `root`/step_<8 digits>/ holding payload files (model.safetensors,
// optimizer state, ...) and trainer_state.json, which lists every payload file with its size
// and xxHash64 so a truncated or altered file is detected before anything is loaded. A
// checkpoint is written into a temporary directory and renamed into place, so a reader never
// sees a partial one; only the newest `keep_last` are kept. No Torch: the trainer supplies the
// payload writer and the state JSON. Functions are thread-compatible (one writer per root).
#ifndef SFPO_SERVICES_LEARNER_CHECKPOINT_H_
#define SFPO_SERVICES_LEARNER_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sfpo {

inline constexpr char kTrainerStateFile[] = "trainer_state.json";

struct CheckpointWriteOptions {
  std::string root;        // created if missing
  int64_t step = 0;        // names the directory
  int64_t keep_last = 3;   // <= 0 keeps all
};

// Writes a checkpoint: `write_payload(dir)` writes its files into the temporary directory
// `dir`; then `state_json` (a JSON object) is written as trainer_state.json with a "files"
// manifest added, and the directory is renamed to `root`/step_XXXXXXXX (replacing an existing
// checkpoint of the same step). Returns the final path. Errors: INVALID_ARGUMENT for a state
// that is not a JSON object, the payload's own error, INTERNAL for file-system failures
// (naming the path).
absl::StatusOr<std::string> WriteCheckpoint(
    const CheckpointWriteOptions& options, const std::string& state_json,
    const std::function<absl::Status(const std::string& dir)>& write_payload);

// Validates checkpoint directory `dir` and returns its trainer_state.json text (including the
// manifest). NOT_FOUND when there is no trainer_state.json; DATA_LOSS naming the file when a
// listed file is missing, truncated (size differs) or its hash differs, or the state JSON is
// malformed.
absl::StatusOr<std::string> ReadCheckpointState(const std::string& dir);

// Checkpoint directories under `root`, oldest step first (whether valid or not).
std::vector<std::string> ListCheckpoints(const std::string& root);

// The newest checkpoint under `root` that validates (invalid newer ones are skipped with a
// warning naming the problem). NOT_FOUND when there is none.
absl::StatusOr<std::string> FindLatestCheckpoint(const std::string& root);

// The step encoded in a checkpoint directory's name, or -1.
int64_t CheckpointStep(const std::string& dir);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_CHECKPOINT_H_
