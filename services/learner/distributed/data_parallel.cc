#include "services/learner/distributed/data_parallel.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "services/learner/algorithm/torch_guard.h"

namespace sfpo {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

ShardLayout ShardLayout::Make(int64_t total, int64_t bucket_elements, int world_size, int rank) {
  ShardLayout l;
  l.world_size = world_size;
  l.rank = rank;
  l.total = total;
  const int64_t per_bucket =
      CeilDiv(std::max<int64_t>(1, bucket_elements), world_size) * world_size;
  l.bucket_elements = per_bucket;
  for (int64_t start = 0; start < total; start += per_bucket) {
    Bucket b;
    b.start = start;
    b.length = std::min(per_bucket, total - start);
    b.chunk = CeilDiv(b.length, world_size);
    b.shard_offset = l.shard_size;
    l.shard_size += b.chunk;
    l.buckets.push_back(b);
  }
  return l;
}

std::pair<int64_t, int64_t> ShardLayout::Owned(const Bucket& b) const {
  const int64_t begin = b.start + std::min(b.length, rank * b.chunk);
  const int64_t end = b.start + std::min(b.length, (rank + 1) * b.chunk);
  return {begin, end};
}

absl::StatusOr<at::Tensor> ConsolidateShards(const std::vector<at::Tensor>& shards, int64_t total,
                                             int64_t bucket_elements) {
  const int world = static_cast<int>(shards.size());
  if (world < 1) return absl::InvalidArgumentError("no shards to consolidate");
  at::Tensor full;
  SFPO_RETURN_IF_ERROR(GuardTorch("consolidate shards", [&]() -> absl::Status {
    full = torch::zeros({total}, shards[0].options());
    for (int r = 0; r < world; ++r) {
      const ShardLayout l = ShardLayout::Make(total, bucket_elements, world, r);
      const at::Tensor shard = shards[r].reshape({-1});
      if (shard.numel() != l.shard_size) {
        return absl::InvalidArgumentError(absl::StrCat("shard of rank ", r, " of ", world, " has ",
                                                       shard.numel(), " elements, expected ",
                                                       l.shard_size));
      }
      for (const ShardLayout::Bucket& b : l.buckets) {
        const auto [begin, end] = l.Owned(b);
        if (end > begin) {
          full.narrow(0, begin, end - begin).copy_(shard.narrow(0, b.shard_offset, end - begin));
        }
      }
    }
    return absl::OkStatus();
  }));
  return full;
}

namespace {

// Runs `on_final` after autograd has accumulated a parameter's gradient (a post hook on its
// AccumulateGrad node), i.e. once per backward pass that reaches the parameter.
class GradientFinalHook final : public torch::autograd::FunctionPostHook {
 public:
  explicit GradientFinalHook(std::function<void()> on_final) : on_final_(std::move(on_final)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    on_final_();
    return outputs;
  }

 private:
  std::function<void()> on_final_;
};

}  // namespace

struct DataParallelUpdater::Impl {
  ~Impl() {
    for (size_t i = 0; i < accumulators.size(); ++i) accumulators[i]->del_post_hook(hook_keys[i]);
  }

  std::vector<at::Tensor> params;
  std::vector<at::Tensor> flat;  // params[i].detach().view(-1): same storage, no autograd
  std::vector<int64_t> offsets;  // flat offset of each parameter
  Collectives* coll = nullptr;
  DataParallelOptions options;
  ShardLayout layout;
  at::Tensor param_shard, grad_shard, exp_avg, exp_avg_sq, theta0;  // [shard_size]
  at::Tensor buffer;                                                // one bucket, padded
  int64_t adam_step = 0;
  std::vector<double> row_tokens;  // response tokens per row of the current batch
  double local_entropy = std::numeric_limits<double>::quiet_NaN();  // of the last pass

  // f(parameter, offset in it, flat offset, length) for every piece of [begin, end).
  template <typename F>
  void ForSegments(int64_t begin, int64_t end, F&& f) const {
    size_t i = std::upper_bound(offsets.begin(), offsets.end(), begin) - offsets.begin();
    i = i == 0 ? 0 : i - 1;
    for (; i < flat.size() && offsets[i] < end; ++i) {
      const int64_t s = std::max(begin, offsets[i]);
      const int64_t e = std::min(end, offsets[i] + flat[i].numel());
      if (e > s) f(i, s - offsets[i], s, e - s);
    }
  }

