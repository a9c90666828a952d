// Starts the real reward server on 127.0.0.1:0 and calls it over gRPC.
#include "services/reward/reward_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "sfpo/v1/reward.grpc.pb.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;

class RewardServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    RewardServerOptions options;
    options.listen = "127.0.0.1:0";
    options.registry = registry_;
    options.max_batch_items = 8;
    SFPO_ASSERT_OK_AND_ASSIGN(server_, StartRewardServer(options));
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::RewardVerifier::NewStub(channel_);
  }
  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(absl::Seconds(1));
      server_->Wait();
    }
  }

  grpc::Status Score(const v1::ScoreRequest& request, v1::ScoreResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Score(&context, request, response);
  }

  std::string Metrics() {
    prometheus::TextSerializer serializer;
    return serializer.Serialize(registry_->Collect());
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RewardServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RewardVerifier::Stub> stub_;
};

void AddItem(v1::ScoreRequest* request, const std::string& task, const std::string& completion,
             const std::string& gold, const std::string& prompt = "") {
  v1::ScoreItem* item = request->add_items();
  item->set_task(task);
  item->set_completion(completion);
  item->set_gold(gold);
  item->set_prompt(prompt);
}

TEST_F(RewardServerTest, ScoresABatchWithTheCheckerEachItemNames) {
  v1::ScoreRequest request;
  request.set_format_reward(0.1f);
  AddItem(&request, "countdown3", "3*5+7", "3 5 7=22", "3 5 7=22:");
  AddItem(&request, "countdown3", "3+5+7", "3 5 7=22", "3 5 7=22:");
  AddItem(&request, "addition", "4690", "4690", "123+4567=");
  AddItem(&request, "math", "so \\boxed{\\frac{2}{4}}", "0.5");
  AddItem(&request, "", "The answer is \\boxed{3}", "4");
  AddItem(&request, "", "no answer here at all, sorry", "4");
  AddItem(&request, "", "\\boxed{2^{2^{2^{50}}}}", "4");
  AddItem(&request, "chess", "e4", "e4");
  v1::ScoreResponse response;
  grpc::Status status = Score(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 8);
  const auto& r = response.results();
  EXPECT_EQ(r[0].verdict(), v1::VERDICT_CORRECT);
  EXPECT_FLOAT_EQ(r[0].reward(), 1.0f);
  EXPECT_EQ(r[0].extracted(), "3*5+7");
  EXPECT_EQ(r[1].verdict(), v1::VERDICT_INCORRECT);
  EXPECT_FLOAT_EQ(r[1].reward(), 0.1f);
  EXPECT_EQ(r[2].verdict(), v1::VERDICT_CORRECT);
  EXPECT_EQ(r[3].verdict(), v1::VERDICT_CORRECT);
  EXPECT_EQ(r[4].verdict(), v1::VERDICT_INCORRECT);
  EXPECT_FLOAT_EQ(r[4].reward(), 0.1f);
  EXPECT_EQ(r[5].verdict(), v1::VERDICT_UNPARSEABLE);
  EXPECT_FLOAT_EQ(r[5].reward(), 0.0f);
  EXPECT_FALSE(r[5].reason().empty());
  EXPECT_EQ(r[6].verdict(), v1::VERDICT_ERROR);
  EXPECT_THAT(r[6].reason(), HasSubstr("exponent_too_large"));
  EXPECT_EQ(r[7].verdict(), v1::VERDICT_ERROR);
  EXPECT_THAT(r[7].reason(), HasSubstr("unknown task"));
  for (const auto& result : r) EXPECT_EQ(result.verifier_version(), kVerifierVersion);

  std::string metrics = Metrics();
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_verdicts_total{verdict=\"correct\"} 3"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_verdicts_total{verdict=\"incorrect\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_verdicts_total{verdict=\"unparseable\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_verdicts_total{verdict=\"error\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_errors_total{reason=\"exponent_too_large\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_errors_total{reason=\"unknown_task\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_items_total 8"));
  EXPECT_THAT(metrics, HasSubstr("sfpo_reward_request_seconds_count 1"));
}

TEST_F(RewardServerTest, RejectsAnOversizedBatchWithInvalidArgument) {
  v1::ScoreRequest request;
  for (int i = 0; i < 9; ++i) AddItem(&request, "", "\\boxed{1}", "1");
  v1::ScoreResponse response;
  grpc::Status status = Score(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("exceeds the limit of 8"));
}

TEST_F(RewardServerTest, AnswersAnEmptyBatchWithNoResults) {
  v1::ScoreRequest request;
  v1::ScoreResponse response;
  ASSERT_TRUE(Score(request, &response).ok());
  EXPECT_EQ(response.results_size(), 0);
}

TEST_F(RewardServerTest, ServesTheStandardHealthCheckUntilShutdown) {
  auto check = [&](grpc::Status* status, grpc::ByteBuffer* reply) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::ByteBuffer request;  // HealthCheckRequest{service: ""} is an empty message
    grpc::Slice empty;
    request = grpc::ByteBuffer(&empty, 1);
    absl::Notification done;
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                   reply, [&](grpc::Status s) {
                     *status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
  };
  grpc::Status status;
  grpc::ByteBuffer reply;
  check(&status, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(reply.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "status: SERVING";

  server_->Shutdown(absl::Seconds(1));
  server_->Wait();
  server_.reset();
  v1::ScoreRequest request;
  v1::ScoreResponse response;
  EXPECT_FALSE(Score(request, &response).ok());
}

TEST(RewardServerStart, RejectsBadOptions) {
  RewardServerOptions options;
  options.max_batch_items = 0;
  EXPECT_THAT(StartRewardServer(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_batch_items")));
  options = RewardServerOptions();
  options.verifier.limits.max_depth = 0;
  EXPECT_THAT(StartRewardServer(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

}  // namespace
}  // namespace sfpo
