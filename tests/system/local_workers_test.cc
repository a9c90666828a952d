// `sfpo local` with several workers: every worker reaches the learner (receives its policy
// versions), not only the first.
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/system/system_harness.h"

namespace sfpo {
namespace system_test {
namespace {

constexpr absl::Duration kRunBound = absl::Seconds(90);

TEST(LocalWorkersTest, EveryWorkerOfSfpoLocalReceivesTheLearnersVersions) {
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  const std::string endpoints = run->run_dir() + ".endpoints.json";
  std::vector<std::string> argv = {testing::SfpoBinary(), "local", "--endpoints-file", endpoints};
  for (std::string& a : run->ConfigArgs({"run.total_steps=50", "rollout.workers=3"})) {
    argv.push_back(std::move(a));
  }
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::Subprocess> local,
                            testing::Subprocess::Start(argv));
  ASSERT_TRUE(PollUntil([&] { return access(endpoints.c_str(), F_OK) == 0 || !local->Running(); },
                        kRunBound));
  const nlohmann::json file = nlohmann::json::parse(testing::ReadFile(endpoints), nullptr, false);
  ASSERT_TRUE(file.is_object() && file["services"].is_array()) << local->Stderr();
  std::vector<std::string> workers;
  for (const nlohmann::json& s : file["services"]) {
    if (s.value("role", "") == "rollout") workers.push_back(s.value("grpc", ""));
  }
  ASSERT_EQ(workers.size(), 3u);
  // A worker holds version >= 1 only if its weight stream reached the learner.
  for (const std::string& w : workers) {
    WorkerState seen;
    EXPECT_TRUE(PollUntil(
        [&] {
          absl::StatusOr<WorkerState> s = GetWorkerState(w);
          if (s.ok()) seen = *s;
          return s.ok() && s->policy_version >= 1;
        },
        kRunBound))
        << w << " is at version " << seen.policy_version << " in state " << seen.state;
  }
}

}  // namespace
}  // namespace system_test
}  // namespace sfpo
