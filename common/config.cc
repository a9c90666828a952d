#include "common/config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "yaml-cpp/yaml.h"

namespace sfpo {
namespace {

// Calls f(section, key, field&) for every configurable field. The one table of key names.
template <typename C, typename F>
void VisitFields(C& c, F&& f) {
  f("run", "name", c.run.name);
  f("run", "output_dir", c.run.output_dir);
  f("run", "total_steps", c.run.total_steps);
  f("run", "seed", c.run.seed);
  f("run", "checkpoint_every", c.run.checkpoint_every);
  f("run", "keep_checkpoints", c.run.keep_checkpoints);
  f("run", "resume", c.run.resume);
  f("run", "device", c.run.device);
  f("run", "threads", c.run.threads);
  f("model", "config", c.model.config);
  f("model", "init", c.model.init);
  f("data", "task", c.data.task);
  f("data", "batch_prompts", c.data.batch_prompts);
  f("data", "eval_every", c.data.eval_every);
  f("data", "eval_prompts", c.data.eval_prompts);
  f("rollout", "group_size", c.rollout.group_size);
  f("rollout", "temperature", c.rollout.temperature);
  f("rollout", "top_p", c.rollout.top_p);
  f("rollout", "top_k", c.rollout.top_k);
  f("rollout", "max_new_tokens", c.rollout.max_new_tokens);
  f("rollout", "max_staleness", c.rollout.max_staleness);
  f("rollout", "workers", c.rollout.workers);
  f("rollout", "batch_leases", c.rollout.batch_leases);
  f("rollout", "lease_timeout_s", c.rollout.lease_timeout_s);
  f("rollout", "weights_dtype", c.rollout.weights_dtype);
  f("reward", "verifier", c.reward.verifier);
  f("reward", "format_reward", c.reward.format_reward);
  f("reward", "replicas", c.reward.replicas);
  f("reward", "item_deadline_ms", c.reward.item_deadline_ms);
  f("learner", "algorithm", c.learner.algorithm);
  f("learner", "lr", c.learner.lr);
  f("learner", "warmup_steps", c.learner.warmup_steps);
  f("learner", "schedule", c.learner.schedule);
  f("learner", "mini_batch_prompts", c.learner.mini_batch_prompts);
  f("learner", "micro_batch_tokens", c.learner.micro_batch_tokens);
  f("learner", "clip_low", c.learner.clip_low);
  f("learner", "clip_high", c.learner.clip_high);
  f("learner", "entropy_coef", c.learner.entropy_coef);
  f("learner", "kl_coef", c.learner.kl_coef);
  f("learner", "kl_estimator", c.learner.kl_estimator);
  f("learner", "grad_clip", c.learner.grad_clip);
  f("learner", "weight_decay", c.learner.weight_decay);
  f("learner", "adam_beta1", c.learner.adam_beta1);
  f("learner", "adam_beta2", c.learner.adam_beta2);
  f("learner", "adam_eps", c.learner.adam_eps);
  f("learner", "loss_agg", c.learner.loss_agg);
  f("learner", "normalize_adv_std", c.learner.normalize_adv_std);
  f("learner", "drop_zero_variance_groups", c.learner.drop_zero_variance_groups);
  f("learner", "ranks", c.learner.ranks);
  f("learner", "bucket_mb", c.learner.bucket_mb);
  f("learner", "overlap_grad_reduce", c.learner.overlap_grad_reduce);
  f("learner", "param_delta_norm", c.learner.param_delta_norm);
  f("sfpo", "inner_steps", c.sfpo.inner_steps);
  f("sfpo", "alpha", c.sfpo.alpha);
  f("sfpo", "gate", c.sfpo.gate);
  f("sfpo", "gate_window", c.sfpo.gate_window);
  f("sfpo", "gate_threshold", c.sfpo.gate_threshold);
  f("sfpo", "stop_step", c.sfpo.stop_step);
  f("sfpo", "theta0_device", c.sfpo.theta0_device);
}

const char* TypeName(const std::string&) { return "a string"; }
const char* TypeName(const int64_t&) { return "an integer"; }
const char* TypeName(const double&) { return "a number"; }
const char* TypeName(const bool&) { return "a boolean (true/false)"; }

// Assigns a YAML scalar to a typed field; false when the scalar has the wrong type.
template <typename T>
bool Assign(const YAML::Node& node, T& field) {
  if (!node.IsScalar()) return false;
  try {
    if constexpr (std::is_same_v<T, int64_t>) {
      // yaml-cpp would accept "1.5" for an integer by truncating; refuse it.
      const std::string& s = node.Scalar();
      if (s.find_first_of(".eE") != std::string::npos) return false;
    }
    if constexpr (std::is_same_v<T, bool>) {
      // YAML 1.2 booleans only: yaml-cpp would also take YAML 1.1's yes/no/on/off/y/n, which
      // turn a typo or a country code ("no") into a silent false.
      const std::string& s = node.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") {
        field = true;
        return true;
      }
      if (s == "false" || s == "False" || s == "FALSE") {
        field = false;
        return true;
      }
      return false;
    }
    T value = node.as<T>();
    if constexpr (std::is_same_v<T, double>) {
      if (std::isnan(value)) return false;  // No setting is meaningful as NaN.
    }
    field = value;
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

using Setter = std::function<bool(const YAML::Node&)>;
struct FieldRef {
  Setter set;
  const char* type;
};

std::map<std::string, FieldRef> FieldTable(Config& c) {
  std::map<std::string, FieldRef> table;
  VisitFields(c, [&](const char* section, const char* key, auto& field) {
    table[absl::StrCat(section, ".", key)] =
        FieldRef{[&field](const YAML::Node& n) { return Assign(n, field); }, TypeName(field)};
  });
  return table;
}

absl::Status SetKey(std::map<std::string, FieldRef>& table, const std::string& key,
                    const YAML::Node& value, const std::string& source) {
  auto it = table.find(key);
  if (it == table.end()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": unknown config key '", key, "'"));
  }
  if (!it->second.set(value)) {
    std::ostringstream shown;
    shown << value;
    return absl::InvalidArgumentError(absl::StrCat(source, ": config key '", key, "' must be ",
                                                   it->second.type, ", got '", shown.str(), "'"));
  }
  return absl::OkStatus();
}

absl::Status Choice(const std::string& key, const std::string& value,
                    std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (value == a) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must be one of ",
                                                 absl::StrJoin(allowed, "|"), ", got '", value,
                                                 "'"));
}

