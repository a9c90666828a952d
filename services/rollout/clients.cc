#include "services/rollout/clients.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/learner/learner_convert.h"
#include "services/learner/weights_wire.h"
#include "sfpo/v1/learner.grpc.pb.h"
#include "sfpo/v1/reward.grpc.pb.h"

namespace sfpo {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int max_message_bytes,
                                           bool round_robin) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  if (round_robin) args.SetLoadBalancingPolicyName("round_robin");
  // Each client owns its connections: workers hosted in one process (`sfpo local`) do not
  // share one TCP connection (and its flow control) to the learner, as on a cluster.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Reconnect quickly after a peer restarts.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

class GrpcLearnerClient final : public LearnerClient {
 public:
  explicit GrpcLearnerClient(const LearnerClientOptions& options)
      : options_(options),
        channel_(MakeChannel(options.target, options.max_message_bytes, false)),
        stub_(v1::Learner::NewStub(channel_)),
        generic_(channel_) {}

  absl::StatusOr<LeaseReply> LeaseWork(int max_leases, int64_t worker_version) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, options_.call_timeout);
    v1::LeaseWorkRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_max_leases(max_leases);
    request.set_worker_version(worker_version);
    v1::LeaseWorkResponse response;
    absl::Status st = FromGrpc(stub_->LeaseWork(&ctx, request, &response), "LeaseWork");
    if (!st.ok()) return st;
    LeaseReply reply;
    reply.current_version = response.current_version();
    reply.done = response.done();
    reply.retry_after = absl::Milliseconds(response.retry_after_ms());
    for (const v1::Lease& pl : response.leases()) {
      absl::StatusOr<Lease> lease = LeaseFromProto(pl);
      if (!lease.ok()) return lease.status();
      reply.leases.push_back(std::move(*lease));
    }
    return reply;
  }

  absl::StatusOr<std::vector<absl::Status>> Submit(
      const std::vector<ScoredGroup>& groups) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, options_.call_timeout);
    v1::SubmitGroupsRequest request;
    request.set_worker_id(options_.worker_id);
    for (const ScoredGroup& g : groups) ScoredGroupToProto(g, request.add_groups());
    v1::SubmitGroupsResponse response;
    absl::Status st = FromGrpc(stub_->SubmitGroups(&ctx, request, &response), "SubmitGroups");
    if (!st.ok()) return st;
    if (response.results_size() != static_cast<int>(groups.size())) {
      return absl::InternalError("SubmitGroups: result count differs from group count");
    }
    std::vector<absl::Status> out;
    for (const v1::GroupResult& r : response.results()) {
      out.push_back(r.accepted() ? absl::OkStatus() : absl::FailedPreconditionError(r.reason()));
    }
    return out;
  }

  absl::Status Release(const std::vector<uint64_t>& lease_ids) override {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, options_.call_timeout);
    v1::ReleaseLeasesRequest request;
    request.set_worker_id(options_.worker_id);
    for (uint64_t id : lease_ids) request.add_lease_ids(id);
    v1::ReleaseLeasesResponse response;
    return FromGrpc(stub_->ReleaseLeases(&ctx, request, &response), "ReleaseLeases");
  }

  // WatchWeights read raw (generic call, ByteBuffer): chunk bytes are copied once, from gRPC's
  // receive buffers straight into the assembler's payload, without a protobuf `bytes` string in
  // between (services/learner/weights_wire.h). The messages are ordinary v1::WeightsMessage.
  absl::Status WatchWeights(int64_t have_version,
                            const std::function<void(PackedWeights)>& on_version,
                            const std::atomic<bool>& stop) override {
    grpc::ClientContext ctx;
    std::atomic<bool> ended{false};
    // A read blocks; a small watcher cancels the call once `stop` is set.
    std::thread canceller([&] {
      while (!ended && !stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!ended) ctx.TryCancel();
    });
    absl::Status result = StreamWeights(&ctx, have_version, on_version);
    ended = true;
    canceller.join();
    if (!result.ok() && stop) return absl::OkStatus();
    return result;
  }

 private:
  // Runs one WatchWeights call to its end; UNAVAILABLE when the learner closes the stream.
  // Callback API: each message is decoded on the gRPC thread that completed its read (no hand-off
  // to another thread per chunk), and the next read is started at once.
  absl::Status StreamWeights(grpc::ClientContext* ctx, int64_t have_version,
                             const std::function<void(PackedWeights)>& on_version) {
    v1::WatchWeightsRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_have_version(have_version);
    WeightStreamReader reader(ctx, on_version);
    bool own_buffer = false;
    if (!grpc::SerializationTraits<v1::WatchWeightsRequest>::Serialize(request, &reader.request,
                                                                       &own_buffer)
             .ok()) {
      return absl::InternalError("WatchWeights: cannot serialize the request");
    }
    generic_.PrepareBidiStreamingCall(ctx, "/sfpo.v1.Learner/WatchWeights", grpc::StubOptions(),
                                      &reader);
    reader.StartWriteLast(&reader.request, grpc::WriteOptions());
    reader.StartRead(&reader.message);
    reader.StartCall();
    return reader.Wait();
  }

  // Reads the stream into an assembler, handing each verified version to `on_version`.
  class WeightStreamReader final
      : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    WeightStreamReader(grpc::ClientContext* ctx,
                       const std::function<void(PackedWeights)>& on_version)
        : ctx_(ctx), on_version_(on_version) {}

    void OnReadDone(bool ok) override {
      if (!ok) return;  // the stream ended: OnDone follows
      failure_ = DecodeWeightsMessage(&message, &assembler_);
      if (failure_.ok() && assembler_.complete()) {
        absl::StatusOr<PackedWeights> w = assembler_.Finish();
        if (w.ok()) {
          on_version_(std::move(*w));
        } else {
          failure_ = w.status();
        }
      }
      if (!failure_.ok()) {
        ctx_->TryCancel();
        return;
      }
      StartRead(&message);
    }

    void OnDone(const grpc::Status& status) override {
      absl::MutexLock lock(&mu_);
      end_ = status;
      done_ = true;
    }

    // Waits for the call to end; the first decoding failure, else the call's end.
    absl::Status Wait() {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&done_));
      if (!failure_.ok()) return failure_;
      if (end_.ok()) return absl::UnavailableError("WatchWeights: the learner closed the stream");
      return FromGrpc(end_, "WatchWeights");
    }

    grpc::ByteBuffer request;
    grpc::ByteBuffer message;

   private:
    grpc::ClientContext* const ctx_;
    const std::function<void(PackedWeights)>& on_version_;
    WeightAssembler assembler_;
    absl::Status failure_;  // written by reads only, read after OnDone
    absl::Mutex mu_;
    bool done_ ABSL_GUARDED_BY(mu_) = false;
    grpc::Status end_ ABSL_GUARDED_BY(mu_);
  };

  LearnerClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Learner::Stub> stub_;
  grpc::GenericStub generic_;
};

