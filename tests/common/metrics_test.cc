#include "common/metrics.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace sfpo {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// A registry with one counter, sfpo_test_events_total{service="unit"} = 3.
std::shared_ptr<prometheus::Registry> RegistryWithCounter() {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter()
                     .Name("sfpo_test_events_total")
                     .Help("Events seen by the test")
                     .Register(*registry);
  family.Add({{"service", "unit"}}).Increment(3);
  return registry;
}

// A TCP socket listening on a free loopback port, closed on destruction.
class ListeningSocket {
 public:
  ListeningSocket() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    SFPO_CHECK(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    SFPO_CHECK(listen(fd_, 1) == 0);
    socklen_t len = sizeof(addr);
    SFPO_CHECK(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~ListeningSocket() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(MetricsExposerTest, ServesARegisteredCounterOnPortZero) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto exposer,
                            MetricsExposer::Start("127.0.0.1:0", RegistryWithCounter()));
  ASSERT_GT(exposer->port(), 0);
  EXPECT_EQ(exposer->url(), absl::StrCat("http://127.0.0.1:", exposer->port(), "/metrics"));
  SFPO_ASSERT_OK_AND_ASSIGN(std::string body, HttpGet("127.0.0.1", exposer->port(), "/metrics"));
  EXPECT_THAT(body, AllOf(HasSubstr("# TYPE sfpo_test_events_total counter\n"),
                          HasSubstr("sfpo_test_events_total{service=\"unit\"} 3")));
}

TEST(MetricsExposerTest, ServesTheCurrentValueOnEveryScrape) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& gauge = prometheus::BuildGauge().Name("sfpo_test_depth").Register(*registry).Add({});
  SFPO_ASSERT_OK_AND_ASSIGN(auto exposer, MetricsExposer::Start("127.0.0.1:0", registry));
  gauge.Set(5);
  SFPO_ASSERT_OK_AND_ASSIGN(std::string first, HttpGet("127.0.0.1", exposer->port(), "/metrics"));
  gauge.Set(9);
  SFPO_ASSERT_OK_AND_ASSIGN(std::string second, HttpGet("127.0.0.1", exposer->port(), "/metrics"));
  EXPECT_THAT(first, HasSubstr("sfpo_test_depth 5"));
  EXPECT_THAT(second, HasSubstr("sfpo_test_depth 9"));
}

TEST(MetricsExposerTest, ServesEveryRegisteredRegistry) {
  auto second = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge().Name("sfpo_test_other").Register(*second).Add({}).Set(2);
  SFPO_ASSERT_OK_AND_ASSIGN(auto exposer,
                            MetricsExposer::Start("127.0.0.1:0", RegistryWithCounter()));
  exposer->Register(second);
  SFPO_ASSERT_OK_AND_ASSIGN(std::string body, HttpGet("127.0.0.1", exposer->port(), "/metrics"));
  EXPECT_THAT(body, AllOf(HasSubstr("sfpo_test_events_total"), HasSubstr("sfpo_test_other 2")));
}

TEST(MetricsExposerTest, EmptyRegistryServesAnEmptyPage) {
  SFPO_ASSERT_OK_AND_ASSIGN(
      auto exposer,
      MetricsExposer::Start("127.0.0.1:0", std::make_shared<prometheus::Registry>()));
  SFPO_ASSERT_OK_AND_ASSIGN(std::string body, HttpGet("127.0.0.1", exposer->port(), "/metrics"));
  EXPECT_EQ(body, "");
}

TEST(MetricsExposerTest, OtherPathsAreNotFound) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto exposer,
                            MetricsExposer::Start("127.0.0.1:0", RegistryWithCounter()));
  EXPECT_THAT(HttpGet("127.0.0.1", exposer->port(), "/"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("404")));
  SFPO_ASSERT_OK_AND_ASSIGN(std::string body,
                            HttpGet("127.0.0.1", exposer->port(), "/metrics?x=1"));
  EXPECT_THAT(body, HasSubstr("sfpo_test_events_total"));
}

TEST(MetricsExposerTest, PortInUseFailsWithUnavailableNamingTheAddress) {
  ListeningSocket occupied;
  const std::string address = absl::StrCat("127.0.0.1:", occupied.port());
  EXPECT_THAT(MetricsExposer::Start(address, RegistryWithCounter()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(address)));
}

TEST(MetricsExposerTest, SecondExposerOnTheSamePortFails) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto first,
                            MetricsExposer::Start("127.0.0.1:0", RegistryWithCounter()));
  const std::string address = absl::StrCat("127.0.0.1:", first->port());
  EXPECT_THAT(MetricsExposer::Start(address, RegistryWithCounter()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(address)));
}

TEST(MetricsExposerTest, MalformedAddressIsInvalidArgument) {
  for (const std::string& bad : {"127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ""}) {
    EXPECT_THAT(MetricsExposer::Start(bad, RegistryWithCounter()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host:port")))
        << bad;
  }
}

TEST(MetricsExposerTest, StopsServingWhenDestroyed) {
  int port = 0;
  {
    SFPO_ASSERT_OK_AND_ASSIGN(auto exposer,
                              MetricsExposer::Start("127.0.0.1:0", RegistryWithCounter()));
    port = exposer->port();
    SFPO_ASSERT_OK(HttpGet("127.0.0.1", port, "/metrics"));
  }
  EXPECT_THAT(HttpGet("127.0.0.1", port, "/metrics"),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("127.0.0.1:", port))));
}

TEST(MetricsExposerTest, DestroyingAnIdleExposerDoesNotHang) {
  // The serving thread blocks in poll(); destruction must wake it.
  for (int i = 0; i < 20; ++i) {
    SFPO_ASSERT_OK_AND_ASSIGN(
        auto exposer,
        MetricsExposer::Start("127.0.0.1:0", std::make_shared<prometheus::Registry>()));
  }
}

TEST(HttpGetTest, NothingListeningIsUnavailableNamingTheAddress) {
  int port = 0;
  { port = ListeningSocket().port(); }  // Free again once the socket is closed.
  EXPECT_THAT(HttpGet("127.0.0.1", port, "/metrics"),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("127.0.0.1"), HasSubstr(std::to_string(port)))));
}

}  // namespace
}  // namespace sfpo
