#include "tests/system/system_harness.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "sfpo/v1/rollout.grpc.pb.h"

namespace sfpo {
namespace system_test {

std::string Service::address() const { return absl::StrCat("127.0.0.1:", port); }

bool PollUntil(const std::function<bool()>& condition, absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

namespace {

// Binds 127.0.0.1:port (0: any) and returns the port bound, or 0 when it is taken.
int TryBind(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  return ok ? static_cast<int>(ntohs(addr.sin_port)) : 0;
}

}  // namespace

absl::StatusOr<int> PickFreePort() {
  // Below the kernel's ephemeral range, so that no other test's bind(0) or outgoing connection
  // (a client retrying an absent service) can take the port before its service binds it.
  int low = 0, high = 0;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  if (range >> low >> high && low > 4096) {
    absl::BitGen gen;
    const int from = std::max(1024, low - 12000);
    for (int attempt = 0; attempt < 200; ++attempt) {
      const int port = TryBind(absl::Uniform(gen, from, low));
      if (port != 0) return port;
    }
  }
  const int port = TryBind(0);
  if (port == 0) return absl::InternalError("cannot bind 127.0.0.1:0");
  return port;
}

absl::StatusOr<std::unique_ptr<SystemRun>> SystemRun::Create() {
  if (testing::SfpoBinary().empty()) {
    return absl::FailedPreconditionError(
        "SFPO_BINARY is not set: run through ctest (sfpo_test sets it) or export it");
  }
  const std::string dir = testing::MakeTempDir();
  if (dir.empty()) return absl::InternalError("cannot create a temporary directory");
  return std::unique_ptr<SystemRun>(new SystemRun(dir + "/run"));
}

std::vector<std::string> SystemRun::ConfigArgs(const std::vector<std::string>& extra) const {
  std::vector<std::string> sets = {
      absl::StrCat("run.output_dir=", run_dir_),
      "run.threads=1",
      "model.config=tiny-char",
      "data.task=countdown3",
      absl::StrCat("data.batch_prompts=", kBatchPrompts),
      absl::StrCat("rollout.group_size=", kGroupSize),
      "rollout.max_new_tokens=16",
      "rollout.max_staleness=0",
      absl::StrCat("rollout.batch_leases=", kBatchPrompts),
      "learner.mini_batch_prompts=4",
      "learner.lr=1e-4",
  };
  sets.insert(sets.end(), extra.begin(), extra.end());
  std::vector<std::string> args;
  for (const std::string& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  return args;
}

absl::StatusOr<Service> SystemRun::Start(std::vector<std::string> argv, absl::Duration bound) {
  argv.insert(argv.begin(), testing::SfpoBinary());
  absl::StatusOr<std::unique_ptr<testing::Subprocess>> process = testing::Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  Service service;
  service.process = std::move(*process);
  static const std::regex kServing("serving gRPC on port ([0-9]+)");
  std::smatch m;
  std::string err;
  const bool announced = PollUntil(
      [&] {
        err = service.process->Stderr();
        return std::regex_search(err, m, kServing) || !service.process->Running();
      },
      bound);
  err = service.process->Stderr();
  if (!announced || !std::regex_search(err, m, kServing)) {
    return absl::DeadlineExceededError(
        absl::StrCat(argv[1], " did not announce its port within ", absl::FormatDuration(bound),
                     service.process->Running() ? "" : " (it exited)", "; stderr:\n", err));
  }
  service.port = std::stoi(m[1].str());
  return service;
}

absl::StatusOr<Service> SystemRun::StartLearner(const std::string& listen,
                                                const std::vector<std::string>& sets,
                                                absl::Duration bound) {
  std::vector<std::string> argv = {"learner", "--listen", listen, "--metrics-listen",
                                   "127.0.0.1:0"};
  for (std::string& a : ConfigArgs(sets)) argv.push_back(std::move(a));
  return Start(std::move(argv), bound);
}

absl::StatusOr<Service> SystemRun::StartReward(const std::string& listen, absl::Duration bound) {
  std::vector<std::string> argv = {"reward", "--listen", listen, "--metrics-listen", "127.0.0.1:0"};
  for (std::string& a : ConfigArgs({})) argv.push_back(std::move(a));
  return Start(std::move(argv), bound);
}

absl::StatusOr<Service> SystemRun::StartWorker(const std::string& worker_id,
                                               const std::string& learner,
                                               const std::string& reward,
                                               const std::vector<std::string>& sets,
                                               absl::Duration bound) {
  std::vector<std::string> argv = {"rollout",     "--learner",   learner,       "--reward",
                                   reward,        "--listen",    "127.0.0.1:0", "--metrics-listen",
                                   "127.0.0.1:0", "--worker-id", worker_id};
  for (std::string& a : ConfigArgs(sets)) argv.push_back(std::move(a));
  return Start(std::move(argv), bound);
}

std::vector<nlohmann::json> SystemRun::Steps() const {
  std::vector<nlohmann::json> lines;
  std::ifstream in(run_dir_ + "/steps.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    lines.push_back(j.is_discarded() ? nlohmann::json(line) : j);
  }
  return lines;
}

absl::StatusOr<WorkerState> GetWorkerState(const std::string& address) {
  auto stub =
      v1::RolloutWorker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::GetStatusRequest request;
  v1::WorkerStatus status;
  grpc::Status st = stub->GetStatus(&ctx, request, &status);
  if (!st.ok()) {
    return absl::UnavailableError(absl::StrCat("GetStatus(", address, "): ", st.error_message()));
  }
  WorkerState s;
  s.policy_version = status.policy_version();
  s.leases_in_flight = status.leases_in_flight();
  s.sequences_generated = status.sequences_generated();
  s.state = status.state();
  return s;
}

int64_t Samples(const nlohmann::json& line, const std::string& key) {
  if (!line.is_object() || !line.contains("samples") || !line["samples"].is_object() ||
      !line["samples"].contains(key) || !line["samples"][key].is_number_integer()) {
    return -1;
  }
  return line["samples"][key].get<int64_t>();
}

void ExpectConsistentLedger(const nlohmann::json& line) {
  SCOPED_TRACE(line.dump());
  ASSERT_TRUE(line.is_object());
  for (const char* key : {"leased", "scored", "buffered", "trained", "stale", "expired", "released",
                          "rejected", "in_flight"}) {
    EXPECT_GE(Samples(line, key), 0) << key;
  }
  EXPECT_EQ(Samples(line, "leased"), Samples(line, "in_flight") + Samples(line, "buffered") +
                                         Samples(line, "trained") + Samples(line, "stale") +
                                         Samples(line, "expired") + Samples(line, "released"));
  EXPECT_GE(Samples(line, "scored"), Samples(line, "trained") + Samples(line, "buffered"));
  ASSERT_TRUE(line.contains("step") && line["step"].is_number_integer());
  ASSERT_TRUE(line.contains("rollouts_total") && line["rollouts_total"].is_number_integer());
  EXPECT_EQ(Samples(line, "trained"), line["rollouts_total"].get<int64_t>());
  EXPECT_EQ(line["rollouts_total"].get<int64_t>(), line["step"].get<int64_t>() * kSamplesPerStep);
}

}  // namespace system_test
}  // namespace sfpo
