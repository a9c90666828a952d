// Flags every subcommand shares (--config, --set, --check) and the signal-driven shutdown.
// CLI layer only.
#ifndef SFPO_CLI_FLAGS_H_
#define SFPO_CLI_FLAGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/model_arch.h"

namespace CLI {
class App;
}  // namespace CLI

namespace sfpo {

// The shape of a benchmark's synthetic model (--layers, --hidden, --heads, --kv-heads,
// --intermediate, --vocab); each benchmark sets its own defaults.
struct BenchModelFlags {
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, intermediate = 0, vocab = 0;
};

// Adds the BenchModelFlags options to `cmd`, showing their defaults.
void AddBenchModelFlags(CLI::App* cmd, BenchModelFlags* flags);

// A tied-embedding Qwen2 architecture of that shape with `max_positions` positions;
// INVALID_ARGUMENT naming `what` and the field when the shape is invalid.
absl::StatusOr<ModelArch> BenchModelArch(const BenchModelFlags& flags, int64_t max_positions,
                                         const std::string& what);

struct ConfigFlags {
  std::string config_file;
  std::vector<std::string> sets;
  // Validate flags and config, print the resolved config, exit 0 without starting anything.
  bool check = false;
};

// Adds --config, --set (repeatable) and --check to `app`.
void AddConfigFlags(CLI::App* app, ConfigFlags* flags);

// Loads the config named by the flags and prints it (as YAML, to stderr, prefixed by a header)
// unless `quiet`.
absl::StatusOr<Config> LoadConfigFromFlags(const ConfigFlags& flags, bool quiet = false);

// A subcommand's body: returns the process exit status.
using CommandBody = std::function<int()>;

// Prints "sfpo: <message>" on one line to stderr and returns 1.
int FailWith(const absl::Status& status);

// Installs SIGINT/SIGTERM handlers that only set an atomic flag.
void InstallShutdownSignals();
// True once SIGINT or SIGTERM arrived.
bool ShutdownRequested();
// Blocks until a shutdown signal arrives, `done()` returns true, or `timeout` passes (checked
// every 50 ms). Returns true if a signal arrived.
bool WaitForShutdown(const std::function<bool()>& done, absl::Duration timeout);

}  // namespace sfpo

#endif  // SFPO_CLI_FLAGS_H_
