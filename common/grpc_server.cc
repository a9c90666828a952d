#include "common/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace sfpo {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options) {
  // gRPC refuses to start a server with nothing to poll, and reports it only as a failed bind.
  if (options.services.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gRPC server on ", options.listen, " has no services to serve"));
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options.max_send_message_bytes);
  // A reused port would let two servers share it silently; refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : options.services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, ": address in use or invalid"));
  }
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  return std::unique_ptr<GrpcServer>(
      new GrpcServer(std::move(server), port, absl::StrCat(host, ":", port)));
}

GrpcServer::GrpcServer(std::unique_ptr<grpc::Server> server, int port, std::string address)
    : server_(std::move(server)), port_(port), address_(std::move(address)) {
  server_->GetHealthCheckService()->SetServingStatus(true);
}

GrpcServer::~GrpcServer() {
  Shutdown(absl::ZeroDuration());
  Wait();
}

void GrpcServer::Shutdown(absl::Duration grace) {
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
}

void GrpcServer::Wait() { server_->Wait(); }

}  // namespace sfpo