  at::Tensor Buffer(const ShardLayout::Bucket& b) const {
    return buffer.narrow(0, 0, b.chunk * layout.world_size);
  }

  // buf <- the parameters (or their gradients) over bucket b; padding and missing grads zero.
  void Fill(const ShardLayout::Bucket& b, at::Tensor& buf, bool grads) const {
    buf.zero_();
    ForSegments(b.start, b.start + b.length, [&](size_t i, int64_t off, int64_t at, int64_t n) {
      if (grads) {
        const at::Tensor& g = params[i].grad();
        if (!g.defined()) return;
        buf.narrow(0, at - b.start, n).copy_(g.reshape({-1}).narrow(0, off, n));
      } else {
        buf.narrow(0, at - b.start, n).copy_(flat[i].narrow(0, off, n));
      }
    });
  }

  void ScatterToParams(const ShardLayout::Bucket& b, const at::Tensor& buf) {
    ForSegments(b.start, b.start + b.length, [&](size_t i, int64_t off, int64_t at, int64_t n) {
      flat[i].narrow(0, off, n).copy_(buf.narrow(0, at - b.start, n));
    });
  }

  absl::Status BroadcastParams() {
    for (const ShardLayout::Bucket& b : layout.buckets) {
      at::Tensor buf = Buffer(b);
      SFPO_RETURN_IF_ERROR(GuardTorch("broadcast parameters", [&] {
        Fill(b, buf, false);
        return absl::OkStatus();
      }));
      SFPO_RETURN_IF_ERROR(coll->Broadcast(buf, 0));
      SFPO_RETURN_IF_ERROR(GuardTorch("broadcast parameters", [&] {
        ScatterToParams(b, buf);
        return absl::OkStatus();
      }));
    }
    return absl::OkStatus();
  }

  void SyncShard() {
    param_shard.zero_();
    for (const ShardLayout::Bucket& b : layout.buckets) {
      const auto [begin, end] = layout.Owned(b);
      ForSegments(begin, end, [&](size_t i, int64_t off, int64_t at, int64_t n) {
        param_shard.narrow(0, b.shard_offset + at - begin, n).copy_(flat[i].narrow(0, off, n));
      });
    }
  }

  absl::Status GatherParameters() {
    for (const ShardLayout::Bucket& b : layout.buckets) {
      at::Tensor buf = Buffer(b);
      const at::Tensor chunk = param_shard.narrow(0, b.shard_offset, b.chunk);
      SFPO_RETURN_IF_ERROR(coll->AllGather(chunk, buf));
      SFPO_RETURN_IF_ERROR(GuardTorch("parameter bucket", [&] {
        ScatterToParams(b, buf);
        return absl::OkStatus();
      }));
    }
    return absl::OkStatus();
  }

  // Sum over ranks of per-rank values (double).
  absl::Status SumOverRanks(std::vector<double>* values) {
    at::Tensor t;
    SFPO_RETURN_IF_ERROR(GuardTorch("sum over ranks", [&] {
      t = torch::tensor(*values, torch::kFloat64);
      return absl::OkStatus();
    }));
    SFPO_RETURN_IF_ERROR(coll->AllReduceSum(t));
    const double* p = t.data_ptr<double>();
    values->assign(p, p + values->size());
    return absl::OkStatus();
  }

  // ||x|| over all ranks' shards, for a [shard_size] tensor.
  absl::StatusOr<double> GlobalNorm(const at::Tensor& x) {
    std::vector<double> sq(1);
    SFPO_RETURN_IF_ERROR(GuardTorch("norm", [&] {
      const double n = x.norm().item<double>();
      sq[0] = n * n;
      return absl::OkStatus();
    }));
    SFPO_RETURN_IF_ERROR(SumOverRanks(&sq));
    return std::sqrt(sq[0]);
  }

  // ||theta - theta_0|| over all ranks' shards.
  absl::StatusOr<double> DistanceToSaved() {
    std::vector<double> sq(1);
    SFPO_RETURN_IF_ERROR(GuardTorch("distance", [&] {
      at::Tensor scratch;
      sq[0] = SquaredDistance(param_shard, theta0, &scratch);
      return absl::OkStatus();
    }));
    SFPO_RETURN_IF_ERROR(SumOverRanks(&sq));
    return std::sqrt(sq[0]);
  }

