// `sfpo sft`: supervised warm start of a policy on {"prompt", "completion"} pairs (also
// accepted: "answer" or "solution" as the completion), with the learner's model code. Writes
// DIR/model.safetensors, DIR/config.json (so DIR works as model.config and model.init) and
// DIR/sft_log.jsonl.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/tasks.h"
#include "services/learner/evaluator.h"
#include "common/logging.h"
#include "common/model.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/tokenizer.h"
#include "common/torch_util.h"
#include "nlohmann/json.hpp"
#include "services/learner/sft.h"

namespace sfpo {
namespace {

struct SftFlags {
  ConfigFlags config;
  std::string out;
  std::string data;  // JSONL file; default: data.task when it is a file
  int64_t eval_prompts = 1000;
  std::string init;  // default: model.init
  int64_t steps = 1000;
  int64_t batch = 64;
  double lr = 1e-3;
  int64_t warmup = 0;
  int64_t seed = -1;  // default: run.seed
  int64_t log_every = 50;
};

// Reads {"prompt", "completion" | "solution" | "answer"} lines. INVALID_ARGUMENT naming the
// line for anything else.
absl::StatusOr<std::vector<SftText>> ReadJsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<SftText> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": expected an object with a string \"prompt\""));
    }
    SftText t;
    t.prompt = j["prompt"].get<std::string>();
    for (const char* key : {"completion", "solution", "answer"}) {
      if (j.contains(key) && j[key].is_string()) {
        t.completion = j[key].get<std::string>();
        break;
      }
    }
    if (t.completion.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", n, ": no non-empty string \"completion\", \"solution\" or \"answer\""));
    }
    out.push_back(std::move(t));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no examples"));
  return out;
}

// Cycles through `data` in a fresh seeded shuffle each epoch.
class ShuffledSource {
 public:
  ShuffledSource(std::vector<SftText> data, uint64_t seed) : data_(std::move(data)), seed_(seed) {}
  absl::StatusOr<SftText> operator()(int64_t index) {
    const int64_t n = static_cast<int64_t>(data_.size());
    const int64_t epoch = index / n;
    if (epoch != epoch_) {
      order_.resize(n);
      std::iota(order_.begin(), order_.end(), 0);
      std::mt19937_64 rng(seed_ + static_cast<uint64_t>(epoch));
      std::shuffle(order_.begin(), order_.end(), rng);
      epoch_ = epoch;
    }
    return data_[order_[index % n]];
  }

 private:
  std::vector<SftText> data_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
};

