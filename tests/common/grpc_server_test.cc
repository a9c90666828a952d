#include "common/grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "grpc_health_v1.grpc.pb.h"
#include "sfpo/v1/reward.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/common/health_check.h"

namespace sfpo {
namespace {

using ::sfpo::testing::CheckHealth;
using ::sfpo::testing::HealthStatus;
using ::testing::HasSubstr;

// Every server needs one service; an unimplemented one of ours stands in for the real ones.
v1::RewardVerifier::Service* TestService() {
  static auto* service = new v1::RewardVerifier::Service();
  return service;
}

absl::StatusOr<std::unique_ptr<GrpcServer>> StartOnLoopback() {
  GrpcServerOptions options;
  options.listen = "127.0.0.1:0";
  options.services = {TestService()};
  return GrpcServer::Start(options);
}

TEST(GrpcServerTest, BindsPortZeroAndReportsTheChosenPort) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
  EXPECT_GT(server->port(), 0);
  EXPECT_EQ(server->address(), absl::StrCat("127.0.0.1:", server->port()));
}

TEST(GrpcServerTest, TwoServersOnPortZeroGetDifferentPorts) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto a, StartOnLoopback());
  SFPO_ASSERT_OK_AND_ASSIGN(auto b, StartOnLoopback());
  EXPECT_NE(a->port(), b->port());
}

TEST(GrpcServerTest, AnswersTheStandardHealthCheckWithServing) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
  SFPO_ASSERT_OK_AND_ASSIGN(HealthStatus status, CheckHealth(server->address()));
  EXPECT_EQ(status, HealthStatus::kServing) << HealthStatusName(status);
}

TEST(GrpcServerTest, ServerWithoutServicesIsInvalidArgument) {
  GrpcServerOptions options;
  options.listen = "127.0.0.1:0";
  EXPECT_THAT(GrpcServer::Start(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no services")));
}

TEST(GrpcServerTest, RegisteredServicesAreReachable) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::RewardVerifier::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ScoreRequest request;
  v1::ScoreResponse response;
  // The stand-in implements nothing, so the call reaches it and comes back UNIMPLEMENTED.
  EXPECT_EQ(stub->Score(&context, request, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST(GrpcServerTest, HealthCheckOfAnUnknownServiceIsNotFound) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
  EXPECT_THAT(CheckHealth(server->address(), "no.such.Service"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(GrpcServerTest, SecondServerOnTheSamePortFailsWithUnavailableNamingTheAddress) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto first, StartOnLoopback());
  GrpcServerOptions options;
  options.listen = first->address();
  options.services = {TestService()};
  EXPECT_THAT(GrpcServer::Start(options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(first->address())));
  // The first one is unaffected.
  SFPO_ASSERT_OK_AND_ASSIGN(HealthStatus status, CheckHealth(first->address()));
  EXPECT_EQ(status, HealthStatus::kServing);
}

TEST(GrpcServerTest, InvalidAddressFailsWithUnavailableNamingIt) {
  GrpcServerOptions options;
  options.listen = "no-such-host.invalid:0";
  options.services = {TestService()};
  EXPECT_THAT(GrpcServer::Start(options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no-such-host.invalid:0")));
}

TEST(GrpcServerTest, ShutdownStopsServing) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
  const std::string address = server->address();
  SFPO_ASSERT_OK(CheckHealth(address));
  server->Shutdown(absl::Seconds(1));
  server->Wait();
  EXPECT_THAT(CheckHealth(address, "", absl::Seconds(2)),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  server->Shutdown(absl::Seconds(1));  // Idempotent.
}

TEST(GrpcServerTest, ShutdownTellsHealthWatchersNotServing) {
  SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::health::v1::HealthCheckRequest request;
  auto reader = stub->Watch(&context, request);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Shutdown waits (up to the grace period) for the open Watch call, so run it aside.
  absl::Notification shut_down;
  std::thread stopper([&] {
    server->Shutdown(absl::Seconds(10));
    shut_down.Notify();
  });
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  context.TryCancel();  // Ends the call, which lets Shutdown finish before its grace period.
  while (reader->Read(&response)) {
  }
  (void)reader->Finish();
  stopper.join();
  EXPECT_TRUE(shut_down.HasBeenNotified());
  server->Wait();
}

TEST(GrpcServerTest, DestructorShutsDownARunningServer) {
  std::string address;
  {
    SFPO_ASSERT_OK_AND_ASSIGN(auto server, StartOnLoopback());
    address = server->address();
  }
  EXPECT_THAT(CheckHealth(address, "", absl::Seconds(2)),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

}  // namespace
}  // namespace sfpo
