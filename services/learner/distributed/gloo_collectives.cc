#include "services/learner/distributed/gloo_collectives.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "common/torch_util.h"

namespace sfpo {
namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Millis(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

c10::intrusive_ptr<c10d::TCPStore> ConnectStore(const std::string& host, int port, bool server,
                                                absl::Duration timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(port);
  o.isServer = server;
  o.waitWorkers = false;
  o.timeout = Millis(timeout);
  return c10::make_intrusive<c10d::TCPStore>(host, o);
}

class TcpRendezvousServer final : public RendezvousServer {
 public:
  explicit TcpRendezvousServer(c10::intrusive_ptr<c10d::TCPStore> store)
      : store_(std::move(store)) {}
  int port() const override { return store_->getPort(); }

 private:
  c10::intrusive_ptr<c10d::TCPStore> store_;
};

std::string HeartbeatKey(int rank) { return absl::StrCat("sfpo/heartbeat/", rank); }

// A rank's heartbeat value: "<collectives entered>:<beats>".
struct Beat {
  bool present = false;
  int64_t ops = 0, beats = 0;
};

class GlooCollectives final : public Collectives {
 public:
  GlooCollectives(const GlooOptions& o, c10::intrusive_ptr<c10d::TCPStore> store,
                  c10::intrusive_ptr<c10d::TCPStore> heartbeat_store,
                  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg)
      : rank_(o.rank),
        world_size_(o.world_size),
        timeout_(o.timeout),
        interval_(o.heartbeat_interval),
        store_(std::move(store)),
        heartbeat_store_(std::move(heartbeat_store)),
        pg_(std::move(pg)) {
    // The first beat is written before the constructor returns, so a rank that joined is
    // never reported as absent.
    absl::Status first = WriteBeat(0);
    if (!first.ok()) broken_ = first;
    heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  }

  ~GlooCollectives() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    heartbeat_.join();
    // The process group (and its Gloo threads) goes first, then the stores.
    absl::Status ignored = TorchCall([&] { pg_.reset(); });
    ignored = TorchCall([&] {
      heartbeat_store_.reset();
      store_.reset();
    });
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    const int64_t bytes = tensor.numel() * tensor.element_size();
    return Run("all_reduce", bytes, /*all_reduce=*/true, [&] {
      std::vector<at::Tensor> t{tensor};
      c10d::AllreduceOptions o;
      o.timeout = Millis(timeout_);
      return pg_->allreduce(t, o);
    });
  }

  absl::Status AllGather(const at::Tensor& shard, at::Tensor& full) override {
    const int64_t n = shard.numel();
    if (full.numel() != n * world_size_ || full.scalar_type() != shard.scalar_type()) {
      return absl::InvalidArgumentError(
          absl::StrCat("all_gather: output has ", full.numel(), " elements of ",
                       c10::toString(full.scalar_type()), ", expected ", n * world_size_, " of ",
                       c10::toString(shard.scalar_type())));
    }
    return Run("all_gather", full.numel() * full.element_size(), false, [&] {
      std::vector<at::Tensor> in{shard.view({-1})};
      std::vector<std::vector<at::Tensor>> out(1);
      const at::Tensor flat = full.view({-1});
      for (int r = 0; r < world_size_; ++r) out[0].push_back(flat.narrow(0, r * n, n));
      c10d::AllgatherOptions o;
      o.timeout = Millis(timeout_);
      return pg_->allgather(out, in, o);
    });
  }

  absl::Status ReduceScatterSum(at::Tensor& full, at::Tensor& shard) override {
    absl::StatusOr<std::unique_ptr<PendingCollective>> pending = StartReduceScatterSum(full, shard);
    if (!pending.ok()) return pending.status();
    return (*pending)->Wait();
  }

  // Gloo in LibTorch 1.13 has no reduce_scatter. An all-to-all hands each rank its slice of
  // every rank's buffer ((N-1)/N of the bytes each way: half of what a ring all-reduce moves),
  // and Wait() sums the N slices in rank order.
  absl::StatusOr<std::unique_ptr<PendingCollective>> StartReduceScatterSum(
      at::Tensor& full, at::Tensor& shard) override {
    const int64_t n = shard.numel();
    if (full.numel() != n * world_size_ || full.scalar_type() != shard.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat("reduce_scatter: input has ", full.numel(),
                                                     " elements, expected ", n * world_size_));
    }
    auto pending = std::make_unique<PendingScatter>(this, shard);
    SFPO_RETURN_IF_ERROR(TorchCall([&] { pending->received = TakeBuffer(full); }));
    SFPO_ASSIGN_OR_RETURN(
        pending->launched,
        Start("reduce_scatter", full.numel() * full.element_size(), /*all_reduce=*/true, [&] {
          at::Tensor in = full.view({-1});
          std::vector<int64_t> equal_splits;
          c10d::AllToAllOptions o;
          o.timeout = Millis(timeout_);
          return pg_->alltoall_base(pending->received, in, equal_splits, equal_splits, o);
        }));
    return std::unique_ptr<PendingCollective>(std::move(pending));
  }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    if (root < 0 || root >= world_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("broadcast from rank ", root, " of ", world_size_));
    }
    return Run("broadcast", tensor.numel() * tensor.element_size(), false, [&] {
      std::vector<at::Tensor> t{tensor};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.timeout = Millis(timeout_);
      return pg_->broadcast(t, o);
    });
  }

  absl::Status Barrier() override {
    return Run("barrier", 0, false, [&] {
      c10d::BarrierOptions o;
      o.timeout = Millis(timeout_);
      return pg_->barrier(o);
    });
  }

  absl::Status BroadcastMessage(std::string* message, int root, absl::Duration wait) override {
    if (!broken_.ok()) return broken_;
    if (root < 0 || root >= world_size_) {
      return absl::InvalidArgumentError(absl::StrCat("message from rank ", root));
    }
    // Through the store: a key per message; the root drops the one before the previous (every
    // rank has read it, having taken part in the collectives since).
    const int64_t seq = ++messages_;
    const std::string key = absl::StrCat("sfpo/message/", seq);
    absl::Status st;
    if (rank_ == root) {
      st = TorchCall([&] {
        store_->set(key, std::vector<uint8_t>(message->begin(), message->end()));
        if (seq > 2) store_->deleteKey(absl::StrCat("sfpo/message/", seq - 2));
      });
    } else {
      st = TorchCall([&] {
        store_->wait({key}, Millis(wait));
        const std::vector<uint8_t> v = store_->get(key);
        message->assign(v.begin(), v.end());
      });
    }
    if (!st.ok()) {
      broken_ = absl::UnavailableError(absl::StrCat(
          "rank ", rank_, ": message #", seq, " from rank ", root, " failed (rank ", root,
          rank_ == root ? "" : " down, or silent longer than the wait", "): ", st.message()));
    }
    return broken_;
  }

  CollectiveStats stats() const override { return stats_; }

 private:
  absl::Duration Interval() const {
    if (interval_ > absl::ZeroDuration()) return interval_;
    return std::min(absl::Seconds(1), timeout_ / 10);
  }

  // A launched c10d operation and what its Finish() needs to account for it.
  struct Launched {
    const char* what = "";
    int64_t op = 0, bytes = 0;
    bool all_reduce = false;
    double seconds = 0;  // spent in this rank's calls so far (launching, then waiting)
    c10::intrusive_ptr<c10d::Work> work;
  };

  // A started reduce-scatter: the all-to-all's receive buffer, and the shard to sum it into.
  class PendingScatter final : public PendingCollective {
   public:
    PendingScatter(GlooCollectives* owner, at::Tensor shard)
        : owner_(owner), shard_(std::move(shard)) {}
    ~PendingScatter() override {
      if (!done_) absl::Status ignored = Wait();
    }
    absl::Status Wait() override {
      if (done_) return absl::FailedPreconditionError("reduce_scatter: waited for twice");
      done_ = true;
      absl::Status st = owner_->Finish(launched);
      if (st.ok()) {
        st = TorchCall([&] {
          const int64_t n = shard_.numel();
          at::Tensor out = shard_.view({-1});
          out.copy_(received.narrow(0, 0, n));
          for (int r = 1; r < owner_->world_size_; ++r) out.add_(received.narrow(0, r * n, n));
        });
      }
      owner_->free_buffers_.push_back(std::move(received));
      return st;
    }

    Launched launched;
    at::Tensor received;

   private:
    GlooCollectives* owner_;
    at::Tensor shard_;
    bool done_ = false;
  };

  // A receive buffer shaped like `full`: a free one of that size and dtype, or a new one.
  at::Tensor TakeBuffer(const at::Tensor& full) {
    for (size_t i = 0; i < free_buffers_.size(); ++i) {
      const at::Tensor& b = free_buffers_[i];
      if (b.numel() == full.numel() && b.scalar_type() == full.scalar_type()) {
        at::Tensor out = std::move(free_buffers_[i]);
        free_buffers_.erase(free_buffers_.begin() + i);
        return out;
      }
    }
    if (free_buffers_.size() > 8) free_buffers_.erase(free_buffers_.begin());
    return at::empty({full.numel()}, full.options());
  }

  // Launches one c10d operation (counted as collective #op). A launch that fails breaks the
  // group like a failed collective.
  template <typename Launch>
  absl::StatusOr<Launched> Start(const char* what, int64_t bytes, bool all_reduce,
                                 Launch&& launch) {
    if (!broken_.ok()) return broken_;
    Launched l;
    l.what = what;
    l.op = ops_.fetch_add(1) + 1;
    l.bytes = bytes;
    l.all_reduce = all_reduce;
    const Clock::time_point start = Clock::now();
    absl::Status st = TorchCall([&] { l.work = launch(); });
    l.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!st.ok()) return Fail(l, false, st);
    return l;
  }

  // Waits for `l` (up to the collective timeout) and accounts for it in the stats: the seconds
  // are those this rank spent in the calls, not the time the operation overlapped other work.
  absl::Status Finish(Launched& l) {
    if (!broken_.ok()) return broken_;
    const Clock::time_point start = Clock::now();
    bool timed_out = false;
    absl::Status st = TorchCall([&] {
      if (!l.work->wait(Millis(timeout_))) timed_out = true;
    });
    l.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    stats_.calls += 1;
    stats_.bytes += l.bytes;
    stats_.seconds += l.seconds;
    if (l.all_reduce) {
      stats_.all_reduce_calls += 1;
      stats_.all_reduce_bytes += l.bytes;
      stats_.all_reduce_seconds += l.seconds;
    }
    if (st.ok() && !timed_out) return absl::OkStatus();
    return Fail(l, timed_out, st);
  }

  template <typename Launch>
  absl::Status Run(const char* what, int64_t bytes, bool all_reduce, Launch&& launch) {
    absl::StatusOr<Launched> l = Start(what, bytes, all_reduce, std::forward<Launch>(launch));
    if (!l.ok()) return l.status();
    return Finish(*l);
  }

  // Breaks the group with an error naming the operation and the ranks to blame.
  absl::Status Fail(const Launched& l, bool timed_out, const absl::Status& st) {
    const std::string cause = timed_out ? "timed out" : std::string(st.message());
    const bool deadline =
        timed_out || absl::StrContains(cause, "imed out") || absl::StrContains(cause, "imeout");
    broken_ = absl::Status(
        deadline ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable,
        absl::StrCat(l.what, " (collective #", l.op, ") failed on rank ", rank_, " of ",
                     world_size_, " after ", absl::FormatDuration(absl::Seconds(l.seconds)), ": ",
                     Diagnose(l.op), " [", cause, "]"));
    return broken_;
  }

  // Reads every other rank's heartbeat twice, a few intervals apart. Returns a sentence naming
  // the ranks that died, never joined or lag behind collective `op`.
  std::string Diagnose(int64_t op) {
    auto read = [&](std::vector<Beat>* beats) -> absl::Status {
      return TorchCall([&] {
        beats->assign(world_size_, Beat{});
        for (int r = 0; r < world_size_; ++r) {
          if (!store_->check({HeartbeatKey(r)})) continue;
          const std::vector<uint8_t> v = store_->get(HeartbeatKey(r));
          std::vector<std::string> parts = absl::StrSplit(std::string(v.begin(), v.end()), ':');
          Beat& b = (*beats)[r];
          b.present = parts.size() == 2 && absl::SimpleAtoi(parts[0], &b.ops) &&
                      absl::SimpleAtoi(parts[1], &b.beats);
        }
      });
    };
    // A rank whose beat does not move for a while is dead. The wait ends as soon as every
    // other rank's beat has moved, else after 2.5 intervals or a second, whichever is longer, so
    // that a live rank starved of CPU on a loaded machine is not taken for dead.
    std::vector<Beat> first, second;
    if (!read(&first).ok()) {
      return "the rendezvous store (hosted by rank 0) is unreachable: rank 0 is down";
    }
    const absl::Time until = absl::Now() + std::max(Interval() * 2.5, absl::Seconds(1));
    for (;;) {
      absl::SleepFor(std::min(Interval(), absl::Milliseconds(100)));
      if (!read(&second).ok()) {
        return "the rendezvous store (hosted by rank 0) is unreachable: rank 0 is down";
      }
      bool all_moved = true;
      for (int r = 0; r < world_size_; ++r) {
        if (r != rank_ && (!second[r].present || second[r].beats == first[r].beats)) {
          all_moved = false;
        }
      }
      if (all_moved || absl::Now() >= until) break;
    }
    std::vector<std::string> dead, absent, lagging;
    for (int r = 0; r < world_size_; ++r) {
      if (r == rank_) continue;
      if (!second[r].present) {
        absent.push_back(absl::StrCat("rank ", r));
      } else if (second[r].beats == first[r].beats) {
        dead.push_back(absl::StrCat("rank ", r));
      } else if (second[r].ops < op) {
        lagging.push_back(absl::StrCat("rank ", r, " (at collective #", second[r].ops, ")"));
      }
    }
    std::vector<std::string> out;
    if (!dead.empty()) {
      out.push_back(absl::StrCat(absl::StrJoin(dead, ", "), " stopped responding (no heartbeat)"));
    }
    if (!absent.empty()) out.push_back(absl::StrCat(absl::StrJoin(absent, ", "), " never joined"));
    if (!lagging.empty()) {
      out.push_back(absl::StrCat(absl::StrJoin(lagging, ", "), " did not reach this collective"));
    }
    if (out.empty()) return "every other rank is alive and reached this collective";
    return absl::StrJoin(out, "; ");
  }

  absl::Status WriteBeat(int64_t beats) {
    const std::string value = absl::StrCat(ops_.load(), ":", beats);
    return TorchCall([&] {
      heartbeat_store_->set(HeartbeatKey(rank_), std::vector<uint8_t>(value.begin(), value.end()));
    });
  }

  void HeartbeatLoop() {
    int64_t beats = 0;
    absl::MutexLock lock(&mu_);
    while (!stop_) {
      mu_.AwaitWithTimeout(absl::Condition(&stop_), Interval());
      if (stop_) return;
      if (!WriteBeat(++beats).ok()) return;  // the store is gone; collectives will report it
    }
  }

  const int rank_, world_size_;
  const absl::Duration timeout_, interval_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::TCPStore> heartbeat_store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::atomic<int64_t> ops_{0};
  std::vector<at::Tensor> free_buffers_;  // receive buffers of finished reduce-scatters
  int64_t messages_ = 0;
  absl::Status broken_;
  CollectiveStats stats_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread heartbeat_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RendezvousServer>> RendezvousServer::Start(int port,
                                                                          absl::Duration timeout) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("rendezvous port ", port, " out of range"));
  }
  c10::intrusive_ptr<c10d::TCPStore> store;
  absl::Status st = TorchCall([&] { store = ConnectStore("127.0.0.1", port, true, timeout); });
  if (!st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot start the rendezvous store on port ", port, ": ", st.message()));
  }
  return std::unique_ptr<RendezvousServer>(new TcpRendezvousServer(std::move(store)));
}

