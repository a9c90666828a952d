// The sfpo.v1.Learner gRPC service over a LeaseTable and a WeightBoard. Adapter layer: it
// converts messages and delegates; it owns no training state.
#ifndef SFPO_SERVICES_LEARNER_LEARNER_SERVICE_H_
#define SFPO_SERVICES_LEARNER_LEARNER_SERVICE_H_

#include <functional>
#include <memory>
#include <string>

#include "services/learner/lease_table.h"
#include "services/learner/weight_board.h"
#include "sfpo/v1/learner.grpc.pb.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sfpo {

struct LearnerServiceOptions {
  LeaseTable* leases = nullptr;  // not owned
  WeightBoard* board = nullptr;  // not owned
  // True once the run has finished: LeaseWork answers done.
  std::function<bool()> done;
  std::shared_ptr<prometheus::Registry> registry;  // may be null
  int max_groups_per_submit = 1024;
  // Fault injection for tests: may modify a chunk before it is sent.
  std::function<void(int64_t version, uint64_t offset, std::string* data)> chunk_filter;
};

// WatchWeights is served raw (callback API, ByteBuffer): each chunk message is a few header
// bytes plus a slice that references the version's shared payload, so no subscriber copies the
// payload on the learner's side. The bytes on the wire are the ordinary v1::WeightsMessage.
class LearnerService final
    : public v1::Learner::WithRawCallbackMethod_WatchWeights<v1::Learner::Service> {
 public:
  explicit LearnerService(LearnerServiceOptions options);
  ~LearnerService() override;

  grpc::Status LeaseWork(grpc::ServerContext* context, const v1::LeaseWorkRequest* request,
                         v1::LeaseWorkResponse* response) override;
  grpc::Status SubmitGroups(grpc::ServerContext* context, const v1::SubmitGroupsRequest* request,
                            v1::SubmitGroupsResponse* response) override;
  grpc::Status ReleaseLeases(grpc::ServerContext* context, const v1::ReleaseLeasesRequest* request,
                             v1::ReleaseLeasesResponse* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchWeights(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;

 private:
  struct Metrics;
  class WeightStream;
  LearnerServiceOptions options_;
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_LEARNER_SERVICE_H_
