// The run configuration: one YAML file read by every subcommand, plus `--set a.b=c` overrides.
// Plain structs; defaults are the paper's where it gives one. Only the CLI layer loads it;
// libraries take their own Options structs built from it.
#ifndef SFPO_COMMON_CONFIG_H_
#define SFPO_COMMON_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sfpo {

struct RunConfig {
  std::string name = "sfpo";
  std::string output_dir = "runs/sfpo";
  int64_t total_steps = 100;
  int64_t seed = 0;
  int64_t checkpoint_every = 0;  // 0: only at the end and on SIGTERM.
  int64_t keep_checkpoints = 3;
  bool resume = false;
  std::string device = "auto";  // auto | cpu | cuda
  int64_t threads = 0;          // 0: Torch's default.
};

struct ModelConfig {
  std::string config = "tiny-char";  // built-in name or a directory with config.json
  std::string init;                  // checkpoint (directory or .safetensors) to start from
};

struct DataConfig {
  std::string task = "countdown3";  // built-in task or a JSONL file of {"prompt","answer"}
  int64_t batch_prompts = 256;
  int64_t eval_every = 0;  // 0: no evaluation
  int64_t eval_prompts = 1000;
};

struct RolloutConfig {
  int64_t group_size = 8;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = -1;
  int64_t max_new_tokens = 32;
  int64_t max_staleness = 0;
  int64_t workers = 1;       // local mode only
  int64_t batch_leases = 8;  // leases a worker generates together
  int64_t lease_timeout_s = 60;
  std::string weights_dtype = "f32";  // f32 | bf16 on the wire
};

struct RewardConfig {
  std::string verifier = "task";  // task | math
  double format_reward = 0.0;
  int64_t replicas = 1;  // local mode only
  int64_t item_deadline_ms = 100;
};

struct LearnerConfig {
  std::string algorithm = "sfpo";  // sfpo | grpo
  double lr = 1e-6;
  int64_t warmup_steps = 0;
  std::string schedule = "constant";  // constant | cosine
  int64_t mini_batch_prompts = 64;
  int64_t micro_batch_tokens = 16384;
  double clip_low = 0.2;
  double clip_high = 0.2;
  double entropy_coef = 0.001;
  double kl_coef = 0.0;
  std::string kl_estimator = "k3";  // k1 | k3
  double grad_clip = 1.0;
  double weight_decay = 0.01;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  std::string loss_agg = "token_mean";  // token_mean | seq_mean
  bool normalize_adv_std = true;
  bool drop_zero_variance_groups = false;
  int64_t ranks = 1;
  int64_t bucket_mb = 25;           // data-parallel gradient/parameter bucket size (MiB)
  bool overlap_grad_reduce = true;  // reduce gradient buckets during the backward pass
  // Measure ||theta_next - theta_0|| on GRPO steps too (one saved copy of the parameters, or of
  // this rank's shard); false: no copy on GRPO steps and the step log's param_delta_norm is null.
  bool param_delta_norm = true;
};

struct SfpoConfig {
  int64_t inner_steps = 3;
  double alpha = 0.8;
  std::string gate = "entropy";  // entropy | step | none
  int64_t gate_window = 30;
  double gate_threshold = 1.0;
  int64_t stop_step = 0;
  std::string theta0_device = "device";  // device | host (pinned host memory on a GPU)
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  RolloutConfig rollout;
  RewardConfig reward;
  LearnerConfig learner;
  SfpoConfig sfpo;
};

// Loads `path` (empty: built-in defaults only), then applies each "section.key=value" override
// in order, then validates. Errors (INVALID_ARGUMENT, or NOT_FOUND for a missing file) name the
// file and the offending key: unknown sections or keys, values of the wrong type, values out
// of range or not among the allowed choices.
absl::StatusOr<Config> LoadConfig(const std::string& path, const std::vector<std::string>& sets);

// Parses YAML text (as LoadConfig does for a file's contents). `source` names it in errors.
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& source,
                                   const std::vector<std::string>& sets);

// Checks ranges and choices; INVALID_ARGUMENT naming the key.
absl::Status ValidateConfig(const Config& config);

// The resolved configuration as YAML, every key present; ParseConfig(ToYaml(c)) == c.
std::string ConfigToYaml(const Config& config);

}  // namespace sfpo

#endif  // SFPO_COMMON_CONFIG_H_
