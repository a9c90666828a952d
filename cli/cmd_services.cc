// `sfpo learner`, `sfpo rollout`, `sfpo reward`: one service per process (for containers).
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  // Data-parallel learner ranks.
  int rank = 0;
  int world_size = 0;  // 0: learner.ranks
  std::string rendezvous;  // HOST:PORT of rank 0's rendezvous store
  double collective_timeout_s = 300;
};

// The Gloo options of a learner rank from the flags; nullopt for a single rank.
absl::StatusOr<std::optional<GlooOptions>> RankOptions(const ServiceFlags& f, Config* config) {
  const int world = f.world_size > 0 ? f.world_size : static_cast<int>(config->learner.ranks);
  if (f.world_size > 0 && config->learner.ranks != 1 && config->learner.ranks != f.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("--world-size ", f.world_size,
                                                   " but learner.ranks = ", config->learner.ranks));
  }
  if (world <= 1 || (f.rendezvous.empty() && f.rank == 0 && f.world_size == 0)) {
    // One rank, or learner.ranks ranks in this process (LocalLearnerRanks).
    if (f.rank != 0) return absl::InvalidArgumentError("--rank > 0 needs --world-size > 1");
    return std::nullopt;
  }
  config->learner.ranks = world;
  if (f.rank < 0 || f.rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("--rank ", f.rank, " is not in [0, ", world, ")"));
  }
  const size_t colon = f.rendezvous.rfind(':');
  int port = 0;
  if (f.rendezvous.empty() || colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(f.rendezvous.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--rendezvous must be HOST:PORT (rank 0's rendezvous store) for ", world,
        " learner ranks, got '", f.rendezvous, "'"));
  }
  GlooOptions g;
  g.rank = f.rank;
  g.world_size = world;
  g.store_host = f.rendezvous.substr(0, colon);
  g.store_port = port;
  g.host_store = f.rank == 0;
  if (g.store_host == "127.0.0.1" || g.store_host == "localhost") g.device_host = "127.0.0.1";
  g.timeout = absl::Seconds(f.collective_timeout_s);
  return g;
}

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
  learner->add_option("--rank", lf->rank,
                      "This process's data-parallel rank (0 serves gRPC; the others compute)")
      ->capture_default_str();
  learner->add_option("--world-size", lf->world_size,
                      "Data-parallel learner ranks (default: learner.ranks)");
  learner->add_option("--rendezvous", lf->rendezvous,
                      "HOST:PORT of the rendezvous store, hosted by rank 0 (ranks > 1)");
  learner->add_option("--collective-timeout", lf->collective_timeout_s,
                      "Seconds any collective (and joining the ranks) may take")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  table->emplace_back(learner, [lf]() -> int {
    auto config = LoadConfigFromFlags(lf->config);
    if (!config.ok()) return FailWith(config.status());
    absl::StatusOr<std::optional<GlooOptions>> gloo = RankOptions(*lf, &*config);
    if (!gloo.ok()) return FailWith(gloo.status());
    if (gloo->has_value() && (*gloo)->rank > 0) {
      if (lf->config.check) return 0;
      ConfigureThreads(*config);
      SFPO_LOG(INFO) << "learner rank " << (*gloo)->rank << " of " << (*gloo)->world_size
                     << " joining " << lf->rendezvous;
      absl::Status end = RunLearnerFollower(*config, **gloo);
      return end.ok() ? 0 : FailWith(end);
    }
    // learner.ranks > 1 without --rendezvous: every rank in this process, on loopback.
    LocalLearnerRanks local_ranks;
    GlooOptions rank0;
    const GlooOptions* ranks = gloo->has_value() ? &**gloo : nullptr;
    if (ranks == nullptr && config->learner.ranks > 1) {
      if (!lf->config.check) {
        absl::Status started = local_ranks.Start(*config, &rank0);
        if (!started.ok()) return FailWith(started);
      } else {
        rank0.world_size = static_cast<int>(config->learner.ranks);
      }
      ranks = &rank0;
    }
    auto options = BuildLearnerOptions(*config, ranks);
    if (!options.ok()) return FailWith(options.status());
    if (lf->config.check) return 0;
    ConfigureThreads(*config);
    const int code = Serve<LearnerServer>("learner", *lf, [&](auto registry) {
      options->listen = lf->listen;
      options->registry = registry;
      return StartLearnerServer(*options);
    });
    if (!local_ranks.started()) return code;
    absl::Status followers = local_ranks.Stop();  // rank 0 (in Serve) has stopped them
    return code != 0 ? code : (followers.ok() ? 0 : FailWith(followers));
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
