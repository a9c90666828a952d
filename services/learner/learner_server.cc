#include "services/learner/learner_server.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_server.h"
#include "common/status.h"
#include "sfpo/v1/learner.grpc.pb.h"

namespace sfpo {
namespace {

class LearnerService final : public v1::Learner::Service {};

class LearnerServerImpl final : public LearnerServer {
 public:
  static absl::StatusOr<std::unique_ptr<LearnerServer>> Create(const LearnerServerOptions& options) {
    auto impl = std::unique_ptr<LearnerServerImpl>(new LearnerServerImpl());
    GrpcServerOptions grpc_options;
    grpc_options.listen = options.listen;
    grpc_options.max_receive_message_bytes = options.max_receive_message_bytes;
    grpc_options.services = {&impl->service_};
    SFPO_ASSIGN_OR_RETURN(impl->server_, GrpcServer::Start(grpc_options));
    return std::unique_ptr<LearnerServer>(std::move(impl));
  }
  int port() const override { return server_->port(); }
  void Shutdown(absl::Duration grace) override { server_->Shutdown(grace); }
  void Wait() override { server_->Wait(); }

 private:
  LearnerService service_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LearnerServer>> StartLearnerServer(
    const LearnerServerOptions& options) {
  return LearnerServerImpl::Create(options);
}

}  // namespace sfpo
