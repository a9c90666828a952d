// `sfpo local`: the learner, N rollout workers and M verifiers in one process, on loopback,
// with the real gRPC services between them.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/factory.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "services/learner/learner_server.h"
#include "services/reward/reward_server.h"
#include "services/rollout/rollout_server.h"

namespace sfpo {
namespace {

struct LocalFlags {
  ConfigFlags config;
  std::string endpoints_file;
  double run_for_s = 0;
  double linger_s = 0;
};

struct Endpoint {
  std::string role;
  std::string grpc;
  std::string metrics;
};

// Writes the endpoints file atomically (temporary file, then rename).
absl::Status WriteEndpoints(const std::string& path, const std::vector<Endpoint>& endpoints) {
  nlohmann::json services = nlohmann::json::array();
  for (const Endpoint& e : endpoints) {
    services.push_back({{"role", e.role}, {"grpc", e.grpc}, {"metrics", e.metrics}});
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"services", services}}.dump(2) << "\n";
    if (!out.good()) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

// Everything `sfpo local` runs; destroyed in reverse order of start.
struct LocalSystem {
  std::vector<std::unique_ptr<MetricsExposer>> exposers;
  std::vector<std::unique_ptr<RewardServer>> rewards;
  LocalLearnerRanks followers;
  std::unique_ptr<LearnerServer> learner;
  std::vector<std::unique_ptr<RolloutServer>> workers;
  std::vector<Endpoint> endpoints;

