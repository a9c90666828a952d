// Test helper: asks a gRPC server for its standard grpc.health.v1 status, the way an
// orchestrator's probe would. For integration tests of every service.
#ifndef SFPO_TESTS_COMMON_HEALTH_CHECK_H_
#define SFPO_TESTS_COMMON_HEALTH_CHECK_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sfpo {
namespace testing {

// Mirrors grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class HealthStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

const char* HealthStatusName(HealthStatus status);

// Calls grpc.health.v1.Health/Check on `address` ("host:port") for `service` ("" = the whole
// server). Returns the status the server reports, or the RPC's error (UNAVAILABLE when nothing
// listens, DEADLINE_EXCEEDED after `timeout`, NOT_FOUND for an unknown service).
absl::StatusOr<HealthStatus> CheckHealth(const std::string& address,
                                         const std::string& service = "",
                                         absl::Duration timeout = absl::Seconds(5));

}  // namespace testing
}  // namespace sfpo

#endif  // SFPO_TESTS_COMMON_HEALTH_CHECK_H_
