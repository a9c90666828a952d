#include "services/learner/learner_server.h"

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "common/grpc_server.h"
#include "common/status.h"
#include "services/learner/learner_service.h"

namespace sfpo {
namespace {

class LearnerServerImpl final : public LearnerServer {
 public:
  static absl::StatusOr<std::unique_ptr<LearnerServer>> Create(const LearnerServerOptions& o) {
    if (!o.make_updater) return absl::InvalidArgumentError("learner: no model side configured");
    auto impl = std::unique_ptr<LearnerServerImpl>(new LearnerServerImpl());
    impl->leases_ = std::make_unique<LeaseTable>(o.leases);
    if (o.registry) impl->metrics_ = std::make_unique<LearnerMetrics>(*o.registry);
    SFPO_ASSIGN_OR_RETURN(std::unique_ptr<PolicyUpdater> updater, o.make_updater());
    SFPO_ASSIGN_OR_RETURN(impl->loop_,
                          LearnerLoop::Create(o.loop, std::move(updater), impl->leases_.get(),
                                              &impl->board_, impl->metrics_.get()));
    LearnerServiceOptions so;
    so.leases = impl->leases_.get();
    so.board = &impl->board_;
    LearnerLoop* loop = impl->loop_.get();
    so.done = [loop] { return loop->done(); };
    so.registry = o.registry;
    so.chunk_filter = o.chunk_filter;
    impl->service_ = std::make_unique<LearnerService>(so);
    // Restore and publish before serving, so the first subscriber gets the right version.
    SFPO_RETURN_IF_ERROR(impl->loop_->Start());
    GrpcServerOptions go;
    go.listen = o.listen;
    go.max_receive_message_bytes = o.max_receive_message_bytes;
    go.services = {impl->service_.get()};
    absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(go);
    if (!server.ok()) {
      impl->StopLoop(/*checkpoint=*/false);
      return server.status();
    }
    impl->server_ = std::move(*server);
    return std::unique_ptr<LearnerServer>(std::move(impl));
  }

  ~LearnerServerImpl() override {
    Shutdown(absl::ZeroDuration());
    Wait();
  }

  int port() const override { return server_->port(); }
  bool done() const override { return loop_->done(); }
  absl::Status WaitDone() override { return loop_->Wait(); }
  LedgerCounts ledger() const override { return leases_->counts(); }
  int64_t step() const override { return loop_->step(); }

  void Shutdown(absl::Duration grace) override {
    StopLoop();
    if (server_) server_->Shutdown(grace);
  }
  void Wait() override {
    if (server_) server_->Wait();
  }

 private:
  LearnerServerImpl() = default;
  void StopLoop(bool checkpoint = true) {
    loop_->RequestStop(checkpoint);
    (void)loop_->Wait();
    leases_->Close();
    board_.Close();
  }

  WeightBoard board_;
  std::unique_ptr<LeaseTable> leases_;
  std::unique_ptr<LearnerMetrics> metrics_;
  std::unique_ptr<LearnerLoop> loop_;
  std::unique_ptr<LearnerService> service_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LearnerServer>> StartLearnerServer(
    const LearnerServerOptions& options) {
  return LearnerServerImpl::Create(options);
}

}  // namespace sfpo
