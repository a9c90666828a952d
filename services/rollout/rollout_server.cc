#include "services/rollout/rollout_server.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_server.h"
#include "common/status.h"
#include "sfpo/v1/rollout.grpc.pb.h"

namespace sfpo {
namespace {

class RolloutService final : public v1::RolloutWorker::Service {
 public:
  explicit RolloutService(std::string worker_id) : worker_id_(std::move(worker_id)) {}
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::WorkerStatus* status) override {
    status->set_worker_id(worker_id_);
    status->set_policy_version(-1);
    status->set_state("idle");
    return grpc::Status::OK;
  }

 private:
  std::string worker_id_;
};

class RolloutServerImpl final : public RolloutServer {
 public:
  static absl::StatusOr<std::unique_ptr<RolloutServer>> Create(const RolloutServerOptions& options) {
    auto impl = std::unique_ptr<RolloutServerImpl>(new RolloutServerImpl(options));
    GrpcServerOptions grpc_options;
    grpc_options.listen = options.listen;
    grpc_options.services = {&impl->service_};
    SFPO_ASSIGN_OR_RETURN(impl->server_, GrpcServer::Start(grpc_options));
    return std::unique_ptr<RolloutServer>(std::move(impl));
  }
  int port() const override { return server_->port(); }
  void Shutdown(absl::Duration grace) override { server_->Shutdown(grace); }
  void Wait() override { server_->Wait(); }

 private:
  explicit RolloutServerImpl(const RolloutServerOptions& options) : service_(options.worker_id) {}
  RolloutService service_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RolloutServer>> StartRolloutServer(
    const RolloutServerOptions& options) {
  return RolloutServerImpl::Create(options);
}

}  // namespace sfpo