absl::StatusOr<std::unique_ptr<Collectives>> CreateGlooCollectives(const GlooOptions& o) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", o.rank, " is not in a world of size ", o.world_size));
  }
  if (!o.host_store && (o.store_port <= 0 || o.store_port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous port ", o.store_port, " out of range (1..65535)"));
  }
  if (o.timeout < absl::Seconds(1)) {
    // c10d's store client counts its connect timeout in whole seconds.
    return absl::InvalidArgumentError("the collective timeout must be at least one second");
  }
  c10::intrusive_ptr<c10d::TCPStore> store, heartbeat_store;
  absl::Status st = TorchCall([&] {
    store = ConnectStore(o.store_host, o.store_port, o.host_store, o.timeout);
    heartbeat_store = ConnectStore(o.store_host, store->getPort(), false, o.timeout);
  });
  if (!st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("rank ", o.rank, ": cannot reach the rendezvous store at ", o.store_host, ":",
                     o.store_port, ": ", st.message()));
  }
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  st = TorchCall([&] {
    auto opts = c10d::ProcessGroupGloo::Options::create(Millis(o.timeout));
    opts->devices.push_back(o.device_host.empty()
                                ? c10d::ProcessGroupGloo::createDefaultDevice()
                                : c10d::ProcessGroupGloo::createDeviceForHostname(o.device_host));
    opts->threads = 1;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("sfpo/gloo", store);
    pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, o.rank, o.world_size, opts);
  });
  if (!st.ok()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "rank ", o.rank, " of ", o.world_size, ": the process group did not form within ",
        absl::FormatDuration(o.timeout), " (is every rank started?): ", st.message()));
  }
  return std::unique_ptr<Collectives>(
      new GlooCollectives(o, std::move(store), std::move(heartbeat_store), std::move(pg)));
}

}  // namespace sfpo
