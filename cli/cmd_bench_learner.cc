// `sfpo bench learner`: full outer steps (old_logp, K fast passes, reposition, slow pass) of
// GRPO or SFPO on random data with a randomly initialised Qwen2 policy of the given shape.
// Prints the median step time, the parameter count and the peak memory it sees (the process's
// RSS high-water mark over the timed steps, reset after the warmup steps through
// /proc/self/clear_refs, and the bytes of SFPO's saved parameter copy); with --json the last
// line is one JSON object. With --ranks N the step runs on N data-parallel ranks (threads of
// this process, Gloo on loopback, ZeRO-1 sharded state) and the figures add each rank's share
// of theta_0 (SFPO's extra memory per rank) and the all-reduce share of the step time.
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/model.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/torch_util.h"
#include "nlohmann/json.hpp"
#include "services/learner/distributed/collectives.h"
#include "services/learner/distributed/gloo_collectives.h"
#include "services/learner/trainer.h"

namespace sfpo {
namespace {

struct BenchLearnerFlags {
  std::string algo = "sfpo";
  BenchModelFlags model{/*layers=*/2,         /*hidden=*/256,
                        /*heads=*/4,          /*kv_heads=*/2,
                        /*intermediate=*/768, /*vocab=*/1024};
  int64_t batch_prompts = 8, group = 8, prompt_tokens = 16, response_tokens = 64;
  int64_t steps = 3, warmup = 1, threads = 0;
  int64_t inner_steps = 3;
  double alpha = 0.8;
  int64_t mini_batch_prompts = 0;  // 0: all prompts in one mini-batch
  int64_t micro_batch_tokens = 16384;
  int64_t ranks = 1;
  int64_t bucket_mb = 25;
  bool overlap = true;
  bool json = false;
};

// A field of /proc/self/status in bytes (VmRSS, VmHWM), or -1.
int64_t ProcStatusBytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoll(line.substr(field.size() + 1)) * 1024;  // "  1234 kB"
    }
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0). Returns false where unsupported.
bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good();
}

