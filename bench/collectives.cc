// The learner's gradient reduction on Gloo, ranks as threads on loopback: ReduceScatterSum
// (an all-to-all plus a local sum: each rank sends and receives (N-1)/N of the buffer) against
// AllReduceSum of the same buffer (the reduction it replaced: a ring all-reduce moves twice
// that), 25 MiB of float32 (learner.bucket_mb's default) per call, 2 and 3 ranks.
// SFPO_BENCH_COLLECTIVE_MB overrides the buffer size. Time is rank 0's, per call, each call
// started after a barrier.
#include <torch/torch.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "tests/services/learner/distributed/rank_threads.h"

namespace sfpo {
namespace {

constexpr int kWarmup = 2;
constexpr int kCalls = 10;

int64_t BufferElements() {
  const char* env = std::getenv("SFPO_BENCH_COLLECTIVE_MB");
  const int64_t mb = env != nullptr ? std::atoll(env) : 25;
  return mb * (int64_t{1} << 20) / 4;
}

void BM_GradientReduction(benchmark::State& state) {
  const int world = static_cast<int>(state.range(0));
  const bool reduce_scatter = state.range(1) != 0;
  const int64_t n = BufferElements() / world * world;
  std::vector<double> seconds;
  const std::vector<absl::Status> st =
      testing::RunGlooRanks(world, [&](int rank, Collectives* c) -> absl::Status {
        torch::set_num_threads(1);
        torch::Tensor full = torch::randn({n});
        torch::Tensor shard = torch::empty({n / world});
        for (int i = 0; i < kWarmup + kCalls; ++i) {
          absl::Status barrier = c->Barrier();
          if (!barrier.ok()) return barrier;
          const auto start = std::chrono::steady_clock::now();
          absl::Status s =
              reduce_scatter ? c->ReduceScatterSum(full, shard) : c->AllReduceSum(full);
          if (!s.ok()) return s;
          const double t =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if (rank == 0 && i >= kWarmup) seconds.push_back(t);
        }
        return absl::OkStatus();
      });
  for (const absl::Status& s : st) {
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  size_t i = 0;
  for (auto _ : state) state.SetIterationTime(seconds[i++ % seconds.size()]);
  state.SetBytesProcessed(state.iterations() * n * 4);
  state.counters["MB"] = static_cast<double>(n) * 4 / (1 << 20);
}
BENCHMARK(BM_GradientReduction)
    ->ArgNames({"ranks", "reduce_scatter"})
    ->ArgsProduct({{2, 3}, {0, 1}})
    ->Iterations(kCalls)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sfpo

BENCHMARK_MAIN();
