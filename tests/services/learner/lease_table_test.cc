#include "services/learner/lease_table.h"

#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

LeaseTableOptions Options(int batch = 2, int group = 2, int staleness = 0) {
  LeaseTableOptions o;
  o.group_size = group;
  o.batch_prompts = batch;
  o.max_staleness = staleness;
  o.lease_timeout = absl::Seconds(10);
  o.vocab_size = 10;
  o.max_new_tokens = 4;
  o.prompt_source = [](uint64_t cursor) {
    PromptSpec p;
    p.prompt_id = cursor;
    p.task = "addition";
    p.text = "p" + std::to_string(cursor);
    p.tokens = {1, 3};
    p.answer = "a";
    return p;
  };
  return o;
}

ScoredGroup Answer(const Lease& lease, int64_t version) {
  ScoredGroup g;
  g.lease_id = lease.lease_id;
  g.policy_version = version;
  for (int i = 0; i < lease.group_size; ++i) {
    Completion c;
    c.tokens = {4, 2};
    c.logprobs = {-0.5f, -0.1f};
    c.reward = static_cast<float>(i % 2);
    g.completions.push_back(c);
  }
  return g;
}

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(LeaseTableTest, SynchronousModeStopsLeasingOnceTheBatchIsOut) {
  LeaseTable table(Options(/*batch=*/2));
  auto leases = table.LeaseWork("w", 5, kT0);
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_TRUE(table.LeaseWork("w", 5, kT0).empty());
  EXPECT_EQ(leases[0].prompt_id, 0u);
  EXPECT_EQ(leases[1].prompt_id, 1u);
  EXPECT_NE(leases[0].sampling.seed, leases[1].sampling.seed);
  EXPECT_EQ(leases[0].deadline_unix_ms, absl::ToUnixMillis(kT0 + absl::Seconds(10)));
  for (const Lease& l : leases) SFPO_EXPECT_OK(table.Submit("w", Answer(l, 0), kT0));
  SFPO_ASSERT_OK_AND_ASSIGN(auto batch, table.TakeBatch(2, absl::Seconds(1)));
  EXPECT_EQ(batch.size(), 2u);
  // Nothing new until the next version is published... but capacity is free again.
  table.SetVersion(1);
  auto next = table.LeaseWork("w", 5, kT0);
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[0].policy_version, 1);
  EXPECT_EQ(next[0].prompt_id, 2u);
}

