// The Prometheus side of a process: one registry, owned by the CLI layer and passed to every
// service, and an HTTP exposer that serves it as text at /metrics.
#ifndef SFPO_COMMON_METRICS_H_
#define SFPO_COMMON_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace sfpo {

// Serves registries over HTTP. Thread-safe; stops serving when destroyed.
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
  MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, std::string host, int port);
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string host_;
  int port_;
};

// Fetches http://host:port/path with a plain HTTP/1.0 GET (tests and `sfpo doctor`).
// Returns the body, or an error naming the address.
absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path);

}  // namespace sfpo

#endif  // SFPO_COMMON_METRICS_H_