  // LibTorch 1.13's torch::optim::AdamW::step, elementwise on this rank's shard.
  void AdamWStep(double lr) {
    const double beta1 = options.adam.beta1, beta2 = options.adam.beta2;
    if (options.adam.weight_decay != 0) param_shard.mul_(1 - lr * options.adam.weight_decay);
    ++adam_step;
    const double bias_correction1 = 1 - std::pow(beta1, adam_step);
    const double bias_correction2 = 1 - std::pow(beta2, adam_step);
    exp_avg.mul_(beta1).add_(grad_shard, 1 - beta1);
    exp_avg_sq.mul_(beta2).addcmul_(grad_shard, grad_shard, 1 - beta2);
    const at::Tensor denom =
        (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(options.adam.eps);
    const double step_size = lr / bias_correction1;
    param_shard.addcdiv_(exp_avg, denom, -step_size);
  }

  // ---- Gradient reduction, overlapped with the last backward pass of each mini-batch ----
  // Buckets are reduced in descending order (roughly the order backward makes them final),
  // the same order on every rank whatever the timing: a bucket whose gradients are final waits
  // for the buckets above it. At most kMaxInFlight reductions run at once, each with its own
  // bucket buffer.
  static constexpr size_t kMaxInFlight = 2;
  struct InFlight {
    std::unique_ptr<PendingCollective> op;
    at::Tensor buffer;
  };
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // keep the hooks alive
  std::vector<uintptr_t> hook_keys;
  std::vector<std::vector<int>> param_buckets;  // buckets each parameter has elements in
  std::vector<int> bucket_params;               // parameters with elements in each bucket
  std::vector<int> waiting;    // of those, not final yet in the armed backward pass
  int next_launch = -1;        // the next bucket to reduce (descending); -1: all launched
  bool armed = false;          // the backward pass under way is a mini-batch's last
  absl::Status reduce_status;  // the first error of a reduction started during backward
  std::deque<InFlight> in_flight;
  std::vector<at::Tensor> spare;   // bucket buffers of finished reductions
  int64_t buckets_overlapped = 0;  // reductions started from inside a backward pass

  void Arm() {
    waiting = bucket_params;
    next_launch = static_cast<int>(layout.buckets.size()) - 1;
    reduce_status = absl::OkStatus();
    armed = true;
  }

  // Autograd calls this once parameter i's gradient is final (after its accumulation).
  void OnGradientFinal(size_t i) {
    if (!armed || !reduce_status.ok()) return;
    for (int b : param_buckets[i]) --waiting[b];
    reduce_status = LaunchReady(/*all=*/false);
  }

  absl::Status LaunchReady(bool all) {
    while (next_launch >= 0 && (all || waiting[next_launch] <= 0)) {
      SFPO_RETURN_IF_ERROR(Launch(layout.buckets[next_launch]));
      --next_launch;
      if (!all) ++buckets_overlapped;
    }
    return absl::OkStatus();
  }

  absl::Status Launch(const ShardLayout::Bucket& b) {
    if (in_flight.size() >= kMaxInFlight) SFPO_RETURN_IF_ERROR(WaitOldest());
    at::Tensor buffer, full;
    SFPO_RETURN_IF_ERROR(GuardTorch("gradient bucket", [&] {
      if (spare.empty()) {
        buffer = torch::empty_like(this->buffer);
      } else {
        buffer = std::move(spare.back());
        spare.pop_back();
      }
      full = buffer.narrow(0, 0, b.chunk * layout.world_size);
      Fill(b, full, true);
      return absl::OkStatus();
    }));
    at::Tensor chunk = grad_shard.narrow(0, b.shard_offset, b.chunk);
    absl::StatusOr<std::unique_ptr<PendingCollective>> op =
        coll->StartReduceScatterSum(full, chunk);
    if (!op.ok()) {
      spare.push_back(std::move(buffer));
      return op.status();
    }
    in_flight.push_back(InFlight{*std::move(op), std::move(buffer)});
    return absl::OkStatus();
  }

  absl::Status WaitOldest() {
    InFlight f = std::move(in_flight.front());
    in_flight.pop_front();
    absl::Status st = f.op->Wait();
    spare.push_back(std::move(f.buffer));
    return st;
  }

  // After a mini-batch's backward: reduces the buckets not reduced yet (all of them when the
  // reduction was not armed), then waits for every reduction. Always leaves none in flight.
  absl::Status ReduceGradients() {
    if (!armed) next_launch = static_cast<int>(layout.buckets.size()) - 1;
    armed = false;
    absl::Status st = reduce_status;
    if (st.ok()) st = LaunchReady(/*all=*/true);
    while (!in_flight.empty()) {
      absl::Status w = WaitOldest();
      if (st.ok()) st = w;
    }
    return st;
  }

  // One update pass; this rank computes on its share of every mini-batch's groups.
  absl::StatusOr<PassStats> RunPass(const PolicyFn& policy, const RolloutBatch& batch,
                                    const std::vector<int64_t>& order, const UpdateOptions& update,
                                    double lr) {
    const int64_t g = batch.group_size;
    const int n = layout.world_size, r = layout.rank;
    PassAccumulator acc;
    for (const MiniBatch& mb : PlanPass(batch, order, update)) {
      if (mb.micro_batches.empty()) continue;  // as one rank: no tokens, no optimizer step
      const int64_t groups = static_cast<int64_t>(mb.rows.size()) / g;
      const int64_t g0 = groups * r / n, g1 = groups * (r + 1) / n;
      MiniBatch local;
      local.rows.assign(mb.rows.begin() + g0 * g, mb.rows.begin() + g1 * g);
      local.micro_batches = PackMicroBatches(local.rows, batch.lengths, update.micro_batch_tokens);
      std::vector<double> totals(2, 0.0);  // tokens, sequences with tokens
      for (int64_t row : local.rows) {
        totals[0] += row_tokens[row];
        if (row_tokens[row] > 0) totals[1] += 1;
      }
      SFPO_RETURN_IF_ERROR(SumOverRanks(&totals));
      local.total_tokens = totals[0];
      local.total_sequences = totals[1];
      if (!local.micro_batches.empty()) {
        std::function<void()> arm = nullptr;
        if (options.overlap_reduce) arm = [this] { Arm(); };
        absl::Status st =
            AccumulateMiniBatchGradients(policy, params, batch, local, update, &acc, arm);
        if (!st.ok()) {
          armed = false;
          while (!in_flight.empty()) absl::Status ignored = WaitOldest();
          return st;
        }
      } else {
        for (const at::Tensor& p : params) {
          if (p.grad().defined()) const_cast<at::Tensor&>(p).mutable_grad().reset();
        }
      }
      SFPO_RETURN_IF_ERROR(ReduceGradients());
      SFPO_ASSIGN_OR_RETURN(const double norm, GlobalNorm(grad_shard));
      SFPO_RETURN_IF_ERROR(GuardTorch("optimizer step", [&] {
        torch::NoGradGuard no_grad;
        if (update.grad_clip > 0) {
          const double coef = update.grad_clip / (norm + 1e-6);
          if (coef < 1) grad_shard.mul_(coef);
        }
        AdamWStep(lr);
        return absl::OkStatus();
      }));
      SFPO_RETURN_IF_ERROR(GatherParameters());
      acc.grad_norm_sum += norm;
      acc.grad_norm_max = std::max(acc.grad_norm_max, norm);
      ++acc.optimizer_steps;
    }
    local_entropy =
        acc.tokens > 0 ? acc.entropy / acc.tokens : std::numeric_limits<double>::quiet_NaN();
    std::vector<double> sums = {
        acc.loss,      acc.pg,     acc.entropy, acc.clipped,
        acc.approx_kl, acc.ref_kl, acc.tokens,  static_cast<double>(acc.micro_batches)};
    SFPO_RETURN_IF_ERROR(SumOverRanks(&sums));
    acc.loss = sums[0];
    acc.pg = sums[1];
    acc.entropy = sums[2];
    acc.clipped = sums[3];
    acc.approx_kl = sums[4];
    acc.ref_kl = sums[5];
    acc.tokens = sums[6];
    acc.micro_batches = static_cast<int64_t>(sums[7]);
    return acc.Finish();
  }
};

DataParallelUpdater::DataParallelUpdater(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataParallelUpdater::~DataParallelUpdater() = default;

absl::StatusOr<std::unique_ptr<DataParallelUpdater>> DataParallelUpdater::Create(
    std::vector<at::Tensor> params, Collectives* collectives, const DataParallelOptions& options) {
  if (collectives == nullptr) return absl::InvalidArgumentError("data-parallel: no collectives");
  if (params.empty()) return absl::InvalidArgumentError("data-parallel: no trainable parameters");
  if (options.bucket_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("learner.bucket_bytes must be >= 1, got ", options.bucket_bytes));
  }
  auto impl = std::make_unique<Impl>();
  impl->coll = collectives;
  impl->options = options;
  SFPO_RETURN_IF_ERROR(GuardTorch("data-parallel setup", [&]() -> absl::Status {
    const at::ScalarType dtype = params.front().scalar_type();
    int64_t total = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& p = params[i];
      if (p.scalar_type() != dtype || !at::isFloatingType(dtype)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data-parallel ranks need one floating dtype for every trainable parameter; "
            "parameter ",
            i, " is ", c10::toString(p.scalar_type()), ", parameter 0 ", c10::toString(dtype)));
      }
      if (!p.device().is_cpu()) {
        return absl::InvalidArgumentError(
            "data-parallel ranks run on the CPU (Gloo); this build has no NCCL backend");
      }
      if (!p.is_contiguous()) {
        return absl::InvalidArgumentError(
            absl::StrCat("data-parallel: parameter ", i, " is not contiguous"));
      }
      impl->offsets.push_back(total);
      impl->flat.push_back(p.detach().view({-1}));
      total += p.numel();
    }
    const int64_t elem = c10::elementSize(dtype);
    impl->layout = ShardLayout::Make(total, std::max<int64_t>(1, options.bucket_bytes / elem),
                                     collectives->world_size(), collectives->rank());
    const auto topt = params.front().options().requires_grad(false);
    int64_t max_bucket = 0;
    for (const auto& b : impl->layout.buckets) {
      max_bucket = std::max(max_bucket, b.chunk * impl->layout.world_size);
    }
    impl->buffer = torch::empty({max_bucket}, topt);
    impl->param_shard = torch::zeros({impl->layout.shard_size}, topt);
    impl->grad_shard = torch::zeros({impl->layout.shard_size}, topt);
    impl->exp_avg = torch::zeros({impl->layout.shard_size}, topt);
    impl->exp_avg_sq = torch::zeros({impl->layout.shard_size}, topt);
    return absl::OkStatus();
  }));
  impl->params = std::move(params);
  // With the overlap: which buckets each parameter has elements in, and the hooks that report
  // its gradient final.
  Impl* raw = impl.get();
  if (options.overlap_reduce) {
    raw->param_buckets.assign(raw->params.size(), {});
    raw->bucket_params.assign(raw->layout.buckets.size(), 0);
    for (size_t b = 0; b < raw->layout.buckets.size(); ++b) {
      const ShardLayout::Bucket& bucket = raw->layout.buckets[b];
      raw->ForSegments(bucket.start, bucket.start + bucket.length,
                       [&](size_t i, int64_t, int64_t, int64_t) {
                         raw->param_buckets[i].push_back(static_cast<int>(b));
                         ++raw->bucket_params[b];
                       });
    }
    SFPO_RETURN_IF_ERROR(GuardTorch("gradient hooks", [&]() -> absl::Status {
      for (size_t i = 0; i < raw->params.size(); ++i) {
        std::shared_ptr<torch::autograd::Node> acc =
            torch::autograd::impl::grad_accumulator(raw->params[i]);
        if (acc == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(
              "data-parallel: parameter ", i, " is not a leaf that requires a gradient"));
        }
        raw->hook_keys.push_back(acc->add_post_hook(
            std::make_unique<GradientFinalHook>([raw, i] { raw->OnGradientFinal(i); })));
        raw->accumulators.push_back(std::move(acc));
      }
      return absl::OkStatus();
    }));
  }
  {
    torch::NoGradGuard no_grad;
    SFPO_RETURN_IF_ERROR(impl->BroadcastParams());
  }
  SFPO_RETURN_IF_ERROR(GuardTorch("data-parallel setup", [&] {
    impl->SyncShard();
    return absl::OkStatus();
  }));
  return std::unique_ptr<DataParallelUpdater>(new DataParallelUpdater(std::move(impl)));
}

