#include "common/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace sfpo {
namespace {

// Bounds how long one slow client can hold the (single) serving thread.
constexpr int kIoTimeoutSeconds = 2;
constexpr size_t kMaxRequestBytes = 8192;

void SetIoTimeouts(int fd, int seconds) {
  timeval tv{};
  tv.tv_sec = seconds;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string HttpResponse(const std::string& status, const std::string& content_type,
                         const std::string& body) {
  return absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                      body);
}

}  // namespace

// Owns the listening socket and the serving thread.
class MetricsExposer::Server {
 public:
  Server(int listen_fd, std::shared_ptr<prometheus::Registry> registry)
      : listen_fd_(listen_fd) {
    registries_.push_back(std::move(registry));
    SFPO_CHECK(pipe2(wake_, O_CLOEXEC) == 0);
    thread_ = std::thread([this] { Loop(); });
  }

  ~Server() {
    const char byte = 0;
    while (write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    close(wake_[0]);
    close(wake_[1]);
    close(listen_fd_);
  }

  void Register(std::shared_ptr<prometheus::Registry> registry) {
    absl::MutexLock lock(&mu_);
    registries_.push_back(std::move(registry));
  }

 private:
  void Loop() {
    while (true) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      SetIoTimeouts(fd, kIoTimeoutSeconds);
      ServeOne(fd);
      close(fd);
    }
  }

  void ServeOne(int fd) {
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    // Request line: METHOD SP PATH SP VERSION.
    const std::string line = request.substr(0, request.find("\r\n"));
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string::npos) {
      SendAll(fd, HttpResponse("400 Bad Request", "text/plain", "bad request\n"));
      return;
    }
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    if (method != "GET") {
      SendAll(fd, HttpResponse("405 Method Not Allowed", "text/plain", "only GET\n"));
    } else if (path != "/metrics") {
      SendAll(fd, HttpResponse("404 Not Found", "text/plain", "metrics are at /metrics\n"));
    } else {
      SendAll(fd, HttpResponse("200 OK", "text/plain; version=0.0.4; charset=utf-8", Render()));
    }
  }

  std::string Render() {
    std::vector<std::shared_ptr<prometheus::Registry>> registries;
    {
      absl::MutexLock lock(&mu_);
      registries = registries_;
    }
    std::vector<prometheus::MetricFamily> families;
    for (const auto& registry : registries) {
      std::vector<prometheus::MetricFamily> some = registry->Collect();
      families.insert(families.end(), std::make_move_iterator(some.begin()),
                      std::make_move_iterator(some.end()));
    }
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, families);
    return out.str();
  }

  const int listen_fd_;
  int wake_[2] = {-1, -1};
  absl::Mutex mu_;
  std::vector<std::shared_ptr<prometheus::Registry>> registries_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& listen, std::shared_ptr<prometheus::Registry> registry) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", listen, "' must be host:port"));
  }
  if (registry == nullptr) {
    return absl::InvalidArgumentError("MetricsExposer::Start needs a registry");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int gai = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                              std::to_string(port).c_str(), &hints, &res);
  if (gai != 0 || res == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": ", gai_strerror(gai)));
  }
  const int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": ", std::strerror(err)));
  }
  freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": ", std::strerror(err)));
  }
  const int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  auto server = std::make_unique<Server>(fd, std::move(registry));
  return std::unique_ptr<MetricsExposer>(
      new MetricsExposer(std::move(server), listen.substr(0, colon), bound_port));
}

MetricsExposer::MetricsExposer(std::unique_ptr<Server> server, std::string host, int port)
    : server_(std::move(server)), host_(std::move(host)), port_(port) {}

MetricsExposer::~MetricsExposer() = default;

std::string MetricsExposer::url() const {
  return absl::StrCat("http://", host_, ":", port_, "/metrics");
}

void MetricsExposer::Register(std::shared_ptr<prometheus::Registry> registry) {
  server_->Register(std::move(registry));
}

absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path) {
  const std::string where = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", where));
  }
  int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", where));
  }
  freeaddrinfo(res);
  SetIoTimeouts(fd, 5);
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", where, "\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != (ssize_t)request.size()) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot send to ", where));
  }
  std::string response;
  char buf[8192];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) {
    return absl::DataLossError(absl::StrCat("malformed HTTP response from ", where));
  }
  const size_t sp = response.find(' ');
  if (response.compare(sp + 1, 3, "200") != 0) {
    return absl::UnavailableError(
        absl::StrCat("GET ", where, path, ": ", response.substr(0, response.find("\r\n"))));
  }
  return response.substr(body + 4);
}

}  // namespace sfpo