  // Returns the learner's outcome (its loop's status, then its follower ranks').
  absl::Status Shutdown() {
    for (auto& w : workers) w->Shutdown(absl::Seconds(2));
    for (auto& w : workers) w->Wait();
    absl::Status end;
    if (learner) {
      learner->Shutdown(absl::Seconds(2));
      learner->Wait();
      end = learner->WaitDone();
      if (absl::IsCancelled(end)) end = absl::OkStatus();
    }
    if (followers.started()) {
      learner.reset();  // rank 0's updater stops the other ranks
      absl::Status ranks = followers.Stop();
      if (end.ok()) end = ranks;
    }
    for (auto& r : rewards) r->Shutdown(absl::Seconds(2));
    for (auto& r : rewards) r->Wait();
    return end;
  }
};

// Each service gets its own registry and metrics port, so roles stay apart.
absl::StatusOr<std::shared_ptr<prometheus::Registry>> NewMetrics(LocalSystem* sys,
                                                                 std::string* url) {
  auto registry = std::make_shared<prometheus::Registry>();
  SFPO_ASSIGN_OR_RETURN(auto exposer, MetricsExposer::Start("127.0.0.1:0", registry));
  *url = exposer->url();
  sys->exposers.push_back(std::move(exposer));
  return registry;
}

absl::Status StartAll(const Config& config, LocalSystem* sys) {
  std::string reward_target = "ipv4:";
  for (int64_t i = 0; i < config.reward.replicas; ++i) {
    Endpoint e{"reward", "", ""};
    RewardServerOptions options = BuildRewardOptions(config);
    SFPO_ASSIGN_OR_RETURN(options.registry, NewMetrics(sys, &e.metrics));
    SFPO_ASSIGN_OR_RETURN(auto server, StartRewardServer(options));
    e.grpc = absl::StrCat("127.0.0.1:", server->port());
    absl::StrAppend(&reward_target, i ? "," : "", e.grpc);
    sys->rewards.push_back(std::move(server));
    sys->endpoints.push_back(e);
  }
  std::string learner_address;
  {
    Endpoint e{"learner", "", ""};
    GlooOptions rank0;
    if (config.learner.ranks > 1) SFPO_RETURN_IF_ERROR(sys->followers.Start(config, &rank0));
    SFPO_ASSIGN_OR_RETURN(
        LearnerServerOptions options,
        BuildLearnerOptions(config, config.learner.ranks > 1 ? &rank0 : nullptr));
    SFPO_ASSIGN_OR_RETURN(options.registry, NewMetrics(sys, &e.metrics));
    SFPO_ASSIGN_OR_RETURN(sys->learner, StartLearnerServer(options));
    e.grpc = absl::StrCat("127.0.0.1:", sys->learner->port());
    learner_address = e.grpc;
    sys->endpoints.push_back(e);
  }
  for (int64_t i = 0; i < config.rollout.workers; ++i) {
    Endpoint e{"rollout", "", ""};
    SFPO_ASSIGN_OR_RETURN(RolloutServerOptions options, BuildRolloutOptions(config));
    SFPO_ASSIGN_OR_RETURN(options.registry, NewMetrics(sys, &e.metrics));
    options.learner_address = learner_address;
    options.reward_address = reward_target;
    options.worker_id = absl::StrCat("local-worker-", i);
    SFPO_ASSIGN_OR_RETURN(auto server, StartRolloutServer(options));
    e.grpc = absl::StrCat("127.0.0.1:", server->port());
    sys->workers.push_back(std::move(server));
    sys->endpoints.push_back(e);
  }
  return absl::OkStatus();
}

int RunLocal(const LocalFlags& flags) {
  auto config = LoadConfigFromFlags(flags.config);
  if (!config.ok()) return FailWith(config.status());
  if (flags.config.check) return 0;
  ConfigureThreads(*config);
  InstallShutdownSignals();
  LocalSystem sys;
  absl::Status started = StartAll(*config, &sys);
  if (started.ok() && !flags.endpoints_file.empty()) {
    started = WriteEndpoints(flags.endpoints_file, sys.endpoints);
  }
  if (!started.ok()) {
    sys.Shutdown().IgnoreError();
    return FailWith(started);
  }
  for (const Endpoint& e : sys.endpoints) {
    SFPO_LOG(INFO) << e.role << " grpc=" << e.grpc << " metrics=" << e.metrics;
  }
  LearnerServer* learner = sys.learner.get();
  const bool signalled =
      WaitForShutdown([learner] { return learner->done(); },
                      flags.run_for_s > 0 ? absl::Seconds(flags.run_for_s)
                                          : absl::InfiniteDuration());
  SFPO_LOG(INFO) << "local: shutting down";
  // Let workers hear "done" (or drain) before the learner goes away.
  for (auto& w : sys.workers) w->Drain();
  for (int i = 0; i < 100; ++i) {
    bool all = true;
    for (auto& w : sys.workers) all = all && w->stopped();
    if (all) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (!signalled && flags.linger_s > 0 && learner->done()) {
    // The workers have stopped, so every exposition is final: keep serving it for a last scrape.
    SFPO_LOG(INFO) << "local: run finished; lingering " << flags.linger_s
                   << " s for a last scrape (a signal ends it sooner)";
    WaitForShutdown(nullptr, absl::Seconds(flags.linger_s));
  }
  absl::Status end = sys.Shutdown();
  return end.ok() ? 0 : FailWith(end);
}

}  // namespace

void AddLocalCommand(CLI::App* root, CommandTable* table) {
  auto flags = std::make_shared<LocalFlags>();
  CLI::App* local = root->add_subcommand(
      "local", "Run learner, rollout workers and verifiers in one process on loopback");
  AddConfigFlags(local, &flags->config);
  local->add_option("--endpoints-file", flags->endpoints_file,
                    "Write {\"services\": [{role, grpc, metrics}]} here once all serve");
  local->add_option("--run-for", flags->run_for_s,
                    "Stop after this many seconds (0: until the run ends or a signal)");
  local->add_option("--linger", flags->linger_s,
                    "After the run ends, keep serving /metrics this many seconds (or until a "
                    "signal) for a last scrape")
      ->check(CLI::NonNegativeNumber);
  table->emplace_back(local, [flags] { return RunLocal(*flags); });
}

}  // namespace sfpo