SampleVerdict FromProtoVerdict(v1::Verdict v) {
  switch (v) {
    case v1::VERDICT_CORRECT:
      return SampleVerdict::kCorrect;
    case v1::VERDICT_INCORRECT:
      return SampleVerdict::kIncorrect;
    case v1::VERDICT_UNPARSEABLE:
      return SampleVerdict::kUnparseable;
    case v1::VERDICT_ERROR:
      return SampleVerdict::kError;
    default:
      return SampleVerdict::kUnspecified;
  }
}

class GrpcRewardClient final : public RewardClient {
 public:
  explicit GrpcRewardClient(const RewardClientOptions& options)
      : options_(options),
        stub_(v1::RewardVerifier::NewStub(MakeChannel(options.target, 64 << 20, true))) {}

  absl::StatusOr<std::vector<ScoreOutcome>> Score(
      const std::vector<ScoreRequestItem>& items) override {
    std::vector<ScoreOutcome> out;
    out.reserve(items.size());
    for (size_t start = 0; start < items.size(); start += options_.max_batch_items) {
      const size_t end = std::min(items.size(), start + options_.max_batch_items);
      grpc::ClientContext ctx;
      SetDeadline(&ctx, options_.call_timeout);
      v1::ScoreRequest request;
      request.set_format_reward(static_cast<float>(options_.format_reward));
      request.set_item_deadline_ms(
          static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.item_deadline)));
      for (size_t i = start; i < end; ++i) {
        v1::ScoreItem* item = request.add_items();
        item->set_task(items[i].task);
        item->set_prompt(items[i].prompt);
        item->set_completion(items[i].completion);
        item->set_gold(items[i].gold);
      }
      v1::ScoreResponse response;
      absl::Status st = FromGrpc(stub_->Score(&ctx, request, &response), "Score");
      if (!st.ok()) return st;
      if (response.results_size() != static_cast<int>(end - start)) {
        return absl::InternalError("Score: result count differs from item count");
      }
      for (const v1::ScoreResult& r : response.results()) {
        ScoreOutcome o;
        o.verdict = FromProtoVerdict(r.verdict());
        o.reward = r.reward();
        o.extracted = r.extracted();
        o.reason = r.reason();
        out.push_back(std::move(o));
      }
    }
    return out;
  }

 private:
  RewardClientOptions options_;
  std::unique_ptr<v1::RewardVerifier::Stub> stub_;
};

}  // namespace

std::shared_ptr<LearnerClient> MakeGrpcLearnerClient(const LearnerClientOptions& options) {
  return std::make_shared<GrpcLearnerClient>(options);
}

std::shared_ptr<RewardClient> MakeGrpcRewardClient(const RewardClientOptions& options) {
  return std::make_shared<GrpcRewardClient>(options);
}

}  // namespace sfpo