absl::StatusOr<at::Tensor> DataParallelUpdater::SequenceLogp(const PolicyFn& policy,
                                                             const RolloutBatch& batch,
                                                             int64_t micro_batch_tokens) {
  Impl& m = *impl_;
  if (batch.lengths.size() != static_cast<size_t>(batch.num_sequences())) {
    return absl::InvalidArgumentError("batch is not prepared (call PrepareBatch)");
  }
  const int64_t groups = batch.num_groups(), g = batch.group_size;
  const int64_t g0 = groups * m.layout.rank / m.layout.world_size;
  const int64_t g1 = groups * (m.layout.rank + 1) / m.layout.world_size;
  at::Tensor full;
  SFPO_RETURN_IF_ERROR(GuardTorch("sharded logp", [&]() -> absl::Status {
    full = torch::zeros(batch.input_ids.sizes(), m.param_shard.options());
    if (g1 == g0) return absl::OkStatus();
    std::vector<int64_t> mine;
    for (int64_t i = g0; i < g1; ++i) mine.push_back(i);
    const RolloutBatch sub = SelectGroups(batch, mine);
    SFPO_ASSIGN_OR_RETURN(at::Tensor logp, ComputeSequenceLogp(policy, sub, micro_batch_tokens));
    full.narrow(0, g0 * g, (g1 - g0) * g).copy_(logp);
    return absl::OkStatus();
  }));
  SFPO_RETURN_IF_ERROR(m.coll->AllReduceSum(full));
  return full;
}

