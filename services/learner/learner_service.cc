#include "services/learner/learner_service.h"

#include <grpcpp/grpcpp.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/learner/learner_convert.h"
#include "services/learner/weights_wire.h"

namespace sfpo {
namespace {

// A stream refused at the start: finishes with its status and frees itself.
class RejectedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  void OnDone() override { delete this; }
};

}  // namespace

struct LearnerService::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : publish_bytes(prometheus::BuildCounter()
                          .Name("sfpo_weight_publish_bytes_total")
                          .Help("Bytes of policy weights streamed to workers")
                          .Register(r)
                          .Add({})),
        sync_seconds(prometheus::BuildHistogram()
                         .Name("sfpo_weight_sync_seconds")
                         .Help("Seconds to stream one policy version to one worker")
                         .Register(r)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05,
                                                                          0.1, 0.5, 1, 5, 10, 30})),
        subscribers(prometheus::BuildGauge()
                        .Name("sfpo_weight_subscribers")
                        .Help("Open WatchWeights streams")
                        .Register(r)
                        .Add({})) {}
  prometheus::Counter& publish_bytes;
  prometheus::Histogram& sync_seconds;
  prometheus::Gauge& subscribers;
};

LearnerService::LearnerService(LearnerServiceOptions options) : options_(std::move(options)) {
  if (options_.registry) metrics_ = std::make_unique<Metrics>(*options_.registry);
}

LearnerService::~LearnerService() = default;

grpc::Status LearnerService::LeaseWork(grpc::ServerContext*, const v1::LeaseWorkRequest* request,
                                       v1::LeaseWorkResponse* response) {
  if (request->worker_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id is required");
  }
  response->set_current_version(options_.leases->version());
  if (options_.done && options_.done()) {
    response->set_done(true);
    return grpc::Status::OK;
  }
  const int max_leases = std::max(1, std::min<int>(request->max_leases(), 1024));
  for (const Lease& lease :
       options_.leases->LeaseWork(request->worker_id(), max_leases, absl::Now())) {
    LeaseToProto(lease, response->add_leases());
  }
  if (response->leases_size() == 0) response->set_retry_after_ms(50);
  return grpc::Status::OK;
}

grpc::Status LearnerService::SubmitGroups(grpc::ServerContext*,
                                          const v1::SubmitGroupsRequest* request,
                                          v1::SubmitGroupsResponse* response) {
  if (request->worker_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id is required");
  }
  if (request->groups_size() > options_.max_groups_per_submit) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat(request->groups_size(), " groups in one request; at most ",
                                     options_.max_groups_per_submit));
  }
  for (const v1::ScoredGroup& pg : request->groups()) {
    v1::GroupResult* result = response->add_results();
    result->set_lease_id(pg.lease_id());
    absl::StatusOr<ScoredGroup> group = ScoredGroupFromProto(pg);
    absl::Status status = group.status();
    if (group.ok()) status = options_.leases->Submit(request->worker_id(), *group, absl::Now());
    result->set_accepted(status.ok());
    if (!status.ok()) {
      result->set_reason(std::string(status.message()));
      SFPO_LOG(DEBUG) << "rejected group from " << request->worker_id() << ": " << status;
    }
  }
  return grpc::Status::OK;
}

grpc::Status LearnerService::ReleaseLeases(grpc::ServerContext*,
                                           const v1::ReleaseLeasesRequest* request,
                                           v1::ReleaseLeasesResponse* response) {
  std::vector<uint64_t> ids(request->lease_ids().begin(), request->lease_ids().end());
  response->set_released(options_.leases->Release(request->worker_id(), ids));
  return grpc::Status::OK;
}

// One WatchWeights stream: a thread waits for new versions on the board and writes each as a
// manifest then chunks, one write in flight at a time (gRPC's flow control paces it).
class LearnerService::WeightStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WeightStream(LearnerService* service, int64_t have_version)
      : service_(service), have_(have_version) {
    if (service_->metrics_) service_->metrics_->subscribers.Increment();
    thread_ = std::thread([this] { Run(); });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_ok_ = ok;
    writing_ = false;
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    if (service_->metrics_) service_->metrics_->subscribers.Decrement();
    if (std::this_thread::get_id() == thread_.get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
    delete this;
  }

 private:
  bool cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

  // Writes one message and waits for it to complete; false once the peer is gone.
  bool Send(const grpc::ByteBuffer& message) {
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return false;
      writing_ = true;
    }
    buffer_ = message;
    StartWrite(&buffer_);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* writing) { return !*writing; }, &writing_));
    return write_ok_;
  }

  void Run() {
    const LearnerServiceOptions& options = service_->options_;
    while (!cancelled()) {
      std::shared_ptr<const PackedWeights> w = options.board->WaitNewer(have_, absl::Seconds(1));
      if (w == nullptr) {
        if (options.board->closed()) break;
        continue;
      }
      const absl::Time start = absl::Now();
      if (!Send(EncodeWeightManifest(w->manifest))) return Finish(Gone());
      const std::string& payload = *w->payload;
      const uint64_t chunk_bytes = w->manifest.chunk_bytes;
      for (uint64_t off = 0; off < payload.size(); off += chunk_bytes) {
        absl::string_view data = absl::string_view(payload).substr(off, chunk_bytes);
        grpc::ByteBuffer message;
        if (options.chunk_filter) {
          std::string copy(data);
          options.chunk_filter(w->manifest.version, off, &copy);
          message = EncodeWeightChunk(w->manifest.version, off, copy, nullptr);
        } else {
          message = EncodeWeightChunk(w->manifest.version, off, data, w->payload);
        }
        if (!Send(message)) return Finish(Gone());
      }
      have_ = w->manifest.version;
      if (service_->metrics_) {
        service_->metrics_->publish_bytes.Increment(static_cast<double>(payload.size()));
        service_->metrics_->sync_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
      }
    }
    Finish(cancelled() ? Gone() : grpc::Status::OK);
  }

  static grpc::Status Gone() { return grpc::Status(grpc::StatusCode::CANCELLED, "peer gone"); }

  LearnerService* const service_;
  int64_t have_;
  grpc::ByteBuffer buffer_;  // the message being written
  std::thread thread_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = true;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerWriteReactor<grpc::ByteBuffer>* LearnerService::WatchWeights(
    grpc::CallbackServerContext* /*context*/, const grpc::ByteBuffer* request) {
  v1::WatchWeightsRequest parsed;
  grpc::ByteBuffer copy(*request);
  grpc::Status status =
      grpc::SerializationTraits<v1::WatchWeightsRequest>::Deserialize(&copy, &parsed);
  if (!status.ok()) {
    auto* reactor = new RejectedStream();
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "WatchWeights: malformed WatchWeightsRequest"));
    return reactor;
  }
  return new WeightStream(this, parsed.have_version());
}

}  // namespace sfpo
