// The Prometheus side of a process: one registry, owned by the CLI layer and passed to every
// service, and an HTTP exposer that serves it as text at /metrics.
//
// The exposer is a small HTTP/1.0 server of our own rather than prometheus-cpp's civetweb
// Exposer: civetweb starts its threads with a fixed 100 KiB stack, and glibc refuses
// (EINVAL) to create such a thread once the process's static TLS exceeds it, which LibTorch
// with OpenBLAS does (~108 KiB). Scrapes are rare and small, so one thread serving one
// connection at a time is enough.
#ifndef SFPO_COMMON_METRICS_H_
#define SFPO_COMMON_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace sfpo {

// Serves registries over HTTP: GET /metrics answers 200 with the Prometheus text format; other
// paths 404. Thread-safe; stops serving (and joins its thread) when destroyed.
class MetricsExposer {
 public:
  // Binds `listen` ("127.0.0.1:0" picks a free port) and serves `registry` at /metrics.
  // UNAVAILABLE naming the address when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsExposer();

  int port() const { return port_; }
  // "http://host:port/metrics".
  std::string url() const;
  // Serves another registry on the same port (e.g. one per service in local mode).
  void Register(std::shared_ptr<prometheus::Registry> registry);

 private:
  class Server;
  MetricsExposer(std::unique_ptr<Server> server, std::string host, int port);
  std::unique_ptr<Server> server_;
  std::string host_;
  int port_;
};

// Fetches http://host:port/path with a plain HTTP/1.0 GET (tests and `sfpo doctor`).
// Returns the body, or an error naming the address.
absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path);

}  // namespace sfpo

#endif  // SFPO_COMMON_METRICS_H_