absl::StatusOr<SlowFastStepStats> DataParallelUpdater::Step(
    const PolicyFn& policy, RolloutBatch* batch, const UpdateOptions& update,
    const SlowFastOptions& options, const GroupOrderFn& group_order, double lr) {
  Impl& m = *impl_;
  if (batch->lengths.size() != static_cast<size_t>(batch->num_sequences())) {
    return absl::InvalidArgumentError("batch is not prepared (call PrepareBatch)");
  }
  SFPO_RETURN_IF_ERROR(GuardTorch("row tokens", [&] {
    const at::Tensor tok =
        batch->response_mask.ne(0).sum(1).to(torch::kCPU, torch::kFloat64).contiguous();
    m.row_tokens.assign(tok.data_ptr<double>(), tok.data_ptr<double>() + tok.numel());
    return absl::OkStatus();
  }));
  // The stages on this rank's shard; every rank computes on a share of each batch's groups.
  OuterStepStages stages;
  stages.compute_old_logp = [&] { return SequenceLogp(policy, *batch, update.micro_batch_tokens); };
  stages.save_theta0 = [&] {
    return GuardTorch("save theta_0", [&] {
      SaveTensor(m.param_shard, &m.theta0, options.theta0_on_host);
      return absl::OkStatus();
    });
  };
  stages.update_pass = [&](const std::vector<int64_t>& order) {
    return m.RunPass(policy, *batch, order, update, lr);
  };
  stages.distance = [&] { return m.DistanceToSaved(); };
  stages.reposition = [&](double alpha) -> absl::Status {
    SFPO_RETURN_IF_ERROR(GuardTorch("reposition", [&] {
      RepositionTensor(m.param_shard, m.theta0, alpha);
      return absl::OkStatus();
    }));
    torch::NoGradGuard no_grad;
    return m.GatherParameters();
  };
  return RunOuterStep(batch, options, group_order, stages);
}

