#include "services/rollout/rollout_server.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_server.h"
#include "common/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/rollout/clients.h"
#include "sfpo/v1/rollout.grpc.pb.h"

namespace sfpo {
namespace {

// The worker's Prometheus families.
struct RolloutMetrics {
  // No `worker` label: the scrape configuration sets it per target (deploy/prometheus).
  explicit RolloutMetrics(prometheus::Registry& r)
      : tokens(prometheus::BuildCounter()
                   .Name("sfpo_rollout_tokens_total")
                   .Help("Response tokens generated")
                   .Register(r)
                   .Add({})),
        sequences(prometheus::BuildCounter()
                      .Name("sfpo_rollout_sequences_total")
                      .Help("Completions generated")
                      .Register(r)
                      .Add({})),
        generate_seconds(
            prometheus::BuildHistogram()
                .Name("sfpo_rollout_generate_seconds")
                .Help("Seconds per generation batch")
                .Register(r)
                .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2,
                                                                 5, 10, 30, 60})),
        version(prometheus::BuildGauge()
                    .Name("sfpo_rollout_policy_version")
                    .Help("Policy version the worker generates with (-1 before it has one)")
                    .Register(r)
                    .Add({}, -1.0)),
        apply_seconds(
            prometheus::BuildHistogram()
                .Name("sfpo_rollout_weight_apply_seconds")
                .Help("Seconds to swap in a policy version")
                .Register(r)
                .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.001, 0.01, 0.1, 1, 10})),
        weight_failures(prometheus::BuildCounter()
                            .Name("sfpo_rollout_weight_failures_total")
                            .Help("Policy versions refused (corrupt or malformed)")
                            .Register(r)
                            .Add({})),
        wait_weights(prometheus::BuildCounter()
                         .Name("sfpo_rollout_wait_weights_seconds_total")
                         .Help("Seconds without work, waiting for the next policy version")
                         .Register(r)
                         .Add({})),
        in_flight(prometheus::BuildGauge()
                      .Name("sfpo_rollout_leases_in_flight")
                      .Help("Leases held and not yet submitted")
                      .Register(r)
                      .Add({})),
        leases(prometheus::BuildCounter()
                   .Name("sfpo_rollout_leases_total")
                   .Help("Leases (prompts) taken from the learner")
                   .Register(r)
                   .Add({})) {}
  prometheus::Counter& tokens;
  prometheus::Counter& sequences;
  prometheus::Histogram& generate_seconds;
  prometheus::Gauge& version;
  prometheus::Histogram& apply_seconds;
  prometheus::Counter& weight_failures;
  prometheus::Counter& wait_weights;
  prometheus::Gauge& in_flight;
  prometheus::Counter& leases;
};

class RolloutService final : public v1::RolloutWorker::Service {
 public:
  RolloutService(std::string worker_id, RolloutWorker* worker)
      : worker_id_(std::move(worker_id)), worker_(worker) {}
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::WorkerStatus* status) override {
    const WorkerStatusSnapshot s = worker_->snapshot();
    status->set_worker_id(worker_id_);
    status->set_policy_version(s.policy_version);
    status->set_leases_in_flight(s.leases_in_flight);
    status->set_sequences_generated(s.sequences_generated);
    status->set_tokens_generated(s.tokens_generated);
    status->set_draining(s.draining);
    status->set_state(s.state);
    return grpc::Status::OK;
  }
  grpc::Status Drain(grpc::ServerContext*, const v1::DrainRequest*,
                     v1::DrainResponse* response) override {
    worker_->Drain();
    response->set_leases_released(static_cast<uint32_t>(worker_->snapshot().leases_released));
    return grpc::Status::OK;
  }

 private:
  std::string worker_id_;
  RolloutWorker* worker_;
};

class RolloutServerImpl final : public RolloutServer {
 public:
  static absl::StatusOr<std::unique_ptr<RolloutServer>> Create(const RolloutServerOptions& o) {
    if (!o.make_generator) return absl::InvalidArgumentError("rollout: no model configured");
    auto impl = std::unique_ptr<RolloutServerImpl>(new RolloutServerImpl());
    SFPO_ASSIGN_OR_RETURN(std::unique_ptr<Generator> generator, o.make_generator());
    if (o.registry) impl->metrics_ = std::make_unique<RolloutMetrics>(*o.registry);
    RolloutMetrics* m = impl->metrics_.get();
    WorkerOptions wo;
    wo.worker_id = o.worker_id;
    wo.max_leases = o.max_leases;
    wo.backoff_max = o.backoff_max;
    wo.seed = std::hash<std::string>()(o.worker_id);
    if (m) {
      wo.on_generated = [m](absl::Duration d, int64_t seqs, int64_t toks) {
        m->generate_seconds.Observe(absl::ToDoubleSeconds(d));
        m->sequences.Increment(static_cast<double>(seqs));
        m->tokens.Increment(static_cast<double>(toks));
      };
      wo.on_weights_applied = [m](int64_t v, absl::Duration d) {
        m->version.Set(static_cast<double>(v));
        m->apply_seconds.Observe(absl::ToDoubleSeconds(d));
      };
      wo.on_weights_failed = [m] { m->weight_failures.Increment(); };
      wo.on_wait_weights = [m](absl::Duration d) {
        m->wait_weights.Increment(absl::ToDoubleSeconds(d));
      };
      wo.on_leases = [m](uint32_t in_flight, uint32_t newly_leased) {
        m->in_flight.Set(static_cast<double>(in_flight));
        m->leases.Increment(static_cast<double>(newly_leased));
      };
    }
    LearnerClientOptions lo;
    lo.target = o.learner_address;
    lo.worker_id = o.worker_id;
    RewardClientOptions ro;
    ro.target = o.reward_address;
    ro.format_reward = o.format_reward;
    ro.item_deadline = o.item_deadline;
    impl->worker_ = std::make_unique<RolloutWorker>(wo, MakeGrpcLearnerClient(lo),
                                                    MakeGrpcRewardClient(ro), std::move(generator));
    impl->service_ = std::make_unique<RolloutService>(o.worker_id, impl->worker_.get());
    GrpcServerOptions go;
    go.listen = o.listen;
    go.services = {impl->service_.get()};
    SFPO_ASSIGN_OR_RETURN(impl->server_, GrpcServer::Start(go));
    impl->worker_->Start();
    return std::unique_ptr<RolloutServer>(std::move(impl));
  }

  ~RolloutServerImpl() override {
    Shutdown(absl::ZeroDuration());
    Wait();
  }
  int port() const override { return server_->port(); }
  void Shutdown(absl::Duration grace) override {
    worker_->Stop();
    if (server_) server_->Shutdown(grace);  // null when the bind failed
  }
  void Wait() override {
    if (server_) server_->Wait();
  }
  void Drain() override { worker_->Drain(); }
  bool stopped() const override { return worker_->stopped(); }
  absl::Status status() const override { return worker_->status(); }
  WorkerStatusSnapshot snapshot() const override { return worker_->snapshot(); }

 private:
  RolloutServerImpl() = default;

  std::unique_ptr<RolloutMetrics> metrics_;
  std::unique_ptr<RolloutWorker> worker_;
  std::unique_ptr<RolloutService> service_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RolloutServer>> StartRolloutServer(
    const RolloutServerOptions& options) {
  return RolloutServerImpl::Create(options);
}

}  // namespace sfpo
