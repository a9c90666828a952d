#include "cli/factory.h"

#include <torch/torch.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model_arch.h"
#include "common/status.h"
#include "common/tasks.h"
#include "common/tokenizer.h"
#include "services/learner/evaluator.h"
#include "services/learner/policy_updater.h"
#include "services/rollout/torch_generator.h"

namespace sfpo {

void ConfigureThreads(const Config& config) {
  if (config.run.threads > 0) torch::set_num_threads(static_cast<int>(config.run.threads));
}

namespace {

absl::Status CheckRanks(const Config& config, const GlooOptions* gloo) {
  if (gloo == nullptr && config.learner.ranks > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("learner.ranks = ", config.learner.ranks,
                     " needs --rank, --world-size and --rendezvous (or sfpo local)"));
  }
  if (gloo != nullptr && gloo->world_size != config.learner.ranks) {
    return absl::InvalidArgumentError(absl::StrCat("learner.ranks = ", config.learner.ranks,
                                                   " but the world size is ", gloo->world_size));
  }
  return absl::OkStatus();
}

std::function<absl::StatusOr<std::unique_ptr<Collectives>>()> CollectivesFactory(
    const GlooOptions* gloo) {
  if (gloo == nullptr || gloo->world_size <= 1) return nullptr;
  const GlooOptions g = *gloo;
  return [g]() { return CreateGlooCollectives(g); };
}

}  // namespace

LocalLearnerRanks::~LocalLearnerRanks() {
  if (started()) Stop().IgnoreError();
}

absl::Status LocalLearnerRanks::Start(const Config& config, GlooOptions* rank0) {
  const absl::Duration timeout = absl::Seconds(120);
  SFPO_ASSIGN_OR_RETURN(rendezvous_, RendezvousServer::Start(0, timeout));
  const int world = static_cast<int>(config.learner.ranks);
  status_.resize(world);
  for (int r = 1; r < world; ++r) {
    GlooOptions g;
    g.rank = r;
    g.world_size = world;
    g.store_port = rendezvous_->port();
    g.device_host = "127.0.0.1";
    g.timeout = timeout;
    done_.push_back(std::make_unique<absl::Notification>());
    absl::Notification* finished = done_.back().get();
    threads_.emplace_back([this, config, g, r, finished] {
      status_[r] = RunLearnerFollower(config, g);
      if (!status_[r].ok()) SFPO_LOG(ERROR) << status_[r];
      finished->Notify();
    });
  }
  rank0->rank = 0;
  rank0->world_size = world;
  rank0->store_port = rendezvous_->port();
  rank0->device_host = "127.0.0.1";
  rank0->timeout = timeout;
  return absl::OkStatus();
}