absl::Status Check(bool ok, const std::string& key, const std::string& what) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' ", what));
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& source,
                                   const std::vector<std::string>& sets) {
  Config config;
  auto table = FieldTable(config);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid YAML: ", e.what()));
  }
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the config must be a mapping of sections"));
    }
    std::set<std::string> known_sections;
    for (const auto& [k, _] : table) known_sections.insert(k.substr(0, k.find('.')));
    for (const auto& section : root) {
      const std::string name = section.first.as<std::string>();
      if (!section.second.IsMap()) {
        if (section.second.IsNull()) continue;
        const bool known = known_sections.count(name) > 0;
        return absl::InvalidArgumentError(
            known ? absl::StrCat(source, ": config section '", name, "' must be a mapping")
                  : absl::StrCat(source, ": unknown config section '", name, "'"));
      }
      if (known_sections.count(name) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": unknown config section '", name, "'"));
      }
      for (const auto& kv : section.second) {
        SFPO_RETURN_IF_ERROR(
            SetKey(table, absl::StrCat(name, ".", kv.first.as<std::string>()), kv.second, source));
      }
    }
  }
  for (const std::string& set : sets) {
    const size_t eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set '", set, "': expected section.key=value"));
    }
    const std::string key = set.substr(0, eq);
    YAML::Node value;
    try {
      value = YAML::Load(set.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("--set ", key, ": invalid value: ", e.what()));
    }
    if (value.IsNull()) value = YAML::Node(std::string());
    SFPO_RETURN_IF_ERROR(SetKey(table, key, value, "--set"));
  }
  SFPO_RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path, const std::vector<std::string>& sets) {
  std::string text;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("config file '", path, "' cannot be read"));
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  return ParseConfig(text, path.empty() ? "defaults" : path, sets);
}

