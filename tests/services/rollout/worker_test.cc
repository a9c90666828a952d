// The worker loop against the real learner gRPC service (lease table + weight board), with a
// fake model and a fake verifier.
#include "services/rollout/worker.h"

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/learner/learner_service.h"
#include "services/rollout/clients.h"

namespace sfpo {
namespace {

PackedWeights MakeWeights(int64_t version, float value) {
  PackedWeights w;
  w.manifest.version = version;
  w.manifest.chunk_bytes = 1024;
  std::string payload(4 * 600, '\0');
  for (int i = 0; i < 600; ++i) std::memcpy(&payload[4 * i], &value, 4);
  WeightTensorInfo t{"w", WireDType::kF32, {600}, 0, payload.size(), Checksum(payload)};
  w.manifest.tensors.push_back(t);
  w.manifest.total_bytes = payload.size();
  w.payload = std::make_shared<const std::string>(std::move(payload));
  return w;
}

// Emits "7" for every sample; remembers the versions applied.
class FakeGenerator : public Generator {
 public:
  explicit FakeGenerator(std::atomic<int64_t>* applied) : applied_(applied) {}
  absl::StatusOr<std::vector<std::vector<GeneratedSample>>> Generate(
      const std::vector<Lease>& leases) override {
    std::vector<std::vector<GeneratedSample>> out;
    for (const Lease& l : leases) {
      std::vector<GeneratedSample> group;
      for (int i = 0; i < l.group_size; ++i) {
        group.push_back(GeneratedSample{{5, 2}, {-0.5f, -0.25f}, i % 2 ? "7" : "8", false});
      }
      out.push_back(std::move(group));
    }
    return out;
  }
  absl::Status ApplyWeights(const PackedWeights& w) override {
    applied_->store(w.manifest.version);
    return absl::OkStatus();
  }

