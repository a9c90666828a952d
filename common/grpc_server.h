// Starts a gRPC server on an address (port 0 picks a free port), registers the standard
// grpc.health.v1 service alongside the given services, and shuts down gracefully.
// The gRPC adapter layer uses this; core libraries never include gRPC.
#ifndef SFPO_COMMON_GRPC_SERVER_H_
#define SFPO_COMMON_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace sfpo {

struct GrpcServerOptions {
  // host:port to bind; "127.0.0.1:0" or "[::]:0" picks a free port.
  std::string listen = "127.0.0.1:0";
  // Services to register; not owned, must outlive the server.
  std::vector<grpc::Service*> services;
  // Largest inbound message in bytes; larger ones fail with RESOURCE_EXHAUSTED.
  int max_receive_message_bytes = 64 << 20;
  int max_send_message_bytes = 64 << 20;
};

// A running server. Thread-safe.
class GrpcServer {
 public:
  // Binds and starts. UNAVAILABLE naming the address when it cannot be bound (in use, invalid);
  // INVALID_ARGUMENT when `options.services` is empty.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options);
  ~GrpcServer();

  int port() const { return port_; }
  // "host:port" with the bound port.
  const std::string& address() const { return address_; }
  // Marks the health status of every service NOT_SERVING, then stops accepting calls and waits
  // up to `grace` for those in flight before cancelling them. Idempotent.
  void Shutdown(absl::Duration grace);
  // Blocks until the server has shut down.
  void Wait();

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port, std::string address);
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::string address_;
};

}  // namespace sfpo

#endif  // SFPO_COMMON_GRPC_SERVER_H_
