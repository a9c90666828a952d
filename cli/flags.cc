#include "cli/flags.h"

#include <atomic>
#include <csignal>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "cli/commands.h"

namespace sfpo {

void AddBenchModelFlags(CLI::App* cmd, BenchModelFlags* flags) {
  cmd->add_option("--layers", flags->layers, "Decoder layers")->capture_default_str();
  cmd->add_option("--hidden", flags->hidden, "Hidden size")->capture_default_str();
  cmd->add_option("--heads", flags->heads, "Attention heads")->capture_default_str();
  cmd->add_option("--kv-heads", flags->kv_heads, "Key/value heads")->capture_default_str();
  cmd->add_option("--intermediate", flags->intermediate, "MLP intermediate size")
      ->capture_default_str();
  cmd->add_option("--vocab", flags->vocab, "Vocabulary size")->capture_default_str();
}

absl::StatusOr<ModelArch> BenchModelArch(const BenchModelFlags& flags, int64_t max_positions,
                                         const std::string& what) {
  ModelArch arch;
  arch.num_hidden_layers = flags.layers;
  arch.hidden_size = flags.hidden;
  arch.num_attention_heads = flags.heads;
  arch.num_key_value_heads = flags.kv_heads;
  arch.intermediate_size = flags.intermediate;
  arch.vocab_size = flags.vocab;
  arch.max_position_embeddings = max_positions;
  arch.tie_word_embeddings = true;
  absl::Status valid = ValidateModelArch(arch, what);
  if (!valid.ok()) return valid;
  return arch;
}
namespace {
std::atomic<bool> g_shutdown{false};
extern "C" void OnShutdownSignal(int) { g_shutdown.store(true); }
}  // namespace

CLI::App* BenchCommand(CLI::App* root) {
  for (CLI::App* sub : root->get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == "bench") return sub;
  }
  CLI::App* bench = root->add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  return bench;
}

void AddConfigFlags(CLI::App* app, ConfigFlags* flags) {
  app->add_option("--config", flags->config_file, "YAML run config (defaults when omitted)");
  app->add_option("--set", flags->sets, "Override one config key: section.key=value (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  app->add_flag("--check", flags->check,
                "Validate the flags and the config, print the resolved config, and exit");
}

absl::StatusOr<Config> LoadConfigFromFlags(const ConfigFlags& flags, bool quiet) {
  absl::StatusOr<Config> config = LoadConfig(flags.config_file, flags.sets);
  if (config.ok() && !quiet) {
    std::cerr << "# sfpo resolved config\n" << ConfigToYaml(*config) << std::flush;
  }
  return config;
}

int FailWith(const absl::Status& status) {
  std::cerr << "sfpo: " << status.message() << std::endl;
  return 1;
}

void InstallShutdownSignals() {
  struct sigaction action {};
  action.sa_handler = OnShutdownSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool ShutdownRequested() { return g_shutdown.load(); }

bool WaitForShutdown(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!g_shutdown.load()) {
    if (done && done()) return false;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

}  // namespace sfpo
