// `sfpo local` end to end: every service starts on loopback, the endpoints file lists them once
// they serve, ordinary clients (python3-grpcio, urllib) reach them, and SIGTERM stops it all.
#include <signal.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/subprocess.h"

namespace sfpo {
namespace {

using ::sfpo::testing::ProcessResult;
using ::sfpo::testing::SfpoBinary;
using ::sfpo::testing::Subprocess;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Bounds, not expectations: on a quiet machine each step takes well under a second.
constexpr absl::Duration kStartBound = absl::Seconds(60);
constexpr absl::Duration kExitBound = absl::Seconds(20);
constexpr char kPython[] = "/usr/bin/python3";  // Debian's, which has python3-grpcio.

// Polls for `path` until it exists, the process exits, or `bound` passes.
bool WaitForFile(const std::string& path, Subprocess* process, absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  while (absl::Now() < deadline) {
    if (access(path.c_str(), F_OK) == 0) return true;
    if (!process->Running()) return access(path.c_str(), F_OK) == 0;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// True when `body` is the Prometheus text exposition format: comment and sample lines only.
// Returns the metric names of the samples in `names`.
bool IsPrometheusText(const std::string& body, std::set<std::string>* names) {
  static const std::regex kComment(R"(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (NaN|Nan|[-+]?Inf|[-+0-9.eE]+)( -?[0-9]+)?)");
  for (const absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    const std::string s(line);
    std::smatch m;
    if (std::regex_match(s, m, kSample)) {
      names->insert(m[1]);
    } else if (!std::regex_match(s, kComment)) {
      return false;
    }
  }
  return true;
}

class SfpoLocalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(SfpoBinary().empty())
        << "SFPO_BINARY is not set: run through ctest (sfpo_test sets it) or export it";
    const char* source_dir = std::getenv("SFPO_SOURCE_DIR");
    ASSERT_NE(source_dir, nullptr) << "SFPO_SOURCE_DIR is not set";
    probe_script_ = absl::StrCat(source_dir, "/tests/cli/probe_endpoints.py");
    ASSERT_EQ(access(probe_script_.c_str(), R_OK), 0) << probe_script_;
    ASSERT_EQ(access(kPython, X_OK), 0) << kPython << " is needed (python3-grpcio)";
    dir_ = testing::MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    endpoints_file_ = dir_ + "/endpoints.json";
  }

  // Starts `sfpo local` writing the endpoints file, with `extra` flags.
  std::unique_ptr<Subprocess> StartLocal(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {SfpoBinary(), "local", "--endpoints-file", endpoints_file_,
                                     "--set", absl::StrCat("run.output_dir=", dir_, "/run")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(argv);
    EXPECT_TRUE(process.ok()) << process.status();
    return process.ok() ? std::move(*process) : nullptr;
  }

  std::string probe_script_;
  std::string dir_;
  std::string endpoints_file_;
};

TEST_F(SfpoLocalTest, ServesEveryEndpointToOrdinaryClientsAndStopsOnSigterm) {
  // Two workers, so the file must list 1 learner + 2 rollout + 1 reward.
  std::unique_ptr<Subprocess> local = StartLocal({"--set", "rollout.workers=2", "--run-for", "120"});
  ASSERT_NE(local, nullptr);
  ASSERT_TRUE(WaitForFile(endpoints_file_, local.get(), kStartBound))
      << "no endpoints file; stderr:\n" << local->Stderr();
  ASSERT_TRUE(local->Running()) << local->Stderr();

  // The file's schema: {"services": [{"role", "grpc", "metrics"}, ...]}.
  const nlohmann::json file =
      nlohmann::json::parse(testing::ReadFile(endpoints_file_), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(file.is_object()) << testing::ReadFile(endpoints_file_);
  ASSERT_TRUE(file.contains("services") && file["services"].is_array());
  std::map<std::string, int> roles;
  std::set<std::string> addresses;
  const std::regex grpc_address(R"(127\.0\.0\.1:[1-9][0-9]*)");
  const std::regex metrics_url(R"(http://127\.0\.0\.1:([1-9][0-9]*)/metrics)");
  for (const nlohmann::json& s : file["services"]) {
    ASSERT_TRUE(s.is_object() && s.size() == 3) << s.dump();
    ASSERT_TRUE(s["role"].is_string() && s["grpc"].is_string() && s["metrics"].is_string());
    ++roles[s["role"].get<std::string>()];
    const std::string grpc = s["grpc"], metrics = s["metrics"];
    EXPECT_TRUE(std::regex_match(grpc, grpc_address)) << grpc;
    std::smatch m;
    EXPECT_TRUE(std::regex_match(metrics, m, metrics_url)) << metrics;
    addresses.insert(grpc);
    addresses.insert(absl::StrCat("127.0.0.1:", m.size() > 1 ? m[1].str() : ""));
  }
  EXPECT_EQ(roles, (std::map<std::string, int>{{"learner", 1}, {"reward", 1}, {"rollout", 2}}));
  EXPECT_EQ(addresses.size(), 2 * file["services"].size()) << "every port is distinct";

  // Ordinary clients: python3-grpcio for the health check, urllib for the metrics.
  absl::StatusOr<ProcessResult> probe =
      testing::RunProcess({kPython, probe_script_, endpoints_file_}, absl::Seconds(60));
  ASSERT_TRUE(probe.ok()) << probe.status();
  ASSERT_EQ(probe->exit_code, 0) << probe->err;
  const nlohmann::json seen = nlohmann::json::parse(probe->out, nullptr, false);
  ASSERT_TRUE(seen.is_array()) << probe->out;
  ASSERT_EQ(seen.size(), file["services"].size());
  for (const nlohmann::json& s : seen) {
    SCOPED_TRACE(s.dump());
    // HealthCheckResponse{status: SERVING} is field 1, varint 1: bytes 08 01.
    EXPECT_EQ(s.value("health_response_hex", "none"), "0801") << s.value("health_error", "");
    EXPECT_EQ(s.value("http_status", 0), 200) << s.value("http_error", "");
    EXPECT_THAT(s.value("content_type", ""), StartsWith("text/plain"));
    std::set<std::string> names;
    EXPECT_TRUE(IsPrometheusText(s.value("body", ""), &names)) << s.value("body", "");
    // Everything we export is sfpo_-prefixed.
    for (const std::string& name : names) EXPECT_THAT(name, StartsWith("sfpo_"));
    // The learner exports its metrics from the start. (The rollout workers and verifiers do
    // not export any yet; add them here when they do.)
    if (s.value("role", "") == "learner") {
      EXPECT_TRUE(names.count("sfpo_policy_version") == 1) << s.value("body", "");
    }
  }

  // SIGTERM: a clean shutdown, exit 0, well within the bound.
  ASSERT_TRUE(local->Signal(SIGTERM));
  absl::StatusOr<ProcessResult> exited = local->Wait(kExitBound);
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_EQ(exited->exit_code, 0) << exited->err;
  EXPECT_EQ(exited->term_signal, 0);
}

TEST_F(SfpoLocalTest, SigintAlsoShutsDownCleanly) {
  std::unique_ptr<Subprocess> local = StartLocal({"--run-for", "120"});
  ASSERT_NE(local, nullptr);
  ASSERT_TRUE(WaitForFile(endpoints_file_, local.get(), kStartBound)) << local->Stderr();
  ASSERT_TRUE(local->Signal(SIGINT));
  absl::StatusOr<ProcessResult> exited = local->Wait(kExitBound);
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_EQ(exited->exit_code, 0) << exited->err;
}

TEST_F(SfpoLocalTest, RunForStopsByItselfWithExitZero) {
  std::unique_ptr<Subprocess> local = StartLocal({"--run-for", "0.5"});
  ASSERT_NE(local, nullptr);
  absl::StatusOr<ProcessResult> exited = local->Wait(kStartBound + kExitBound);
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_EQ(exited->exit_code, 0) << exited->err;
  EXPECT_THAT(testing::ReadFile(endpoints_file_), HasSubstr("\"services\""));
}

TEST_F(SfpoLocalTest, UnwritableEndpointsFileFailsWithOneLineAndNoFile) {
  const std::string path = dir_ + "/no_such_dir/endpoints.json";
  absl::StatusOr<ProcessResult> r = testing::RunProcess(
      {SfpoBinary(), "local", "--endpoints-file", path, "--run-for", "30"}, kStartBound);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->exit_code, 0);
  const std::vector<std::string> lines = absl::StrSplit(r->err, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), StartsWith("sfpo: "));
  EXPECT_THAT(lines.back(), HasSubstr(path));
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace sfpo
