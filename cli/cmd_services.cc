// `sfpo learner`, `sfpo rollout`, `sfpo reward`: one service per process (for containers).
#include <unistd.h>

#include <iostream>
#include <memory>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/factory.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "prometheus/registry.h"
#include "services/learner/learner_server.h"
#include "services/reward/reward_server.h"
#include "services/rollout/rollout_server.h"

namespace sfpo {
namespace {

struct ServiceFlags {
  ConfigFlags config;
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9090";
  std::string learner = "127.0.0.1:50051";
  std::string reward = "127.0.0.1:50052";
  std::string worker_id;
};

std::string HostName() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == 0) return "worker";
  return name;
}

// How each role ends on its own: the learner after total_steps, a worker when drained or told
// the run is done; the verifier only on a signal.
bool Finished(LearnerServer* s) { return s->done(); }
bool Finished(RolloutServer* s) { return s->stopped(); }
bool Finished(RewardServer*) { return false; }
// The learner keeps answering for a moment after the last step so workers hear "done".
void Drain(LearnerServer* s) {
  if (s->done()) absl::SleepFor(absl::Seconds(1));
}
void Drain(RewardServer*) {}
// SIGTERM drains a worker: it finishes or releases its leases (bounded by the lease deadline).
void Drain(RolloutServer* s) {
  s->Drain();
  for (int i = 0; i < 600 && !s->stopped(); ++i) absl::SleepFor(absl::Milliseconds(100));
}
absl::Status EndStatus(LearnerServer* s) { return s->WaitDone(); }
absl::Status EndStatus(RolloutServer* s) { return s->status(); }
absl::Status EndStatus(RewardServer*) { return absl::OkStatus(); }

// Starts metrics, then the server from `start`, and serves until a signal (or `done`).
template <typename Server, typename StartFn>
int Serve(const std::string& role, const ServiceFlags& flags, StartFn start) {
  InstallShutdownSignals();
  auto registry = std::make_shared<prometheus::Registry>();
  auto exposer = MetricsExposer::Start(flags.metrics_listen, registry);
  if (!exposer.ok()) return FailWith(exposer.status());
  absl::StatusOr<std::unique_ptr<Server>> server = start(registry);
  if (!server.ok()) return FailWith(server.status());
  SFPO_LOG(INFO) << role << " serving gRPC on port " << (*server)->port() << ", metrics at "
                 << (*exposer)->url();
  Server* s = server->get();
  WaitForShutdown([s] { return Finished(s); }, absl::InfiniteDuration());
  SFPO_LOG(INFO) << role << " shutting down";
  Drain(s);
  (*server)->Shutdown(absl::Seconds(5));
  (*server)->Wait();
  absl::Status end = EndStatus(s);
  return end.ok() ? 0 : FailWith(end);
}

}  // namespace

void AddServiceCommands(CLI::App* root, CommandTable* table) {
  auto lf = std::make_shared<ServiceFlags>();
  CLI::App* learner = root->add_subcommand("learner", "Run the learner service");
  AddConfigFlags(learner, &lf->config);
  learner->add_option("--listen", lf->listen, "gRPC address to bind")->capture_default_str();
  learner->add_option("--metrics-listen", lf->metrics_listen, "Prometheus /metrics address")
      ->capture_default_str();
  table->emplace_back(learner, [lf]() -> int {
    auto config = LoadConfigFromFlags(lf->config);
    if (!config.ok()) return FailWith(config.status());
    auto options = BuildLearnerOptions(*config);
    if (!options.ok()) return FailWith(options.status());
    if (lf->config.check) return 0;
    ConfigureThreads(*config);
    return Serve<LearnerServer>("learner", *lf, [&](auto registry) {
      options->listen = lf->listen;
      options->registry = registry;
      return StartLearnerServer(*options);
    });
  });

  auto rf = std::make_shared<ServiceFlags>();
  rf->listen = "0.0.0.0:50053";
  rf->metrics_listen = "0.0.0.0:9091";
  CLI::App* rollout = root->add_subcommand("rollout", "Run a rollout worker");
  AddConfigFlags(rollout, &rf->config);
  rollout->add_option("--learner", rf->learner, "Learner gRPC target")->capture_default_str();
  rollout->add_option("--reward", rf->reward,
                      "Verifier gRPC target (dns:///host:port balances over replicas)")
      ->capture_default_str();
  rollout->add_option("--listen", rf->listen, "gRPC address for status/drain")
      ->capture_default_str();
  rollout->add_option("--metrics-listen", rf->metrics_listen, "Prometheus /metrics address")
      ->capture_default_str();
  rollout->add_option("--worker-id", rf->worker_id, "Stable worker id (default: hostname)");
  table->emplace_back(rollout, [rf]() -> int {
    auto config = LoadConfigFromFlags(rf->config);
    if (!config.ok()) return FailWith(config.status());
    auto options = BuildRolloutOptions(*config);
    if (!options.ok()) return FailWith(options.status());
    if (rf->config.check) return 0;
    ConfigureThreads(*config);
    return Serve<RolloutServer>("rollout", *rf, [&](auto registry) {
      options->listen = rf->listen;
      options->registry = registry;
      options->learner_address = rf->learner;
      options->reward_address = rf->reward;
      options->worker_id = rf->worker_id.empty() ? HostName() : rf->worker_id;
      return StartRolloutServer(*options);
    });
  });

  auto vf = std::make_shared<ServiceFlags>();
  vf->listen = "0.0.0.0:50052";
  vf->metrics_listen = "0.0.0.0:9092";
  CLI::App* reward = root->add_subcommand("reward", "Run a reward verifier");
  AddConfigFlags(reward, &vf->config);
  reward->add_option("--listen", vf->listen, "gRPC address to bind")->capture_default_str();
  reward->add_option("--metrics-listen", vf->metrics_listen, "Prometheus /metrics address")
      ->capture_default_str();
  table->emplace_back(reward, [vf]() -> int {
    auto config = LoadConfigFromFlags(vf->config);
    if (!config.ok()) return FailWith(config.status());
    if (vf->config.check) return 0;
    return Serve<RewardServer>("reward", *vf, [&](auto registry) {
      RewardServerOptions options = BuildRewardOptions(*config);
      options.listen = vf->listen;
      options.registry = registry;
      return StartRewardServer(options);
    });
  });
}

}  // namespace sfpo
