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

  std::string data_path = flags.data;
  if (data_path.empty()) {
    if (!std::filesystem::is_regular_file(config.data.task)) {
      return absl::UnimplementedError(absl::StrCat(
          "data.task '", config.data.task,
          "' is not a JSONL file and built-in task generators are not wired into sft yet; pass "
          "--data FILE.jsonl of {\"prompt\", \"completion\"}"));
    }
    data_path = config.data.task;
  }
  SFPO_ASSIGN_OR_RETURN(std::vector<SftText> data, ReadJsonl(data_path));

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
  ShuffledSource source(std::move(data), seed);
  SFPO_LOG(INFO) << "sft: " << ParameterCount(arch) << " parameters, " << flags.steps
                 << " steps of " << flags.batch << " examples from " << data_path;
  SFPO_RETURN_IF_ERROR(RunSft(
      policy.ptr(), *tokenizer, [&](int64_t i) { return source(i); }, options,
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
  sft->add_option("--log-every", flags->log_every, "Log every N steps")->capture_default_str();
  table->emplace_back(sft, [flags] {
    absl::Status status = RunSftCommand(*flags);
    return status.ok() ? 0 : FailWith(status);
  });
}

}  // namespace sfpo
