#include "services/learner/learner_service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/learner/learner_convert.h"

namespace sfpo {
namespace {

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
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30})),
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

grpc::Status LearnerService::WatchWeights(grpc::ServerContext* context,
                                          const v1::WatchWeightsRequest* request,
                                          grpc::ServerWriter<v1::WeightsMessage>* writer) {
  if (metrics_) metrics_->subscribers.Increment();
  struct Leave {
    Metrics* m;
    ~Leave() {
      if (m) m->subscribers.Decrement();
    }
  } leave{metrics_.get()};
  int64_t have = request->have_version();
  while (!context->IsCancelled()) {
    std::shared_ptr<const PackedWeights> w = options_.board->WaitNewer(have, absl::Seconds(1));
    if (w == nullptr) {
      if (options_.board->closed()) return grpc::Status::OK;
      continue;
    }
    const absl::Time start = absl::Now();
    v1::WeightsMessage message;
    ManifestToProto(w->manifest, message.mutable_manifest());
    if (!writer->Write(message)) return grpc::Status(grpc::StatusCode::CANCELLED, "peer gone");
    const std::string& payload = *w->payload;
    for (uint64_t off = 0; off < payload.size(); off += w->manifest.chunk_bytes) {
      v1::WeightsMessage chunk_message;
      v1::WeightChunk* chunk = chunk_message.mutable_chunk();
      chunk->set_version(w->manifest.version);
      chunk->set_offset(off);
      chunk->mutable_data()->assign(payload, off, w->manifest.chunk_bytes);
      if (options_.chunk_filter) {
        options_.chunk_filter(w->manifest.version, off, chunk->mutable_data());
      }
      if (!writer->Write(chunk_message)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "peer gone");
      }
    }
    have = w->manifest.version;
    if (metrics_) {
      metrics_->publish_bytes.Increment(static_cast<double>(payload.size()));
      metrics_->sync_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
    }
  }
  return grpc::Status::OK;
}

}  // namespace sfpo
