// Malformed and oversized SubmitGroups from an ordinary client (python3-grpcio, hand-built
// bytes on the raw method): each is refused with its gRPC code or a per-group reason, the
// learner's ledger counts the refused samples, and the run completes unaffected.
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/system/system_harness.h"

namespace sfpo {
namespace system_test {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kStartBound = absl::Seconds(60);
constexpr absl::Duration kRunBound = absl::Seconds(90);
constexpr char kPython[] = "/usr/bin/python3";  // Debian's, which has python3-grpcio.

TEST(BadSubmitTest, MalformedAndOversizedSubmissionsAreRefusedAndTheRunCompletes) {
  const char* source_dir = std::getenv("SFPO_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "SFPO_SOURCE_DIR is not set";
  const std::string script = absl::StrCat(source_dir, "/tests/system/bad_submit.py");
  ASSERT_EQ(access(kPython, X_OK), 0) << kPython << " is needed (python3-grpcio)";
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SystemRun> run, SystemRun::Create());
  const std::vector<std::string> sets = {"run.total_steps=3", "rollout.lease_timeout_s=5"};
  SFPO_ASSERT_OK_AND_ASSIGN(Service reward, run->StartReward("127.0.0.1:0", kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(Service learner, run->StartLearner("127.0.0.1:0", sets, kStartBound));

  // The client sends its bad submissions, leasing one prompt (no worker is running yet, so one
  // is free) just before the ones that need a lease.
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult probe,
                            testing::RunProcess({kPython, script, learner.address()}, kRunBound));
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  const nlohmann::json out = nlohmann::json::parse(probe.out, nullptr, false);
  ASSERT_TRUE(out.is_object()) << probe.out;
  SCOPED_TRACE(out.dump());
  ASSERT_TRUE(out["lease"].is_object()) << "the client got no lease";
  EXPECT_EQ(out["lease"].value("group_size", 0), kGroupSize);

  // Bytes that do not parse: refused by gRPC's own deserializer before our handler, which
  // answers INTERNAL (the code every gRPC server uses for an unparseable request).
  EXPECT_EQ(out["garbage"].value("code", ""), "INTERNAL");
  // Over the 16 MiB receive limit.
  EXPECT_EQ(out["oversized"].value("code", ""), "RESOURCE_EXHAUSTED");
  // Well-formed requests the service refuses as a whole.
  EXPECT_EQ(out["no_worker_id"].value("code", ""), "INVALID_ARGUMENT");
  EXPECT_THAT(out["no_worker_id"].value("details", ""), HasSubstr("worker_id"));
  EXPECT_EQ(out["too_many_groups"].value("code", ""), "INVALID_ARGUMENT");
  EXPECT_THAT(out["too_many_groups"].value("details", ""), HasSubstr("1025 groups"));
  // Per-group refusals, each with its reason.
  ASSERT_EQ(out["bad_groups"].value("code", ""), "OK");
  const nlohmann::json& results = out["bad_groups"]["results"];
  ASSERT_TRUE(results.is_array());
  ASSERT_EQ(results.size(), 4u);
  for (const nlohmann::json& r : results) EXPECT_FALSE(r.value("accepted", true)) << r.dump();
  EXPECT_THAT(results[0].value("reason", ""), HasSubstr("unknown lease"));
  EXPECT_THAT(
      results[1].value("reason", ""),
      HasSubstr(absl::StrCat("expected ", kGroupSize, " completions, got ", kGroupSize + 1)));
  EXPECT_THAT(results[2].value("reason", ""), HasSubstr("out of range"));
  EXPECT_THAT(results[3].value("reason", ""), HasSubstr("logprob"));

  // The learner is unaffected: a worker joins (the client's lease expires and is re-leased to
  // it) and the run completes.
  SFPO_ASSERT_OK_AND_ASSIGN(Service worker, run->StartWorker("w0", learner.address(),
                                                             reward.address(), sets, kStartBound));
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult done, learner.process->Wait(kRunBound));
  EXPECT_EQ(done.exit_code, 0) << done.err;
  const std::vector<nlohmann::json> steps = run->Steps();
  ASSERT_EQ(steps.size(), 3u);
  for (const nlohmann::json& line : steps) ExpectConsistentLedger(line);
  const nlohmann::json& last = steps.back();
  // Refused samples are counted once each (the groups that reached the lease table: unknown
  // lease G, wrong count G+1, bad token G, bad logprob G); the abandoned lease expired.
  EXPECT_EQ(Samples(last, "rejected"), 4 * kGroupSize + 1) << last.dump();
  EXPECT_EQ(Samples(last, "expired"), kGroupSize) << last.dump();
  EXPECT_EQ(Samples(last, "stale"), 0) << last.dump();
  SFPO_ASSERT_OK_AND_ASSIGN(testing::ProcessResult worker_done, worker.process->Wait(kRunBound));
  EXPECT_EQ(worker_done.exit_code, 0) << worker_done.err;
}

}  // namespace
}  // namespace system_test
}  // namespace sfpo
