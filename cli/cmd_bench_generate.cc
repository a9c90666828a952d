// `sfpo bench generate`: prefill and decode throughput of the generation engine on a random
// Qwen2 model, next to the fp32 matmul peak LibTorch reaches on this machine in the same run.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "common/model.h"
#include "common/torch_util.h"
#include "nlohmann/json.hpp"
#include "services/rollout/engine.h"

namespace sfpo {
namespace {

struct BenchGenerateFlags {
  BenchModelFlags model{/*layers=*/4,         /*hidden=*/256,
                        /*heads=*/4,          /*kv_heads=*/2,
                        /*intermediate=*/704, /*vocab=*/64};
  int64_t batch = 64, prompt_tokens = 32, new_tokens = 128;
  int threads = 1;
  uint64_t seed = 0;
  int repeats = 3;
  bool json = false;
};

// Best-of-`repeats` fp32 GEMM rate of an n x n x n product, in GFLOP/s.
double MatmulPeakGflops(int64_t n, int repeats) {
  c10::InferenceMode inference;
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::Tensor c = torch::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

int RunBenchGenerate(const BenchGenerateFlags& f) {
  SetTorchThreads(f.threads);
  absl::StatusOr<ModelArch> arch_or =
      BenchModelArch(f.model, f.prompt_tokens + f.new_tokens, "bench generate");
  if (!arch_or.ok()) return FailWith(arch_or.status());
  const ModelArch& arch = *arch_or;
  if (f.batch < 1 || f.prompt_tokens < 1 || f.new_tokens < 1) {
    return FailWith(
        absl::InvalidArgumentError("--batch, --prompt-tokens and --new-tokens must be >= 1"));
  }

  Policy policy(arch);
  InitPolicyWeights(policy, f.seed);
  EngineOptions engine_options;
  engine_options.eos_id = -1;  // every row generates exactly --new-tokens tokens
  engine_options.max_batch_size = f.batch;
  auto engine = GenerationEngine::Create(policy, engine_options);
  if (!engine.ok()) return FailWith(engine.status());

  std::mt19937_64 rng(f.seed);
  std::vector<GenerationRequest> requests(f.batch);
  for (int64_t i = 0; i < f.batch; ++i) {
    requests[i].seed = f.seed * 1000003 + i;
    for (int64_t t = 0; t < f.prompt_tokens; ++t) {
      requests[i].prompt.push_back(static_cast<int32_t>(rng() % f.model.vocab));
    }
  }
  SamplingOptions sampling;
  sampling.temperature = 1.0;
  sampling.max_new_tokens = static_cast<int>(f.new_tokens);

  // Warm-up (allocations, BLAS buffers), then the best of `repeats` runs.
  SamplingOptions warm = sampling;
  warm.max_new_tokens = static_cast<int>(std::min<int64_t>(f.new_tokens, 8));
  if (auto r = (*engine)->Generate(requests, warm); !r.ok()) return FailWith(r.status());
  double prefill_tps = 0, decode_tps = 0;
  for (int i = 0; i < std::max(1, f.repeats); ++i) {
    auto r = (*engine)->Generate(requests, sampling);
    if (!r.ok()) return FailWith(r.status());
    const GenerationStats& st = (*engine)->last_stats();
    prefill_tps = std::max(prefill_tps, st.prompt_tokens / st.prefill_seconds);
    decode_tps = std::max(decode_tps, st.generated_tokens / st.decode_seconds);
  }

  // FLOPs per generated token: 2 per weight of every matmul (q/k/v/o, MLP, lm_head; not the
  // embedding lookup) plus attention, 4 * layers * hidden * context, at the mean decode context.
  const int64_t params = ParameterCount(arch);
  const int64_t d = arch.hidden_size, q_dim = arch.num_attention_heads * arch.head_dim();
  const int64_t kv_dim = arch.num_key_value_heads * arch.head_dim();
  const int64_t matmul_params =
      arch.num_hidden_layers * (2 * d * q_dim + 2 * d * kv_dim + 3 * d * arch.intermediate_size) +
      arch.vocab_size * d;
  const double mean_context = f.prompt_tokens + f.new_tokens / 2.0;
  const double flops_per_token =
      2.0 * matmul_params + 4.0 * arch.num_hidden_layers * arch.hidden_size * mean_context;
  const double decode_gflops = decode_tps * flops_per_token / 1e9;
  const double peak = MatmulPeakGflops(1024, 5);

  nlohmann::json out = {
      {"engine", "sfpo"},
      {"threads", at::get_num_threads()},
      {"layers", f.model.layers},
      {"hidden", f.model.hidden},
      {"heads", f.model.heads},
      {"kv_heads", f.model.kv_heads},
      {"intermediate", f.model.intermediate},
      {"vocab", f.model.vocab},
      {"batch", f.batch},
      {"prompt_tokens", f.prompt_tokens},
      {"new_tokens", f.new_tokens},
      {"params", params},
      {"flops_per_token", flops_per_token},
      {"prefill_tokens_per_s", prefill_tps},
      {"decode_tokens_per_s", decode_tps},
      {"decode_gflops", decode_gflops},
      {"matmul_peak_gflops", peak},
      {"decode_fraction_of_peak", decode_gflops / peak},
  };
  if (f.json) {
    std::cout << out.dump() << std::endl;
  } else {
    for (auto it = out.begin(); it != out.end(); ++it) {
      std::cout << it.key() << ": " << it.value().dump() << "\n";
    }
  }
  return 0;
}

}  // namespace

void AddBenchGenerateCommand(CLI::App* root, CommandTable* table) {
  auto flags = std::make_shared<BenchGenerateFlags>();
  CLI::App* cmd = BenchCommand(root)->add_subcommand(
      "generate", "Generation engine throughput on a random Qwen2 model, with the matmul peak");
  AddBenchModelFlags(cmd, &flags->model);
  cmd->add_option("--batch", flags->batch, "Sequences generated together");
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Random prompt tokens per sequence");
  cmd->add_option("--new-tokens", flags->new_tokens, "Tokens generated per sequence");
  cmd->add_option("--threads", flags->threads, "Torch intra-op threads");
  cmd->add_option("--seed", flags->seed, "Weights, prompts and sampling seed");
  cmd->add_option("--repeats", flags->repeats, "Timed runs (the best is reported)");
  cmd->add_flag("--json", flags->json, "Print one JSON object as the last line");
  table->emplace_back(cmd, [flags] { return RunBenchGenerate(*flags); });
}

}  // namespace sfpo
