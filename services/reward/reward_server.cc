#include "services/reward/reward_server.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_server.h"
#include "common/status.h"
#include "sfpo/v1/reward.grpc.pb.h"

namespace sfpo {
namespace {

class RewardService final : public v1::RewardVerifier::Service {
 public:
  grpc::Status Score(grpc::ServerContext*, const v1::ScoreRequest*,
                     v1::ScoreResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "Score is not built yet");
  }
};

class RewardServerImpl final : public RewardServer {
 public:
  static absl::StatusOr<std::unique_ptr<RewardServer>> Create(const RewardServerOptions& options) {
    auto impl = std::unique_ptr<RewardServerImpl>(new RewardServerImpl());
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
  RewardService service_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RewardServer>> StartRewardServer(
    const RewardServerOptions& options) {
  return RewardServerImpl::Create(options);
}

}  // namespace sfpo