int64_t DataParallelUpdater::buckets_overlapped() const { return impl_->buckets_overlapped; }

void DataParallelUpdater::ReleaseSavedParameters() { impl_->theta0 = at::Tensor(); }

int64_t DataParallelUpdater::saved_bytes() const {
  const at::Tensor& t = impl_->theta0;
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

int64_t DataParallelUpdater::parameter_bytes() const {
  return impl_->layout.total * static_cast<int64_t>(impl_->param_shard.element_size());
}

const ShardLayout& DataParallelUpdater::layout() const { return impl_->layout; }

ShardState DataParallelUpdater::state() const {
  ShardState s;
  s.adam_step = impl_->adam_step;
  s.exp_avg = impl_->exp_avg;
  s.exp_avg_sq = impl_->exp_avg_sq;
  s.theta0 = impl_->theta0;
  return s;
}

Collectives* DataParallelUpdater::collectives() const { return impl_->coll; }
double DataParallelUpdater::last_local_entropy() const { return impl_->local_entropy; }

absl::Status DataParallelUpdater::LoadShardState(const ShardState& state) {
  Impl& m = *impl_;
  const int64_t n = m.layout.shard_size;
  for (const at::Tensor* t : {&state.exp_avg, &state.exp_avg_sq, &state.theta0}) {
    if (t == &state.theta0 && !t->defined()) continue;
    if (!t->defined() || t->numel() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("sharded optimizer state of rank ", m.layout.rank, " has ",
                       t->defined() ? t->numel() : 0, " elements, the layout ", n));
    }
  }
  return GuardTorch("load shard state", [&] {
    m.adam_step = state.adam_step;
    m.exp_avg.copy_(state.exp_avg.view({-1}));
    m.exp_avg_sq.copy_(state.exp_avg_sq.view({-1}));
    if (state.theta0.defined()) {
      if (!m.theta0.defined()) m.theta0 = torch::empty_like(m.param_shard);
      m.theta0.copy_(state.theta0.view({-1}));
    } else {
      m.theta0 = at::Tensor();
    }
    return absl::OkStatus();
  });
}