 private:
  std::atomic<int64_t>* applied_;
};

class FakeReward : public RewardClient {
 public:
  absl::StatusOr<std::vector<ScoreOutcome>> Score(
      const std::vector<ScoreRequestItem>& items) override {
    calls++;
    if (down) return absl::UnavailableError("verifier away");
    std::vector<ScoreOutcome> out;
    for (const auto& item : items) {
      ScoreOutcome o;
      o.verdict = item.completion == item.gold ? SampleVerdict::kCorrect : SampleVerdict::kIncorrect;
      o.reward = o.verdict == SampleVerdict::kCorrect ? 1.f : 0.f;
      out.push_back(o);
    }
    return out;
  }
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};
};

class WorkerTest : public ::testing::Test {
 protected:
  void StartLearner(std::function<void(int64_t, uint64_t, std::string*)> filter = nullptr) {
    LeaseTableOptions lo;
    lo.group_size = 2;
    lo.batch_prompts = 2;
    lo.vocab_size = 10;
    lo.max_new_tokens = 4;
    lo.lease_timeout = absl::Seconds(30);
    lo.prompt_source = [](uint64_t c) {
      return PromptSpec{c, "addition", "3+4=", {1, 3}, "7"};
    };
    leases_ = std::make_unique<LeaseTable>(lo);
    LearnerServiceOptions so;
    so.leases = leases_.get();
    so.board = &board_;
    so.done = [this] { return done_.load(); };
    so.chunk_filter = std::move(filter);
    service_ = std::make_unique<LearnerService>(so);
    GrpcServerOptions go;
    go.services = {service_.get()};
    auto server = GrpcServer::Start(go);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::unique_ptr<RolloutWorker> MakeWorker(std::shared_ptr<FakeReward> reward) {
    WorkerOptions wo;
    wo.worker_id = "w0";
    wo.max_leases = 2;
    wo.backoff_initial = absl::Milliseconds(5);
    wo.backoff_max = absl::Milliseconds(50);
    LearnerClientOptions co;
    co.target = server_->address();
    co.worker_id = "w0";
    return std::make_unique<RolloutWorker>(wo, MakeGrpcLearnerClient(co), reward,
                                           std::make_unique<FakeGenerator>(&applied_));
  }

  void TearDown() override {
    board_.Close();
    if (leases_) leases_->Close();
    if (server_) server_->Shutdown(absl::Seconds(1));
  }

  std::unique_ptr<LeaseTable> leases_;
  WeightBoard board_;
  std::atomic<bool> done_{false};
  std::unique_ptr<LearnerService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::atomic<int64_t> applied_{-1};
};

TEST_F(WorkerTest, RunsStepsInLockstepWithTheLearnerUntilDone) {
  StartLearner();
  board_.Publish(MakeWeights(0, 1.0f));
  auto reward = std::make_shared<FakeReward>();
  auto worker = MakeWorker(reward);
  worker->Start();
  for (int64_t step = 0; step < 3; ++step) {
    SFPO_ASSERT_OK_AND_ASSIGN(auto batch, leases_->TakeBatch(2, absl::Seconds(20)));
    for (const AcceptedGroup& g : batch) {
      EXPECT_EQ(g.group.policy_version, step);
      ASSERT_EQ(g.group.completions.size(), 2u);
      EXPECT_EQ(g.group.completions[1].reward, 1.0f);
      EXPECT_EQ(g.group.completions[0].reward, 0.0f);
    }
    leases_->MarkTrained(4);
    board_.Publish(MakeWeights(step + 1, 1.0f + step));
    leases_->SetVersion(step + 1);
  }
  done_ = true;
  worker->Wait();
  SFPO_EXPECT_OK(worker->status());
  LedgerCounts c = leases_->counts();
  EXPECT_EQ(c.trained, 12);
  EXPECT_EQ(c.scored, c.leased - c.in_flight - c.expired - c.released - c.stale);
  EXPECT_GE(applied_.load(), 2);
}

TEST_F(WorkerTest, BacksOffWhileTheVerifierIsAwayAndLosesNothing) {
  StartLearner();
  board_.Publish(MakeWeights(0, 1.0f));
  auto reward = std::make_shared<FakeReward>();
  reward->down = true;
  auto worker = MakeWorker(reward);
  worker->Start();
  while (reward->calls < 5) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(leases_->counts().scored, 0);
  reward->down = false;
  SFPO_ASSERT_OK_AND_ASSIGN(auto batch, leases_->TakeBatch(2, absl::Seconds(20)));
  EXPECT_EQ(batch.size(), 2u);
  EXPECT_EQ(leases_->counts().rejected, 0);
  worker->Stop();
}

TEST_F(WorkerTest, RefusesACorruptedVersionAndRecoversOnTheNextSend) {
  std::atomic<int> corrupted{0};
  StartLearner([&](int64_t version, uint64_t offset, std::string* data) {
    if (version == 1 && offset == 1024 && corrupted++ == 0) (*data)[3] ^= 1;
  });
  board_.Publish(MakeWeights(0, 1.0f));
  auto reward = std::make_shared<FakeReward>();
  auto worker = MakeWorker(reward);
  worker->Start();
  SFPO_ASSERT_OK_AND_ASSIGN(auto batch, leases_->TakeBatch(2, absl::Seconds(20)));
  board_.Publish(MakeWeights(1, 2.0f));
  leases_->SetVersion(1);
  SFPO_ASSERT_OK_AND_ASSIGN(batch, leases_->TakeBatch(2, absl::Seconds(20)));
  EXPECT_EQ(batch[0].group.policy_version, 1);
  EXPECT_EQ(corrupted.load(), 2);  // the first send was corrupted, the resend was clean
  EXPECT_GE(worker->snapshot().weight_failures, 1u);
  EXPECT_EQ(applied_.load(), 1);
  worker->Stop();
}

TEST_F(WorkerTest, StopReleasesLeasesHeldWhileWaitingForWeights) {
  StartLearner();
  board_.Publish(MakeWeights(0, 1.0f));
  auto reward = std::make_shared<FakeReward>();
  reward->down = true;
  auto worker = MakeWorker(reward);
  worker->Start();
  while (reward->calls < 2) absl::SleepFor(absl::Milliseconds(5));
  worker->Stop();
  LedgerCounts c = leases_->counts();
  EXPECT_EQ(c.released, c.leased);
  EXPECT_EQ(c.in_flight, 0);
}

}  // namespace
}  // namespace sfpo
