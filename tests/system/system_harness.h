// Test harness for the multi-process system tests: starts `sfpo learner`, `sfpo rollout` and
// `sfpo reward` as separate processes on loopback with a small run config, reads the
// addresses they announce, polls their state with bounded deadlines, and checks the learner's
// step log and sample ledger.
#ifndef SFPO_TESTS_SYSTEM_SYSTEM_HARNESS_H_
#define SFPO_TESTS_SYSTEM_SYSTEM_HARNESS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/cli/subprocess.h"

namespace sfpo {
namespace system_test {

// The small run every system test uses: tiny-char on countdown3, 4 prompts x 4 completions of
// at most 16 tokens per step, synchronous mode, one Torch thread per process.
constexpr int64_t kBatchPrompts = 4;
constexpr int64_t kGroupSize = 4;
constexpr int64_t kSamplesPerStep = kBatchPrompts * kGroupSize;

// A service process and the gRPC port it announced ("... serving gRPC on port N").
struct Service {
  std::unique_ptr<testing::Subprocess> process;
  int port = 0;
  std::string address() const;
};

// One worker's view of itself, from its RolloutWorker.GetStatus.
struct WorkerState {
  int64_t policy_version = -1;
  uint32_t leases_in_flight = 0;
  uint64_t sequences_generated = 0;
  std::string state;
};

// Polls `condition` every 20 ms until it holds or `bound` passes; whether it held. The polling
// interval only bounds latency: nothing is ordered by sleeping.
bool PollUntil(const std::function<bool()>& condition, absl::Duration bound);

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed), for a
// service that must be started later or restarted at the same address.
absl::StatusOr<int> PickFreePort();

class SystemRun {
 public:
  // A fresh run directory under the test's temporary directory.
  static absl::StatusOr<std::unique_ptr<SystemRun>> Create();

  const std::string& run_dir() const { return run_dir_; }

  // The --config/--set arguments shared by every role, then `extra` (more "key=value" sets).
  std::vector<std::string> ConfigArgs(const std::vector<std::string>& extra) const;

  // Starts a role and waits (up to `bound`) until it announces its gRPC port. `listen` is a
  // host:port (port 0 picks one). Errors carry the process's stderr.
  absl::StatusOr<Service> StartLearner(const std::string& listen,
                                       const std::vector<std::string>& sets, absl::Duration bound);
  absl::StatusOr<Service> StartReward(const std::string& listen, absl::Duration bound);
  absl::StatusOr<Service> StartWorker(const std::string& worker_id, const std::string& learner,
                                      const std::string& reward,
                                      const std::vector<std::string>& sets, absl::Duration bound);

  // The step log (steps.jsonl), one object per line; lines that do not parse are returned as
  // JSON strings so that a check on them fails visibly.
  std::vector<nlohmann::json> Steps() const;

 private:
  explicit SystemRun(std::string run_dir) : run_dir_(std::move(run_dir)) {}
  absl::StatusOr<Service> Start(std::vector<std::string> argv, absl::Duration bound);
  std::string run_dir_;
};

// The worker's GetStatus over gRPC (2 s deadline).
absl::StatusOr<WorkerState> GetWorkerState(const std::string& address);

// Checks one step-log line's sample ledger with GoogleTest expectations:
//   every count >= 0;
//   leased == in_flight + buffered + trained + stale + expired + released  (each leased sample
//     is in exactly one place);
//   scored >= trained + buffered;
//   trained == rollouts_total == step * kSamplesPerStep  (nothing trained twice or lost).
void ExpectConsistentLedger(const nlohmann::json& line);

// The ledger count `key` of a step-log line (-1 when absent).
int64_t Samples(const nlohmann::json& line, const std::string& key);

}  // namespace system_test
}  // namespace sfpo

#endif  // SFPO_TESTS_SYSTEM_SYSTEM_HARNESS_H_