// P*G sequences of prompt_tokens random prompt tokens followed by response_tokens random
// response tokens; random 0/1 rewards.
RolloutBatch RandomBatch(const BenchLearnerFlags& f) {
  const int64_t n = f.batch_prompts * f.group;
  const int64_t t = f.prompt_tokens + f.response_tokens;
  RolloutBatch batch;
  batch.group_size = f.group;
  batch.input_ids = torch::randint(0, f.model.vocab, {n, t}, torch::kInt64);
  batch.response_mask = torch::zeros({n, t}, torch::kFloat32);
  batch.response_mask.narrow(1, f.prompt_tokens, f.response_tokens).fill_(1.0);
  batch.rewards = torch::randint(0, 2, {n}, torch::kFloat64);
  return batch;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// What one data-parallel rank measured over the timed steps.
struct RankFigures {
  std::vector<double> step_s, all_reduce_s, collective_s;
  int64_t all_reduce_bytes = 0, collective_bytes = 0, saved_bytes = 0;
  absl::Status status;
};

// The timed steps on `ranks` data-parallel ranks (threads), every rank on the same batches.
std::vector<RankFigures> RunRanks(const BenchLearnerFlags& f, const TrainerOptions& options,
                                  const ModelArch& arch, const std::vector<RolloutBatch>& batches) {
  const int world = static_cast<int>(f.ranks);
  std::vector<RankFigures> out(world);
  std::vector<Policy> policies;
  for (int r = 0; r < world; ++r) {
    policies.push_back(Policy(arch));
    InitPolicyWeights(policies.back(), 0);
  }
  absl::StatusOr<std::unique_ptr<RendezvousServer>> server =
      RendezvousServer::Start(0, absl::Seconds(120));
  if (!server.ok()) {
    out[0].status = server.status();
    return out;
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      out[r].status = [&]() -> absl::Status {
        GlooOptions g;
        g.rank = r;
        g.world_size = world;
        g.store_port = (*server)->port();
        g.device_host = "127.0.0.1";
        g.timeout = absl::Seconds(120);
        SFPO_ASSIGN_OR_RETURN(std::unique_ptr<Collectives> c, CreateGlooCollectives(g));
        SFPO_ASSIGN_OR_RETURN(auto trainer,
                              Trainer::Create(options, policies[r].ptr(), nullptr, c.get()));
        for (size_t i = 0; i < batches.size(); ++i) {
          SFPO_ASSIGN_OR_RETURN(StepDiagnostics d, trainer->Step(batches[i]));
          if (static_cast<int64_t>(i) < f.warmup) continue;
          out[r].step_s.push_back(d.step_seconds);
          out[r].all_reduce_s.push_back(d.all_reduce_seconds);
          out[r].collective_s.push_back(d.collective_seconds);
          out[r].all_reduce_bytes = d.all_reduce_bytes;
          out[r].collective_bytes = d.collective_bytes;
        }
        out[r].saved_bytes = trainer->saved_parameter_bytes();
        return c->Barrier();
      }();
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

absl::Status RunBenchRanks(const BenchLearnerFlags& f, const TrainerOptions& options,
                           const ModelArch& arch, int64_t param_bytes, int64_t params) {
  std::vector<RolloutBatch> batches;
  for (int64_t i = 0; i < f.warmup + f.steps; ++i) batches.push_back(RandomBatch(f));
  const std::vector<RankFigures> ranks = RunRanks(f, options, arch, batches);
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (!ranks[r].status.ok()) {
      return absl::Status(ranks[r].status.code(),
                          absl::StrCat("rank ", r, ": ", ranks[r].status.message()));
    }
  }
  const RankFigures& r0 = ranks[0];
  int64_t saved_max = 0;
  nlohmann::json per_rank = nlohmann::json::array();
  for (const RankFigures& r : ranks) {
    saved_max = std::max(saved_max, r.saved_bytes);
    per_rank.push_back({{"step_seconds", Median(r.step_s)},
                        {"all_reduce_seconds", Median(r.all_reduce_s)},
                        {"collective_seconds", Median(r.collective_s)},
                        {"saved_state_bytes", r.saved_bytes}});
  }
  const double step = Median(r0.step_s);
  nlohmann::json j = {
      {"algo", f.algo},
      {"ranks", f.ranks},
      {"params", params},
      {"param_bytes", param_bytes},
      {"step_seconds", step},
      {"all_reduce_seconds", Median(r0.all_reduce_s)},
      {"all_reduce_share", step > 0 ? Median(r0.all_reduce_s) / step : 0},
      {"collective_seconds", Median(r0.collective_s)},
      {"collective_share", step > 0 ? Median(r0.collective_s) / step : 0},
      {"all_reduce_bytes_per_step", r0.all_reduce_bytes},
      {"collective_bytes_per_step", r0.collective_bytes},
      {"saved_state_bytes_per_rank", saved_max},
      {"saved_state_fraction", static_cast<double>(saved_max) / static_cast<double>(param_bytes)},
      {"target_fraction", 1.1 / static_cast<double>(f.ranks)},
      {"per_rank", per_rank},
      {"bucket_mb", f.bucket_mb},
      {"overlap_reduce", f.overlap},
      {"inner_steps", options.sfpo ? f.inner_steps : 0},
      {"sequences", f.batch_prompts * f.group},
      {"threads", at::get_num_threads()}};
  if (f.json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << "algo " << f.algo << "  ranks " << f.ranks << "  params " << params
              << "  step_seconds (median, rank 0) " << step << "  all_reduce share "
              << j["all_reduce_share"].get<double>() << "  theta_0 per rank " << saved_max
              << " B = " << j["saved_state_fraction"].get<double>() << " of the parameters\n";
  }
  return absl::OkStatus();
}

absl::Status RunBench(const BenchLearnerFlags& f) {
  if (f.algo != "sfpo" && f.algo != "grpo") {
    return absl::InvalidArgumentError(absl::StrCat("--algo must be sfpo or grpo, got ", f.algo));
  }
  if (f.steps < 1 || f.batch_prompts < 1 || f.group < 2 || f.response_tokens < 1 ||
      f.prompt_tokens < 1) {
    return absl::InvalidArgumentError(
        "--steps, --batch-prompts, --response-tokens and --prompt-tokens must be >= 1, --group >= "
        "2");
  }
  SetTorchThreads(static_cast<int>(f.threads));
  torch::manual_seed(0);
  SFPO_ASSIGN_OR_RETURN(
      const ModelArch arch,
      BenchModelArch(f.model, f.prompt_tokens + f.response_tokens, "bench learner flags"));

  Policy policy{nullptr};
  int64_t params = 0, param_bytes = 0;
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    policy = Policy(arch);
    InitPolicyWeights(policy, 0);
    for (const auto& p : policy->parameters()) {
      params += p.numel();
      param_bytes += p.numel() * p.element_size();
    }
  }));
  TrainerOptions options;
  options.sfpo = f.algo == "sfpo";
  options.slow_fast.inner_steps = f.inner_steps;
  options.slow_fast.alpha = f.alpha;
  options.gate.mode = GateMode::kNone;  // measure SFPO steps throughout
  options.update.mini_batch_groups =
      f.mini_batch_prompts > 0 ? f.mini_batch_prompts : f.batch_prompts;
  options.update.micro_batch_tokens = f.micro_batch_tokens;
  options.lr.base_lr = 1e-6;
  options.bucket_bytes = f.bucket_mb << 20;
  options.overlap_reduce = f.overlap;
  if (f.ranks > 1) return RunBenchRanks(f, options, arch, param_bytes, params);
  SFPO_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(options, policy.ptr()));

  for (int64_t i = 0; i < f.warmup; ++i) {
    SFPO_RETURN_IF_ERROR(trainer->Step(RandomBatch(f)).status());
  }
  const int64_t rss_before = ProcStatusBytes("VmRSS");
  const bool reset = ResetPeakRss();
  std::vector<double> step_s, old_s, fast_s, repos_s, slow_s;
  for (int64_t i = 0; i < f.steps; ++i) {
    RolloutBatch batch = RandomBatch(f);
    SFPO_ASSIGN_OR_RETURN(StepDiagnostics d, trainer->Step(std::move(batch)));
    step_s.push_back(d.step_seconds);
    old_s.push_back(d.update.old_logprob_seconds);
    fast_s.push_back(d.update.fast_seconds);
    repos_s.push_back(d.update.reposition_seconds);
    slow_s.push_back(d.update.slow_seconds);
    if (!f.json) {
      std::cout << "step " << i << ": " << d.step_seconds << " s (old_logprob "
                << d.update.old_logprob_seconds << ", fast " << d.update.fast_seconds
                << ", reposition " << d.update.reposition_seconds << ", slow "
                << d.update.slow_seconds << ")\n";
    }
  }
  const int64_t peak = ProcStatusBytes("VmHWM");
  nlohmann::json j = {{"algo", f.algo},
                      {"params", params},
                      {"param_bytes", param_bytes},
                      {"step_seconds", Median(step_s)},
                      {"step_seconds_all", step_s},
                      {"stage_seconds",
                       {{"old_logprob", Median(old_s)},
                        {"fast", Median(fast_s)},
                        {"reposition", Median(repos_s)},
                        {"slow", Median(slow_s)}}},
                      {"rss_before_steps_bytes", rss_before},
                      {"peak_rss_bytes", peak},
                      {"peak_rss_reset", reset},
                      {"saved_state_bytes", trainer->saved_parameter_bytes()},
                      {"inner_steps", options.sfpo ? f.inner_steps : 0},
                      {"sequences", f.batch_prompts * f.group},
                      {"tokens_per_sequence", f.prompt_tokens + f.response_tokens},
                      {"threads", at::get_num_threads()}};
  if (f.json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << "algo " << f.algo << "  params " << params << "  step_seconds (median) "
              << Median(step_s) << "  peak_rss " << peak << " B  saved_state "
              << trainer->saved_parameter_bytes() << " B\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddBenchLearnerCommand(CLI::App* root, CommandTable* table) {
  auto f = std::make_shared<BenchLearnerFlags>();
  CLI::App* cmd = BenchCommand(root)->add_subcommand(
      "learner", "Time full GRPO/SFPO outer steps on random data");
  cmd->add_option("--algo", f->algo, "grpo | sfpo")->capture_default_str();
  AddBenchModelFlags(cmd, &f->model);
  cmd->add_option("--batch-prompts", f->batch_prompts, "Prompts per step")->capture_default_str();
  cmd->add_option("--group", f->group, "Completions per prompt")->capture_default_str();
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "Prompt length")->capture_default_str();
  cmd->add_option("--response-tokens", f->response_tokens, "Response length")
      ->capture_default_str();
  cmd->add_option("--steps", f->steps, "Timed steps")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--threads", f->threads, "Torch threads (0: default)")->capture_default_str();
  cmd->add_option("--inner-steps", f->inner_steps, "SFPO K")->capture_default_str();
  cmd->add_option("--alpha", f->alpha, "SFPO alpha")->capture_default_str();
  cmd->add_option("--mini-batch-prompts", f->mini_batch_prompts,
                  "Prompts per optimizer step (0: all)")
      ->capture_default_str();
  cmd->add_option("--micro-batch-tokens", f->micro_batch_tokens, "Tokens per forward")
      ->capture_default_str();
  cmd->add_option("--ranks", f->ranks,
                  "Data-parallel ranks (threads, Gloo on loopback, sharded state)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--bucket-mb", f->bucket_mb, "Gradient/parameter bucket size (MiB), ranks > 1")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_flag("--overlap,!--no-overlap", f->overlap,
                "Reduce gradient buckets during the backward pass (ranks > 1; default on)");
  cmd->add_flag("--json", f->json, "Print one JSON object as the last line");
  table->emplace_back(cmd, [f] {
    absl::Status status = RunBench(*f);
    return status.ok() ? 0 : FailWith(status);
  });
}

}  // namespace sfpo