TEST(LeaseTableTest, RejectsDuplicateUnknownAndForeignSubmissions) {
  LeaseTable table(Options());
  auto leases = table.LeaseWork("w", 1, kT0);
  ASSERT_EQ(leases.size(), 1u);
  SFPO_EXPECT_OK(table.Submit("w", Answer(leases[0], 0), kT0));
  EXPECT_THAT(table.Submit("w", Answer(leases[0], 0), kT0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already")));
  ScoredGroup unknown = Answer(leases[0], 0);
  unknown.lease_id = 999;
  EXPECT_THAT(table.Submit("w", unknown, kT0), StatusIs(absl::StatusCode::kNotFound, HasSubstr("999")));
  auto more = table.LeaseWork("w", 1, kT0);
  EXPECT_THAT(table.Submit("other", Answer(more[0], 0), kT0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("belongs to w")));
}

TEST(LeaseTableTest, ValidatesShapesTokenIdsAndLogprobs) {
  LeaseTable table(Options());
  auto leases = table.LeaseWork("w", 1, kT0);
  ScoredGroup g = Answer(leases[0], 0);
  g.completions.pop_back();
  EXPECT_THAT(table.Submit("w", g, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected 2 completions")));
  g = Answer(leases[0], 0);
  g.completions[1].tokens[0] = 10;
  EXPECT_THAT(table.Submit("w", g, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token id 10")));
  g = Answer(leases[0], 0);
  g.completions[0].logprobs.pop_back();
  EXPECT_THAT(table.Submit("w", g, kT0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 logprobs for 2 tokens")));
  g = Answer(leases[0], 0);
  g.completions[0].logprobs[0] = 0.5f;
  EXPECT_THAT(table.Submit("w", g, kT0), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("logprob")));
  g = Answer(leases[0], 0);
  g.completions[0].tokens = {1, 2, 3, 4, 5};
  g.completions[0].logprobs = {-1, -1, -1, -1, -1};
  EXPECT_THAT(table.Submit("w", g, kT0), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("5 tokens")));
  // A malformed submission leaves the lease open for a correct one.
  SFPO_EXPECT_OK(table.Submit("w", Answer(leases[0], 0), kT0));
}

TEST(LeaseTableTest, ExpiredLeasesAreReleasedAndLateSubmissionsRejected) {
  LeaseTable table(Options(/*batch=*/1));
  auto first = table.LeaseWork("w", 1, kT0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(table.ExpireOverdue(kT0 + absl::Seconds(5)), 0);
  EXPECT_EQ(table.ExpireOverdue(kT0 + absl::Seconds(11)), 1);
  EXPECT_THAT(table.Submit("w", Answer(first[0], 0), kT0 + absl::Seconds(12)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  auto again = table.LeaseWork("w2", 1, kT0 + absl::Seconds(12));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].prompt_id, first[0].prompt_id);
  EXPECT_NE(again[0].lease_id, first[0].lease_id);
  SFPO_EXPECT_OK(table.Submit("w2", Answer(again[0], 0), kT0 + absl::Seconds(13)));
  LedgerCounts c = table.counts();
  EXPECT_EQ(c.leased, 4);
  EXPECT_EQ(c.expired, 2);
  EXPECT_EQ(c.scored, 2);
  EXPECT_EQ(c.in_flight, 0);
}

TEST(LeaseTableTest, StaleGroupsAreDroppedAndCounted) {
  LeaseTable table(Options(/*batch=*/1, /*group=*/2, /*staleness=*/1));
  auto a = table.LeaseWork("w", 2, kT0);  // capacity 2 with staleness 1
  ASSERT_EQ(a.size(), 2u);
  SFPO_EXPECT_OK(table.Submit("w", Answer(a[0], 0), kT0));
  table.SetVersion(2);
  // Generated by version 0 while the learner is at 2: more than 1 version old.
  EXPECT_THAT(table.Submit("w", Answer(a[1], 0), kT0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("outside [1, 2]")));
  // The buffered version-0 group is dropped when a batch is taken.
  EXPECT_THAT(table.TakeBatch(1, absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  LedgerCounts c = table.counts();
  EXPECT_EQ(c.stale, 4);
  auto b = table.LeaseWork("w", 2, kT0);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].policy_version, 1);  // oldest accepted version
}

TEST(LeaseTableTest, ReleasedLeasesAreReissuedFirst) {
  LeaseTable table(Options(/*batch=*/2));
  auto a = table.LeaseWork("w", 2, kT0);
  EXPECT_EQ(table.Release("other", {a[0].lease_id}), 0);
  EXPECT_EQ(table.Release("w", {a[0].lease_id, a[1].lease_id}), 2);
  auto b = table.LeaseWork("w2", 2, kT0);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].prompt_id + b[1].prompt_id, 1u);
  EXPECT_EQ(table.counts().released, 4);
}

TEST(LeaseTableTest, TakeBatchWaitsForSubmissionsAndCloseCancels) {
  LeaseTable table(Options(/*batch=*/1));
  auto a = table.LeaseWork("w", 1, kT0);
  absl::Notification taken;
  absl::StatusOr<std::vector<AcceptedGroup>> result;
  std::thread learner([&] {
    result = table.TakeBatch(1, absl::Seconds(30));
    taken.Notify();
  });
  SFPO_EXPECT_OK(table.Submit("w", Answer(a[0], 0), kT0));
  taken.WaitForNotification();
  learner.join();
  SFPO_ASSERT_OK(result.status());
  EXPECT_EQ((*result)[0].lease.lease_id, a[0].lease_id);
  std::thread waiter([&] { result = table.TakeBatch(1, absl::Seconds(30)); });
  table.Close();
  waiter.join();
  EXPECT_THAT(result.status(), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST(LeaseTableTest, ExportedStateRequeuesUnfinishedPromptsAndKeepsTheLedgerConsistent) {
  LeaseTable table(Options(/*batch=*/3));
  auto a = table.LeaseWork("w", 3, kT0);
  SFPO_EXPECT_OK(table.Submit("w", Answer(a[0], 0), kT0));
  LeaseTable::State s = table.ExportState();
  EXPECT_EQ(s.cursor, 3u);
  EXPECT_EQ(s.requeue.size(), 3u);
  EXPECT_EQ(s.counts.in_flight, 0);
  EXPECT_EQ(s.counts.leased, s.counts.expired + s.counts.stale);
  LeaseTable restored(Options(/*batch=*/3));
  restored.RestoreState(s);
  auto b = restored.LeaseWork("w", 3, kT0);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_GE(b[0].lease_id, s.next_lease_id);
  std::set<uint64_t> ids;
  for (const Lease& l : b) ids.insert(l.prompt_id);
  EXPECT_EQ(ids, (std::set<uint64_t>{0, 1, 2}));
}

TEST(LeaseTableTest, SynchronousModeIssuesNoLeaseWhileTheTakenBatchIsTrained) {
  LeaseTable table(Options(/*batch=*/1, /*group=*/2));
  auto a = table.LeaseWork("w", 1, kT0);
  ASSERT_EQ(a.size(), 1u);
  SFPO_EXPECT_OK(table.Submit("w", Answer(a[0], 0), kT0));
  SFPO_ASSERT_OK(table.TakeBatch(1, absl::Seconds(1)).status());
  // Version 0 is being trained: a group generated by it now could only be dropped as stale.
  EXPECT_TRUE(table.LeaseWork("w", 1, kT0).empty());
  table.SetVersion(1);
  auto b = table.LeaseWork("w", 1, kT0);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].policy_version, 1);
  EXPECT_EQ(table.counts().stale, 0);
}

// leased == in_flight + buffered + trained + stale + expired + released, at every point.
void ExpectEveryLeasedSampleInOnePlace(const LedgerCounts& c) {
  EXPECT_EQ(c.leased, c.in_flight + c.buffered + c.trained + c.stale + c.expired + c.released);
}

TEST(LeaseTableTest, LedgerPlacesEveryLeasedSampleExactlyOnce) {
  LeaseTable table(Options(/*batch=*/1, /*group=*/2, /*staleness=*/1));
  auto a = table.LeaseWork("w", 2, kT0);
  ASSERT_EQ(a.size(), 2u);
  SFPO_EXPECT_OK(table.Submit("w", Answer(a[0], 0), kT0));
  EXPECT_EQ(table.counts().buffered, 2);
  ExpectEveryLeasedSampleInOnePlace(table.counts());
  table.SetVersion(2);  // the buffered group and the outstanding lease both fall too far behind
  EXPECT_FALSE(table.Submit("w", Answer(a[1], 0), kT0).ok());
  EXPECT_FALSE(table.TakeBatch(1, absl::Milliseconds(10)).ok());
  LedgerCounts c = table.counts();
  EXPECT_EQ(c.buffered, 0);
  EXPECT_EQ(c.stale, 4);
  ExpectEveryLeasedSampleInOnePlace(c);
  auto b = table.LeaseWork("w", 2, kT0);
  ASSERT_EQ(b.size(), 2u);
  SFPO_EXPECT_OK(table.Submit("w", Answer(b[0], 2), kT0));
  SFPO_ASSERT_OK(table.TakeBatch(1, absl::Seconds(1)).status());
  table.MarkTrained(2);
  SFPO_EXPECT_OK(table.Submit("w", Answer(b[1], 2), kT0));
  ExpectEveryLeasedSampleInOnePlace(table.counts());
  // A checkpoint taken now drops the buffered group (the restarted learner will not have it).
  LeaseTable::State s = table.ExportState();
  EXPECT_EQ(s.counts.buffered, 0);
  ExpectEveryLeasedSampleInOnePlace(s.counts);
}

}  // namespace
}  // namespace sfpo