absl::Status ValidateConfig(const Config& c) {
  SFPO_RETURN_IF_ERROR(Choice("run.device", c.run.device, {"auto", "cpu", "cuda"}));
  SFPO_RETURN_IF_ERROR(Check(c.run.total_steps >= 1, "run.total_steps", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.run.checkpoint_every >= 0, "run.checkpoint_every", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(c.run.keep_checkpoints >= 1, "run.keep_checkpoints", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.run.threads >= 0, "run.threads", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(!c.run.output_dir.empty(), "run.output_dir", "must not be empty"));
  SFPO_RETURN_IF_ERROR(Check(!c.model.config.empty(), "model.config", "must not be empty"));
  SFPO_RETURN_IF_ERROR(Check(!c.data.task.empty(), "data.task", "must not be empty"));
  SFPO_RETURN_IF_ERROR(Check(c.data.batch_prompts >= 1, "data.batch_prompts", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.data.eval_every >= 0, "data.eval_every", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(c.data.eval_prompts >= 1, "data.eval_prompts", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.rollout.group_size >= 1, "rollout.group_size", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.rollout.temperature >= 0, "rollout.temperature", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(
      Check(c.rollout.top_p > 0 && c.rollout.top_p <= 1, "rollout.top_p", "must be in (0, 1]"));
  SFPO_RETURN_IF_ERROR(
      Check(c.rollout.max_new_tokens >= 1, "rollout.max_new_tokens", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(
      Check(c.rollout.max_staleness >= 0, "rollout.max_staleness", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(c.rollout.workers >= 1, "rollout.workers", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.rollout.batch_leases >= 1, "rollout.batch_leases", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(
      Check(c.rollout.lease_timeout_s >= 1, "rollout.lease_timeout_s", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Choice("rollout.weights_dtype", c.rollout.weights_dtype, {"f32", "bf16"}));
  SFPO_RETURN_IF_ERROR(Choice("reward.verifier", c.reward.verifier, {"task", "math"}));
  SFPO_RETURN_IF_ERROR(Check(c.reward.format_reward >= 0 && c.reward.format_reward <= 1,
                             "reward.format_reward", "must be in [0, 1]"));
  SFPO_RETURN_IF_ERROR(Check(c.reward.replicas >= 1, "reward.replicas", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(
      Check(c.reward.item_deadline_ms >= 1, "reward.item_deadline_ms", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Choice("learner.algorithm", c.learner.algorithm, {"sfpo", "grpo"}));
  SFPO_RETURN_IF_ERROR(Check(c.learner.lr > 0, "learner.lr", "must be > 0"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.warmup_steps >= 0, "learner.warmup_steps", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Choice("learner.schedule", c.learner.schedule, {"constant", "cosine"}));
  SFPO_RETURN_IF_ERROR(
      Check(c.learner.mini_batch_prompts >= 1, "learner.mini_batch_prompts", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(
      Check(c.learner.micro_batch_tokens >= 1, "learner.micro_batch_tokens", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.clip_low >= 0 && c.learner.clip_low < 1, "learner.clip_low",
                             "must be in [0, 1)"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.clip_high >= 0, "learner.clip_high", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.kl_coef >= 0, "learner.kl_coef", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Choice("learner.kl_estimator", c.learner.kl_estimator, {"k1", "k3"}));
  SFPO_RETURN_IF_ERROR(Check(c.learner.grad_clip >= 0, "learner.grad_clip", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.weight_decay >= 0, "learner.weight_decay", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.adam_beta1 >= 0 && c.learner.adam_beta1 < 1,
                             "learner.adam_beta1", "must be in [0, 1)"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.adam_beta2 >= 0 && c.learner.adam_beta2 < 1,
                             "learner.adam_beta2", "must be in [0, 1)"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.adam_eps > 0, "learner.adam_eps", "must be > 0"));
  SFPO_RETURN_IF_ERROR(Choice("learner.loss_agg", c.learner.loss_agg, {"token_mean", "seq_mean"}));
  SFPO_RETURN_IF_ERROR(Check(c.learner.ranks >= 1, "learner.ranks", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.learner.bucket_mb >= 1, "learner.bucket_mb", "must be >= 1"));
  SFPO_RETURN_IF_ERROR(Check(c.sfpo.inner_steps >= 0, "sfpo.inner_steps", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(
      Check(c.sfpo.alpha >= 0 && c.sfpo.alpha <= 1, "sfpo.alpha", "must be in [0, 1]"));
  SFPO_RETURN_IF_ERROR(Choice("sfpo.gate", c.sfpo.gate, {"entropy", "step", "none"}));
  SFPO_RETURN_IF_ERROR(Check(c.sfpo.gate_window >= 2, "sfpo.gate_window", "must be >= 2"));
  SFPO_RETURN_IF_ERROR(Check(c.sfpo.stop_step >= 0, "sfpo.stop_step", "must be >= 0"));
  SFPO_RETURN_IF_ERROR(Choice("sfpo.theta0_device", c.sfpo.theta0_device, {"device", "host"}));
  return absl::OkStatus();
}

std::string ConfigToYaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string current;
  VisitFields(config, [&](const char* section, const char* key, const auto& field) {
    if (current != section) {
      if (!current.empty()) out << YAML::EndMap;
      current = section;
      out << YAML::Key << section << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << key << YAML::Value;
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, std::string>) {
      out << YAML::DoubleQuoted << field;
    } else if constexpr (std::is_same_v<T, double>) {
      if (std::isinf(field)) {
        out << (field > 0 ? ".inf" : "-.inf");  // The spellings yaml-cpp reads back.
      } else if (std::isnan(field)) {
        out << ".nan";
      } else {
        std::ostringstream s;
        s.precision(17);
        s << field;
        out << s.str();
      }
    } else {
      out << field;
    }
  });
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sfpo