absl::Status RunSftCommand(const SftFlags& flags) {
  SFPO_ASSIGN_OR_RETURN(Config config, LoadConfigFromFlags(flags.config));
  if (flags.config.check) return absl::OkStatus();
  if (flags.out.empty()) return absl::InvalidArgumentError("--out DIR is required");
  SetTorchThreads(static_cast<int>(config.run.threads));
  const uint64_t seed = static_cast<uint64_t>(flags.seed >= 0 ? flags.seed : config.run.seed);
  torch::manual_seed(seed);

  // Data: --data FILE.jsonl, else data.task (a JSONL file, or a built-in task's solutions).
  std::string data_path = flags.data;
  if (data_path.empty() && std::filesystem::is_regular_file(config.data.task)) {
    data_path = config.data.task;
  }
  std::function<absl::StatusOr<SftText>(int64_t)> source;
  std::unique_ptr<ShuffledSource> shuffled;
  std::shared_ptr<Task> task;
  if (!data_path.empty()) {
    SFPO_ASSIGN_OR_RETURN(std::vector<SftText> data, ReadJsonl(data_path));
    shuffled = std::make_unique<ShuffledSource>(std::move(data), seed);
    source = [&shuffled](int64_t i) { return (*shuffled)(i); };
  } else {
    SFPO_ASSIGN_OR_RETURN(task, CreateTask(config.data.task));
    data_path = "built-in task " + config.data.task;
    source = [task, seed](int64_t i) -> absl::StatusOr<SftText> {
      Problem p = task->TrainProblem(seed, static_cast<uint64_t>(i));
      return SftText{p.prompt, p.solution};
    };
  }

  SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(config.model.config));
  std::unique_ptr<Tokenizer> tokenizer = MakeCharTokenizer();
  if (arch.vocab_size < tokenizer->vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.config '", config.model.config, "' has vocab_size ", arch.vocab_size,
                     ", smaller than the char tokenizer's ", tokenizer->vocab_size()));
  }
  SFPO_ASSIGN_OR_RETURN(c10::Device device, ResolveDevice(config.run.device));
  Policy policy{nullptr};
  SFPO_RETURN_IF_ERROR(TorchCall([&] {
    policy = Policy(arch);
    InitPolicyWeights(policy, seed);
  }));
  const std::string init = flags.init.empty() ? config.model.init : flags.init;
  if (!init.empty()) SFPO_RETURN_IF_ERROR(LoadPolicy(policy, init));
  SFPO_RETURN_IF_ERROR(TorchCall([&] { policy->to(device); }));

  std::error_code ec;
  std::filesystem::create_directories(flags.out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", flags.out, ": ", ec.message()));
  std::ofstream log(flags.out + "/sft_log.jsonl", std::ios::trunc);
  SftOptions options;
  options.steps = flags.steps;
  options.batch = flags.batch;
  options.lr = flags.lr;
  options.warmup_steps = flags.warmup;
  SFPO_LOG(INFO) << "sft: " << ParameterCount(arch) << " parameters, " << flags.steps
                 << " steps of " << flags.batch << " examples from " << data_path;
  SFPO_RETURN_IF_ERROR(RunSft(
      policy.ptr(), *tokenizer, source, options,
      [&](const SftStepLog& s) {
        nlohmann::json j = {{"step", s.step},         {"loss", s.loss},
                            {"token_accuracy", s.token_accuracy},
                            {"target_tokens", s.target_tokens}, {"lr", s.lr},
                            {"seconds", s.seconds}};
        log << j.dump() << "\n";
        if (flags.log_every > 0 &&
            (s.step % flags.log_every == 0 || s.step + 1 == flags.steps)) {
          SFPO_LOG(INFO) << "sft step " << s.step << " loss " << s.loss << " token_accuracy "
                         << s.token_accuracy << " lr " << s.lr;
        }
      }));
  SFPO_RETURN_IF_ERROR(SavePolicy(policy, flags.out + "/model.safetensors"));
  {
    std::ofstream cfg(flags.out + "/config.json", std::ios::trunc);
    cfg << ModelArchToHfConfigJson(arch);
    if (!cfg.good()) return absl::InternalError(absl::StrCat("cannot write ", flags.out, "/config.json"));
  }
  std::cout << "sft: wrote " << flags.out << "/model.safetensors" << std::endl;
  if (task != nullptr && flags.eval_prompts > 0) {
    EvaluatorOptions eo;
    eo.model_config = config.model.config;
    eo.task = config.data.task;
    eo.problems = flags.eval_prompts;
    eo.max_new_tokens = static_cast<int32_t>(config.rollout.max_new_tokens);
    eo.seed = seed;
    SFPO_ASSIGN_OR_RETURN(std::unique_ptr<Evaluator> evaluator, Evaluator::Create(eo));
    SFPO_ASSIGN_OR_RETURN(EvalReport report, evaluator->EvaluateCheckpoint(flags.out));
    std::cout << "sft: held-out accuracy on " << flags.eval_prompts << " problems: sampled "
              << report.sampled_accuracy << ", greedy " << report.greedy_accuracy << std::endl;
  }
  return absl::OkStatus();
}

}  // namespace

void AddSftCommand(CLI::App* root, CommandTable* table) {
  auto flags = std::make_shared<SftFlags>();
  CLI::App* sft = root->add_subcommand(
      "sft", "Supervised warm start on {\"prompt\", \"completion\"} pairs (the RL base policy)");
  AddConfigFlags(sft, &flags->config);
  sft->add_option("--out", flags->out, "Output directory (model.safetensors, config.json, log)");
  sft->add_option("--data", flags->data,
                  "JSONL of {\"prompt\", \"completion\"|\"solution\"|\"answer\"} (default: data.task)");
  sft->add_option("--init", flags->init, "Checkpoint to start from (default: model.init)");
  sft->add_option("--steps", flags->steps, "Optimizer steps")->capture_default_str();
  sft->add_option("--batch", flags->batch, "Examples per step")->capture_default_str();
  sft->add_option("--lr", flags->lr, "Peak learning rate (cosine to 10%)")->capture_default_str();
  sft->add_option("--warmup", flags->warmup, "Linear warmup steps")->capture_default_str();
  sft->add_option("--seed", flags->seed, "Seed for init and data order (default: run.seed)");
  sft->add_option("--eval-prompts", flags->eval_prompts,
                  "Held-out problems to evaluate after training (built-in tasks; 0: skip)")
      ->capture_default_str();
  sft->add_option("--log-every", flags->log_every, "Log every N steps")->capture_default_str();
  table->emplace_back(sft, [flags] {
    absl::Status status = RunSftCommand(*flags);
    return status.ok() ? 0 : FailWith(status);
  });
}

}  // namespace sfpo
