#include "services/reward/reward_server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "common/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/reward/reward_convert.h"
#include "sfpo/v1/reward.grpc.pb.h"

namespace sfpo {
namespace {

// Metric families, created once; all pointers null when no registry was given.
class RewardMetrics {
 public:
  explicit RewardMetrics(prometheus::Registry* registry) {
    if (registry == nullptr) return;
    auto& verdicts = prometheus::BuildCounter()
                         .Name("sfpo_reward_verdicts_total")
                         .Help("Verdicts given, by kind")
                         .Register(*registry);
    for (Verdict v : {Verdict::kCorrect, Verdict::kIncorrect, Verdict::kUnparseable,
                      Verdict::kError}) {
      verdicts_[static_cast<int>(v)] = &verdicts.Add({{"verdict", std::string(VerdictName(v))}});
    }
    errors_ = &prometheus::BuildCounter()
                   .Name("sfpo_reward_errors_total")
                   .Help("Error verdicts, by reason (a bound, the deadline, bad input)")
                   .Register(*registry);
    // Reasons come from the verifier and are open-ended; the two that do not depend on its
    // messages exist from the start, so the family (and a rate over it) is there before the
    // first error.
    for (const char* reason : {"deadline", "internal"}) errors_->Add({{"reason", reason}});
    items_ = &prometheus::BuildCounter()
                  .Name("sfpo_reward_items_total")
                  .Help("Items scored")
                  .Register(*registry)
                  .Add({});
    seconds_ = &prometheus::BuildHistogram()
                    .Name("sfpo_reward_request_seconds")
                    .Help("Wall time of one Score call")
                    .Register(*registry)
                    .Add({}, prometheus::Histogram::BucketBoundaries{
                                 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                 0.5, 1, 2.5, 5, 10});
  }

  void Record(const VerifyResult& r) {
    if (items_ == nullptr) return;
    items_->Increment();
    verdicts_[static_cast<int>(r.verdict)]->Increment();
    if (r.verdict == Verdict::kError) errors_->Add({{"reason", r.error_label}}).Increment();
  }
  void Observe(double seconds) {
    if (seconds_ != nullptr) seconds_->Observe(seconds);
  }

 private:
  prometheus::Counter* verdicts_[4] = {nullptr, nullptr, nullptr, nullptr};
  prometheus::Family<prometheus::Counter>* errors_ = nullptr;
  prometheus::Counter* items_ = nullptr;
  prometheus::Histogram* seconds_ = nullptr;
};

class RewardService final : public v1::RewardVerifier::Service {
 public:
  explicit RewardService(const RewardServerOptions& options)
      : options_(options), metrics_(options.registry.get()) {}

  grpc::Status Score(grpc::ServerContext* context, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override {
    absl::Time start = absl::Now();
    absl::StatusOr<ScoreBatch> batch = BatchFromProto(*request, options_.max_batch_items);
    if (!batch.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string(batch.status().message()));
    }
    absl::Duration per_item = batch->item_deadline > absl::ZeroDuration()
                                  ? batch->item_deadline
                                  : options_.default_item_deadline;
    // The call's own deadline bounds every item too.
    absl::Time call_deadline = absl::InfiniteFuture();
    auto raw = context->deadline();
    if (raw < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
      call_deadline = absl::FromChrono(raw);
    }
    VerifierOptions verifier = options_.verifier;
    verifier.format_reward = batch->format_reward;
    response->mutable_results()->Reserve(static_cast<int>(batch->items.size()));
    for (const ScoreItemData& item : batch->items) {
      VerifyResult result;
      if (context->IsCancelled()) {
        result.verdict = Verdict::kError;
        result.reason = "the call was cancelled before this item was scored";
        result.error_label = "deadline";
        result.verifier_version = std::string(kVerifierVersion);
      } else {
        absl::Time deadline = std::min(absl::Now() + per_item, call_deadline);
        result = sfpo::Score({item.task, item.prompt, item.completion, item.gold}, verifier,
                             deadline);
      }
      metrics_.Record(result);
      ResultToProto(result, response->add_results());
    }
    metrics_.Observe(absl::ToDoubleSeconds(absl::Now() - start));
    return grpc::Status::OK;
  }

 private:
  RewardServerOptions options_;
  RewardMetrics metrics_;
};

class RewardServerImpl final : public RewardServer {
 public:
  static absl::StatusOr<std::unique_ptr<RewardServer>> Create(const RewardServerOptions& options) {
    SFPO_RETURN_IF_ERROR(ValidateVerifierOptions(options.verifier));
    if (options.max_batch_items <= 0) {
      return absl::InvalidArgumentError("max_batch_items must be positive");
    }
    if (options.default_item_deadline <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("default_item_deadline must be positive");
    }
    auto impl = std::unique_ptr<RewardServerImpl>(new RewardServerImpl(options));
    GrpcServerOptions grpc_options;
    grpc_options.listen = options.listen;
    grpc_options.services = {&impl->service_};
    SFPO_ASSIGN_OR_RETURN(impl->server_, GrpcServer::Start(grpc_options));
    return std::unique_ptr<RewardServer>(std::move(impl));
  }
  int port() const override { return server_->port(); }
  void Shutdown(absl::Duration grace) override { server_->Shutdown(grace); }
  void Wait() override { server_->Wait(); }

 private:
  explicit RewardServerImpl(const RewardServerOptions& options) : service_(options) {}
  RewardService service_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RewardServer>> StartRewardServer(
    const RewardServerOptions& options) {
  return RewardServerImpl::Create(options);
}

}  // namespace sfpo
