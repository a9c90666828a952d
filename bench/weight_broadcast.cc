// Weight broadcast on loopback: one policy version of ~100M f32 parameters (400 MB) streamed
// by the learner's WatchWeights (manifest + 1 MiB chunks from one shared payload) to 1, 2 and
// 4 subscribers, each the worker's own gRPC client (own connection) assembling and verifying
// every tensor's XXH64. Compared, in the same run, with raw loopback TCP: plain sockets
// carrying the same bytes to the same number of receivers.
//
// SFPO_BENCH_WEIGHT_PARAMS overrides the parameter count (default 100000000),
// SFPO_BENCH_CHUNK_BYTES the chunk size (default 1 MiB, the learner's).
// Counters: GBps (bytes delivered to all subscribers per second), raw_GBps (the same for raw
// TCP with as many warm streams; for the broadcast, the median of the raw runs so far),
// fraction_of_raw (GBps / raw_GBps), and for the broadcast
// per_subscriber_GBps.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "common/allocator.h"
#include "common/grpc_server.h"
#include "common/weights_codec.h"
#include "services/learner/learner_service.h"
#include "services/learner/lease_table.h"
#include "services/learner/weight_board.h"
#include "services/rollout/clients.h"

namespace sfpo {
namespace {

// The learner's chunk size (PolicyUpdaterOptions::chunk_bytes); SFPO_BENCH_CHUNK_BYTES overrides.
uint32_t ChunkBytes() {
  const char* env = std::getenv("SFPO_BENCH_CHUNK_BYTES");
  return env != nullptr ? static_cast<uint32_t>(std::atoll(env)) : 1u << 20;
}
constexpr int64_t kTensorParams = 4 << 20;  // 16 MiB tensors, like a small model's matrices

int64_t Params() {
  const char* env = std::getenv("SFPO_BENCH_WEIGHT_PARAMS");
  return env != nullptr ? std::atoll(env) : 100'000'000;
}

// One version's payload with real (non-constant) bytes and a manifest; built once.
const PackedWeights& Payload() {
  static const PackedWeights* weights = [] {
    const int64_t params = Params();
    auto payload = std::make_shared<std::string>(static_cast<size_t>(params) * 4, '\0');
    uint32_t x = 2463534242u;
    for (size_t i = 0; i + 4 <= payload->size(); i += 4) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      std::memcpy(&(*payload)[i], &x, 4);
    }
    auto* w = new PackedWeights();
    w->manifest.chunk_bytes = ChunkBytes();
    uint64_t offset = 0;
    for (int64_t done = 0, i = 0; done < params; done += kTensorParams, ++i) {
      const int64_t n = std::min(kTensorParams, params - done);
      const uint64_t nbytes = static_cast<uint64_t>(n) * 4;
      w->manifest.tensors.push_back(
          WeightTensorInfo{absl::StrCat("model.layers.", i, ".weight"),
                           WireDType::kF32,
                           {n},
                           offset,
                           nbytes,
                           Checksum(absl::string_view(*payload).substr(offset, nbytes))});
      offset += nbytes;
    }
    w->manifest.total_bytes = offset;
    w->payload = std::move(payload);
    return w;
  }();
  return *weights;
}

PackedWeights Version(int64_t version) {
  PackedWeights w = Payload();
  w.manifest.version = version;
  return w;
}

// ---- Raw TCP: n sender threads write the payload, n receivers read it into their buffer. ----
// Like the broadcast, which is timed only once its streams are connected and have carried one
// version, the connections are made and carry the payload once (untimed) before the timed
// passes: the first pass over a fresh connection runs at a fraction of the warm speed here.

class RawTcp {
 public:
  explicit RawTcp(int streams) : streams_(streams) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listener, streams) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::abort();
    }
    for (int i = 0; i < streams; ++i) {
      senders_.push_back(socket(AF_INET, SOCK_STREAM, 0));
      if (connect(senders_[i], reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        std::abort();
      }
      receivers_.push_back(accept(listener, nullptr, nullptr));
    }
    close(listener);
    sinks_.assign(streams, std::string(Payload().payload->size(), '\0'));
    Pass();  // warm-up
  }
  ~RawTcp() {
    for (int i = 0; i < streams_; ++i) {
      close(senders_[i]);
      close(receivers_[i]);
    }
  }

  // Seconds for every stream to carry the payload once.
  double Pass() {
    const std::string& bytes = *Payload().payload;
    const absl::Time start = absl::Now();
    std::vector<std::thread> threads;
    for (int i = 0; i < streams_; ++i) {
      threads.emplace_back([&, i] {
        for (size_t off = 0; off < bytes.size();) {
          const ssize_t n = write(senders_[i], bytes.data() + off,
                                  std::min<size_t>(bytes.size() - off, 1u << 20));
          if (n <= 0) std::abort();
          off += static_cast<size_t>(n);
        }
      });
      threads.emplace_back([&, i] {
        for (size_t off = 0; off < bytes.size();) {
          const ssize_t n = read(receivers_[i], &sinks_[i][off],
                                 std::min<size_t>(bytes.size() - off, 256u << 10));
          if (n <= 0) std::abort();
          off += static_cast<size_t>(n);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    return absl::ToDoubleSeconds(absl::Now() - start);
  }

 private:
  int streams_;
  std::vector<int> senders_, receivers_;
  std::vector<std::string> sinks_;
};

absl::Mutex raw_mu;
// streams -> aggregate GB/s of every raw run so far (one per repetition)
std::map<int, std::vector<double>> raw_gbps ABSL_GUARDED_BY(raw_mu);

void BM_RawTcp(benchmark::State& state) {
  const int streams = static_cast<int>(state.range(0));
  const double bytes = static_cast<double>(Payload().payload->size()) * streams;
  RawTcp raw(streams);
  double total = 0;
  for (auto _ : state) {
    const double s = raw.Pass();
    state.SetIterationTime(s);
    total += s;
  }
  const double gbps = bytes * static_cast<double>(state.iterations()) / total / 1e9;
  {
    absl::MutexLock lock(&raw_mu);
    raw_gbps[streams].push_back(gbps);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["GBps"] = gbps;
}

// ---- The learner's WatchWeights to n worker clients. ----

void BM_WeightBroadcast(benchmark::State& state) {
  const int subscribers = static_cast<int>(state.range(0));
  LeaseTableOptions lo;
  lo.prompt_source = [](uint64_t c) { return PromptSpec{c, "t", "p", {1}, "a"}; };
  LeaseTable leases(lo);
  WeightBoard board;
  LearnerServiceOptions so;
  so.leases = &leases;
  so.board = &board;
  LearnerService service(so);
  GrpcServerOptions go;
  go.services = {&service};
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(go);
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  int64_t version = 0;
  board.Publish(Version(version));

  absl::Mutex mu;
  std::vector<int64_t> have(subscribers, -1);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < subscribers; ++i) {
    threads.emplace_back([&, i] {
      LearnerClientOptions co;
      co.target = (*server)->address();
      co.worker_id = absl::StrCat("bench-", i);
      std::shared_ptr<LearnerClient> client = MakeGrpcLearnerClient(co);
      absl::Status st = client->WatchWeights(
          -1,
          [&, i](PackedWeights w) {
            absl::MutexLock lock(&mu);
            have[i] = w.manifest.version;
          },
          stop);
      if (!st.ok()) failures++;
    });
  }
  auto all_have = [&](int64_t v) {
    absl::MutexLock lock(&mu);
    auto ready = [&] {
      for (int64_t h : have) {
        if (h < v) return false;
      }
      return true;
    };
    mu.Await(absl::Condition(&ready));
  };
  all_have(version);  // connected, first version received: not timed

  const double bytes = static_cast<double>(Payload().payload->size()) * subscribers;
  double total = 0;
  for (auto _ : state) {
    ++version;
    const absl::Time start = absl::Now();
    board.Publish(Version(version));
    all_have(version);
    const double s = absl::ToDoubleSeconds(absl::Now() - start);
    state.SetIterationTime(s);
    total += s;
  }
  stop = true;
  board.Close();
  for (std::thread& t : threads) t.join();
  (*server)->Shutdown(absl::Seconds(1));
  if (failures > 0) state.SkipWithError("a subscriber's stream failed");

  const double gbps = bytes * static_cast<double>(state.iterations()) / total / 1e9;
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["GBps"] = gbps;
  state.counters["per_subscriber_GBps"] = gbps / subscribers;
  double raw;
  {
    absl::MutexLock lock(&raw_mu);
    // The median of the raw runs (repetitions): one raw pass varies by +-20% here.
    std::vector<double> runs = raw_gbps[subscribers];
    std::sort(runs.begin(), runs.end());
    raw = runs.empty() ? 0 : runs[runs.size() / 2];
  }
  if (raw == 0) {  // filtered out: measure now
    RawTcp tcp(subscribers);
    raw = bytes / tcp.Pass() / 1e9;
  }
  state.counters["raw_GBps"] = raw;
  state.counters["fraction_of_raw"] = gbps / raw;
}

BENCHMARK(BM_RawTcp)->Arg(1)->Arg(2)->Arg(4)->Iterations(3)->UseManualTime()->Unit(
    benchmark::kMillisecond);
BENCHMARK(BM_WeightBroadcast)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sfpo

// As every sfpo process does (cli/main.cc): the allocator keeps freed buffers.
int main(int argc, char** argv) {
  sfpo::KeepFreedMemory();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