absl::Status DataParallelUpdater::LoadFullState(int64_t adam_step, const at::Tensor& exp_avg,
                                                const at::Tensor& exp_avg_sq,
                                                const at::Tensor& theta0) {
  Impl& m = *impl_;
  for (const at::Tensor* t : {&exp_avg, &exp_avg_sq, &theta0}) {
    if (t == &theta0 && !t->defined()) continue;
    if (!t->defined() || t->numel() != m.layout.total) {
      return absl::InvalidArgumentError(absl::StrCat("consolidated optimizer state has ",
                                                     t->defined() ? t->numel() : 0,
                                                     " elements, the model ", m.layout.total));
    }
  }
  ShardState s;
  s.adam_step = adam_step;
  SFPO_RETURN_IF_ERROR(GuardTorch("re-shard state", [&] {
    auto slice = [&](const at::Tensor& full) {
      at::Tensor shard = torch::zeros({m.layout.shard_size}, m.param_shard.options());
      const at::Tensor f = full.reshape({-1}).to(m.param_shard.scalar_type());
      for (const ShardLayout::Bucket& b : m.layout.buckets) {
        const auto [begin, end] = m.layout.Owned(b);
        if (end > begin)
          shard.narrow(0, b.shard_offset, end - begin).copy_(f.narrow(0, begin, end - begin));
      }
      return shard;
    };
    s.exp_avg = slice(exp_avg);
    s.exp_avg_sq = slice(exp_avg_sq);
    if (theta0.defined()) s.theta0 = slice(theta0);
    return absl::OkStatus();
  }));
  return LoadShardState(s);
}

absl::StatusOr<at::Tensor> DataParallelUpdater::GatherFull(const at::Tensor& shard) {
  Impl& m = *impl_;
  if (!shard.defined() || shard.numel() != m.layout.shard_size) {
    return absl::InvalidArgumentError("GatherFull: not a shard of this layout");
  }
  at::Tensor full;
  SFPO_RETURN_IF_ERROR(GuardTorch("gather state", [&] {
    full = torch::zeros({m.layout.total}, shard.options());
    return absl::OkStatus();
  }));
  for (const ShardLayout::Bucket& b : m.layout.buckets) {
    at::Tensor buf = m.Buffer(b);
    const at::Tensor chunk = shard.narrow(0, b.shard_offset, b.chunk);
    SFPO_RETURN_IF_ERROR(m.coll->AllGather(chunk, buf));
    SFPO_RETURN_IF_ERROR(GuardTorch("gather state", [&] {
      full.narrow(0, b.start, b.length).copy_(buf.narrow(0, 0, b.length));
      return absl::OkStatus();
    }));
  }
  return full;
}

absl::Status DataParallelUpdater::SyncFromParameters() {
  return GuardTorch("sync parameters", [&] {
    torch::NoGradGuard no_grad;
    impl_->SyncShard();
    return absl::OkStatus();
  });
}

}  // namespace sfpo