absl::Status LocalLearnerRanks::Stop() {
  for (auto& d : done_) d->WaitForNotificationWithTimeout(absl::Seconds(10));
  rendezvous_.reset();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  for (const absl::Status& s : status_) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RunLearnerFollower(const Config& config, const GlooOptions& gloo) {
  SFPO_RETURN_IF_ERROR(CheckRanks(config, &gloo));
  PolicyUpdaterOptions uo;
  uo.config = config;
  uo.make_collectives = CollectivesFactory(&gloo);
  return RunFollowerRank(uo);
}

absl::StatusOr<LearnerServerOptions> BuildLearnerOptions(const Config& config,
                                                         const GlooOptions* rank0) {
  SFPO_RETURN_IF_ERROR(CheckRanks(config, rank0));
  if (rank0 != nullptr && rank0->rank != 0) {
    return absl::InvalidArgumentError("the learner service is rank 0");
  }
  auto make_collectives = CollectivesFactory(rank0);
  TaskOptions to;
  to.test_size = config.data.eval_prompts;
  SFPO_ASSIGN_OR_RETURN(std::shared_ptr<Task> task, CreateTask(config.data.task, to));
  SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(config.model.config));
  std::shared_ptr<Tokenizer> tokenizer = MakeCharTokenizer();
  if (tokenizer->vocab_size() > arch.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.config '", config.model.config, "' has vocab_size ", arch.vocab_size,
        ", smaller than the character tokenizer's ", tokenizer->vocab_size()));
  }
  // Every training prompt must be encodable: check the first few now, fail fast.
  for (uint64_t i = 0; i < 8; ++i) {
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer->Encode(task->TrainProblem(static_cast<uint64_t>(config.run.seed), i).prompt);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.task '", config.data.task, "': ", ids.status().message()));
    }
  }
  LearnerServerOptions o;
  LeaseTableOptions& l = o.leases;
  l.group_size = static_cast<int32_t>(config.rollout.group_size);
  l.batch_prompts = static_cast<int32_t>(config.data.batch_prompts);
  l.max_staleness = config.rollout.max_staleness;
  l.lease_timeout = absl::Seconds(config.rollout.lease_timeout_s);
  l.vocab_size = static_cast<int32_t>(arch.vocab_size);
  l.max_new_tokens = static_cast<int32_t>(config.rollout.max_new_tokens);
  l.sampling.temperature = config.rollout.temperature;
  l.sampling.top_p = config.rollout.top_p;
  l.sampling.top_k = static_cast<int32_t>(config.rollout.top_k);
  l.sampling.max_new_tokens = static_cast<int32_t>(config.rollout.max_new_tokens);
  l.sampling.stop_tokens = {tokenizer->eos_id()};
  l.seed = static_cast<uint64_t>(config.run.seed);
  const uint64_t seed = l.seed;
  l.prompt_source = [task, tokenizer, seed](uint64_t cursor) {
    Problem p = task->TrainProblem(seed, cursor);
    PromptSpec spec;
    spec.prompt_id = cursor;
    spec.task = task->checker();
    spec.tokens = {tokenizer->bos_id()};
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(p.prompt);
    if (ids.ok()) {
      spec.tokens.insert(spec.tokens.end(), ids->begin(), ids->end());
    } else {
      SFPO_LOG(WARNING) << "prompt " << cursor << " not encodable: " << ids.status();
    }
    spec.text = std::move(p.prompt);
    spec.answer = std::move(p.answer);
    return spec;
  };
  LearnerLoopOptions& loop = o.loop;
  loop.total_steps = config.run.total_steps;
  loop.batch_prompts = l.batch_prompts;
  loop.group_size = l.group_size;
  loop.checkpoint_every = config.run.checkpoint_every;
  loop.eval_every = config.data.eval_every;
  loop.resume = config.run.resume;
  loop.output_dir = config.run.output_dir;
  o.make_updater = [config, tokenizer,
                    make_collectives]() -> absl::StatusOr<std::unique_ptr<PolicyUpdater>> {
    PolicyUpdaterOptions uo;
    uo.config = config;
    uo.make_collectives = make_collectives;
    uo.wire_dtype = config.rollout.weights_dtype == "bf16" ? WireDType::kBF16 : WireDType::kF32;
    uo.pad_id = tokenizer->pad_id();
    if (config.data.eval_every > 0) {
      EvaluatorOptions eo;
      eo.model_config = config.model.config;
      eo.task = config.data.task;
      eo.problems = config.data.eval_prompts;
      eo.max_new_tokens = static_cast<int32_t>(config.rollout.max_new_tokens);
      eo.seed = static_cast<uint64_t>(config.run.seed);
      eo.format_reward = config.reward.format_reward;
      SFPO_ASSIGN_OR_RETURN(std::shared_ptr<Evaluator> evaluator, Evaluator::Create(eo));
      uo.evaluate = [evaluator](const PackedWeights& w) { return evaluator->Evaluate(w); };
    }
    return MakeTorchPolicyUpdater(uo);
  };
  return o;
}

absl::StatusOr<RolloutServerOptions> BuildRolloutOptions(const Config& config) {
  SFPO_ASSIGN_OR_RETURN(ModelArch arch, LoadModelArch(config.model.config));
  (void)arch;
  RolloutServerOptions o;
  o.max_leases = static_cast<int>(config.rollout.batch_leases);
  o.format_reward = config.reward.format_reward;
  o.item_deadline = absl::Milliseconds(config.reward.item_deadline_ms);
  const std::string model = config.model.config;
  const uint64_t seed = static_cast<uint64_t>(config.run.seed);
  o.make_generator = [model, seed]() {
    TorchGeneratorOptions go;
    go.model_config = model;
    go.init_seed = seed;
    return MakeTorchGenerator(go);
  };
  return o;
}

RewardServerOptions BuildRewardOptions(const Config& config) {
  RewardServerOptions o;
  o.default_item_deadline = absl::Milliseconds(config.reward.item_deadline_ms);
  return o;
}

}  // namespace sfpo
