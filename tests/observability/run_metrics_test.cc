// A short `sfpo local` run watched from the outside the way an operator's Prometheus watches it:
// every service's /metrics is scraped while the run goes and once more after it ends (`--linger`
// keeps the final expositions up), and what they say is checked against the step log, against
// each other, against deploy/metrics.txt and with `promtool check metrics`. The progress lines
// on stderr (a file here, not a terminal) must be plain lines.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/subprocess.h"
#include "tests/observability/exposition.h"

namespace sfpo {
namespace {

using ::sfpo::testing::Exposition;
using ::sfpo::testing::ListedMetric;
using ::sfpo::testing::ProcessResult;
using ::sfpo::testing::SfpoBinary;
using ::sfpo::testing::Subprocess;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

// The run: small enough for seconds on 2 cores, long enough for two evaluations.
constexpr int kSteps = 4;
constexpr int kBatchPrompts = 4;
constexpr int kGroupSize = 4;
constexpr int kWorkers = 2;
constexpr int kEvalEvery = 2;
// Bounds, not expectations.
constexpr absl::Duration kRunBound = absl::Seconds(240);
constexpr absl::Duration kExitBound = absl::Seconds(20);
constexpr absl::Duration kScrapeEvery = absl::Milliseconds(50);
constexpr char kLingerLine[] = "local: run finished; lingering";

struct Service {
  std::string role;
  std::string host;
  int port = 0;
};

struct Scrape {
  std::string text;
  Exposition exposition;
};

absl::StatusOr<std::vector<Service>> ReadEndpoints(const std::string& path) {
  const nlohmann::json file =
      nlohmann::json::parse(testing::ReadFile(path), nullptr, /*allow_exceptions=*/false);
  if (!file.is_object() || !file.contains("services") || !file["services"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("bad endpoints file ", path));
  }
  std::vector<Service> services;
  static const std::regex kUrl(R"(http://([0-9.]+):([0-9]+)/metrics)");
  for (const nlohmann::json& s : file["services"]) {
    std::smatch m;
    const std::string url = s.value("metrics", "");
    if (!std::regex_match(url, m, kUrl)) {
      return absl::InvalidArgumentError(absl::StrCat("bad metrics url '", url, "'"));
    }
    Service service{s.value("role", ""), m[1].str(), 0};
    if (!absl::SimpleAtoi(m[2].str(), &service.port)) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in '", url, "'"));
    }
    services.push_back(service);
  }
  // The learner first: the others' counters, scraped after it, can then only be larger.
  std::stable_partition(services.begin(), services.end(),
                        [](const Service& s) { return s.role == "learner"; });
  return services;
}

absl::StatusOr<Scrape> ScrapeOnce(const Service& service) {
  SFPO_ASSIGN_OR_RETURN(std::string text, HttpGet(service.host, service.port, "/metrics"));
  absl::StatusOr<Exposition> e = testing::ParseExposition(text);
  if (!e.ok()) {
    return absl::DataLossError(
        absl::StrCat(service.role, " :", service.port, ": ", e.status().message()));
  }
  return Scrape{std::move(text), *std::move(e)};
}

// Every record of the step log, parsed.
std::vector<nlohmann::json> ReadStepLog(const std::string& path) {
  std::vector<nlohmann::json> records;
  for (absl::string_view line : absl::StrSplit(testing::ReadFile(path), '\n', absl::SkipEmpty())) {
    records.push_back(nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false));
  }
  return records;
}

// The metric equals the logged number; the step log writes NaN as null.
void ExpectLogged(const Exposition& e, const std::string& name, const nlohmann::json& logged,
                  const testing::Labels& labels = {}) {
  SCOPED_TRACE(name);
  const std::optional<double> v = e.Value(name, labels);
  ASSERT_TRUE(v.has_value()) << "not exported";
  if (logged.is_null()) {
    EXPECT_TRUE(std::isnan(*v)) << *v;
  } else {
    ASSERT_TRUE(logged.is_number() || logged.is_boolean()) << logged.dump();
    EXPECT_DOUBLE_EQ(*v,
                     logged.is_boolean() ? (logged.get<bool>() ? 1.0 : 0.0) : logged.get<double>());
  }
}

// Runs `promtool check metrics` on `text`; its complaints, "" when it has none.
std::string PromtoolComplaints(const std::string& text, const std::string& dir,
                               const std::string& name) {
  const std::string path = absl::StrCat(dir, "/", name, ".prom");
  std::ofstream(path) << text;
  absl::StatusOr<ProcessResult> r = testing::RunProcess(
      {"/bin/sh", "-c", absl::StrCat(SFPO_PROMTOOL, " check metrics < ", path)}, absl::Seconds(60));
  if (!r.ok()) return std::string(r.status().message());
  if (r->exit_code != 0) return absl::StrCat("exit ", r->exit_code, ": ", r->out, r->err);
  return "";
}

class RunMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(SfpoBinary().empty())
        << "SFPO_BINARY is not set: run through ctest (sfpo_test sets it) or export it";
    const char* source_dir = std::getenv("SFPO_SOURCE_DIR");
    ASSERT_NE(source_dir, nullptr) << "SFPO_SOURCE_DIR is not set";
    source_dir_ = source_dir;
    ASSERT_EQ(access(SFPO_PROMTOOL, X_OK), 0) << SFPO_PROMTOOL << " is needed (Debian: prometheus)";
    dir_ = testing::MakeTempDir();
    ASSERT_FALSE(dir_.empty());
  }

  std::string source_dir_;
  std::string dir_;
};

TEST_F(RunMetricsTest, ShortLocalRunExportsMetricsThatMoveAndAgreeWithTheStepLog) {
  const std::string endpoints_file = dir_ + "/endpoints.json";
  const std::string run_dir = dir_ + "/run";
  absl::StatusOr<std::unique_ptr<Subprocess>> started =
      Subprocess::Start({SfpoBinary(),
                         "local",
                         "--endpoints-file",
                         endpoints_file,
                         "--linger",
                         "120",
                         "--set",
                         absl::StrCat("run.output_dir=", run_dir),
                         "--set",
                         "model.config=tiny-char",
                         "--set",
                         "data.task=countdown3",
                         "--set",
                         absl::StrCat("data.batch_prompts=", kBatchPrompts),
                         "--set",
                         absl::StrCat("rollout.group_size=", kGroupSize),
                         "--set",
                         absl::StrCat("rollout.workers=", kWorkers),
                         "--set",
                         absl::StrCat("run.total_steps=", kSteps),
                         "--set",
                         absl::StrCat("data.eval_every=", kEvalEvery),
                         "--set",
                         "data.eval_prompts=50"});
  ASSERT_TRUE(started.ok()) << started.status();
  Subprocess& local = **started;

  // Scrape every service until the run has finished and `sfpo local` lingers.
  const absl::Time deadline = absl::Now() + kRunBound;
  while (access(endpoints_file.c_str(), F_OK) != 0) {
    ASSERT_TRUE(local.Running()) << "exited before serving:\n" << local.Stderr();
    ASSERT_LT(absl::Now(), deadline) << "no endpoints file:\n" << local.Stderr();
    absl::SleepFor(absl::Milliseconds(20));
  }
  SFPO_ASSERT_OK_AND_ASSIGN(const std::vector<Service> services, ReadEndpoints(endpoints_file));
  ASSERT_EQ(services.size(), 2u + kWorkers);
  std::vector<std::vector<Scrape>> scrapes(services.size());
  while (!absl::StrContains(local.Stderr(), kLingerLine)) {
    ASSERT_TRUE(local.Running()) << "exited without lingering:\n" << local.Stderr();
    ASSERT_LT(absl::Now(), deadline) << "the run did not finish:\n" << local.Stderr();
    for (size_t i = 0; i < services.size(); ++i) {
      SFPO_ASSERT_OK_AND_ASSIGN(Scrape s, ScrapeOnce(services[i]));
      scrapes[i].push_back(std::move(s));
    }
    absl::SleepFor(kScrapeEvery);
  }
  // The final expositions: the learner has finished and the workers have stopped.
  std::vector<Scrape> last(services.size());
  for (size_t i = 0; i < services.size(); ++i) {
    SFPO_ASSERT_OK_AND_ASSIGN(last[i], ScrapeOnce(services[i]));
    scrapes[i].push_back(last[i]);
  }
  ASSERT_TRUE(local.Signal(SIGTERM));
  SFPO_ASSERT_OK_AND_ASSIGN(ProcessResult exited, local.Wait(kExitBound));
  ASSERT_EQ(exited.exit_code, 0) << exited.err;

  // --- The step log: one record per step, with the fields the design lists. ---
  const std::vector<nlohmann::json> records = ReadStepLog(run_dir + "/steps.jsonl");
  ASSERT_EQ(records.size(), static_cast<size_t>(kSteps));
  std::map<std::string, int> stage_records;  // stage -> records that timed it
  std::map<std::string, double> stage_seconds;
  for (size_t k = 0; k < records.size(); ++k) {
    const nlohmann::json& r = records[k];
    SCOPED_TRACE(r.dump());
    ASSERT_TRUE(r.is_object());
    const int64_t step = static_cast<int64_t>(k) + 1;
    EXPECT_EQ(r.value("step", -1), step);
    EXPECT_EQ(r.value("policy_version", -1), step);
    EXPECT_EQ(r.value("rollouts_total", -1), step * kBatchPrompts * kGroupSize);
    for (const char* number : {"wallclock_s", "reward_mean", "entropy"}) {
      EXPECT_TRUE(r.contains(number) && r[number].is_number()) << number;
    }
    if (k > 0) EXPECT_GT(r["wallclock_s"], records[k - 1]["wallclock_s"]);
    EXPECT_TRUE(r.contains("sfpo_active") && r["sfpo_active"].is_boolean());
    // Accuracy when (and only when) the step evaluated.
    if (step % kEvalEvery == 0) {
      ASSERT_TRUE(r.contains("accuracy") && r["accuracy"].is_number());
      EXPECT_GE(r["accuracy"].get<double>(), 0.0);
      EXPECT_LE(r["accuracy"].get<double>(), 1.0);
    } else {
      EXPECT_FALSE(r.contains("accuracy"));
    }
    ASSERT_TRUE(r.contains("seconds") && r["seconds"].is_object());
    for (const char* stage :
         {"wait_batch", "old_logprob", "fast", "reposition", "slow", "publish"}) {
      EXPECT_TRUE(r["seconds"].contains(stage)) << stage;
    }
    EXPECT_EQ(r["seconds"].contains("eval"), step % kEvalEvery == 0);
    for (const auto& [stage, s] : r["seconds"].items()) {
      ASSERT_TRUE(s.is_number()) << stage;
      EXPECT_GE(s.get<double>(), 0.0) << stage;
      ++stage_records[stage];
      stage_seconds[stage] += s.get<double>();
    }
    ASSERT_TRUE(r.contains("samples") && r["samples"].is_object());
  }
  EXPECT_EQ(stage_records["checkpoint"], 1) << "a checkpoint at the end only";
  const nlohmann::json& final_record = records.back();
  const nlohmann::json& ledger = final_record["samples"];
  EXPECT_EQ(ledger.value("trained", -1), final_record.value("rollouts_total", -2));
  const double scored = ledger.value("scored", 0);
  EXPECT_GE(scored, kSteps * kBatchPrompts * kGroupSize);

  // Which scrape is whose.
  size_t learner = 0;
  std::vector<size_t> workers, rewards;
  for (size_t i = 0; i < services.size(); ++i) {
    if (services[i].role == "learner") learner = i;
    if (services[i].role == "rollout") workers.push_back(i);
    if (services[i].role == "reward") rewards.push_back(i);
  }
  ASSERT_EQ(workers.size(), static_cast<size_t>(kWorkers));
  ASSERT_EQ(rewards.size(), 1u);

  // --- The learner's final exposition is the last record of the step log. ---
  {
    SCOPED_TRACE("learner");
    const Exposition& e = last[learner].exposition;
    EXPECT_THAT(e.Value("sfpo_learner_steps_total"), Optional(static_cast<double>(kSteps)));
    ExpectLogged(e, "sfpo_rollouts_total", final_record["rollouts_total"]);
    ExpectLogged(e, "sfpo_policy_version", final_record["policy_version"]);
    ExpectLogged(e, "sfpo_run_wallclock_seconds", final_record["wallclock_s"]);
    ExpectLogged(e, "sfpo_reward_mean", final_record["reward_mean"]);
    ExpectLogged(e, "sfpo_entropy", final_record["entropy"]);
    ExpectLogged(e, "sfpo_entropy_zscore", final_record["entropy_zscore"]);
    ExpectLogged(e, "sfpo_sfpo_active", final_record["sfpo_active"]);
    ExpectLogged(e, "sfpo_clip_fraction", final_record["clip_fraction"]);
    ExpectLogged(e, "sfpo_grad_norm", final_record["grad_norm"]);
    ExpectLogged(e, "sfpo_logprob_mismatch", final_record["logprob_mismatch"]);
    ExpectLogged(e, "sfpo_accuracy", final_record["accuracy"], {{"split", "eval_sampled"}});
    ExpectLogged(e, "sfpo_accuracy", final_record["accuracy_greedy"], {{"split", "eval_greedy"}});
    ExpectLogged(e, "sfpo_accuracy", final_record["train_accuracy"], {{"split", "train"}});
    // The ledger, state by state: every state the log counts (in_flight and buffered are levels,
    // not counters) and nothing else.
    std::set<std::string> logged_states;
    for (const auto& [state, n] : ledger.items()) {
      if (state == "in_flight" || state == "buffered") continue;
      logged_states.insert(state);
      ExpectLogged(e, "sfpo_samples_total", n, {{"state", state}});
    }
    EXPECT_EQ(e.LabelValues("sfpo_samples_total", "state"), logged_states);
    // Each stage's histogram saw each record that timed the stage.
    for (const auto& [stage, n] : stage_records) {
      SCOPED_TRACE(stage);
      EXPECT_THAT(e.Value("sfpo_step_seconds_count", {{"stage", stage}}),
                  Optional(static_cast<double>(n)));
      const std::optional<double> sum = e.Value("sfpo_step_seconds_sum", {{"stage", stage}});
      ASSERT_TRUE(sum.has_value());
      EXPECT_NEAR(*sum, stage_seconds[stage], 1e-9 * (1 + stage_seconds[stage]));
    }
    // One staleness observation per trained group.
    EXPECT_THAT(e.Value("sfpo_policy_staleness_count"),
                Optional(static_cast<double>(kSteps * kBatchPrompts)));
    // Every worker fetched at least one policy version.
    EXPECT_THAT(e.Value("sfpo_weight_sync_seconds_count"), Optional(Ge(kWorkers)));
    EXPECT_THAT(e.Value("sfpo_weight_publish_bytes_total"), Optional(Ge(1.0)));
  }

  // Seen while the run went: both workers subscribed to the weight stream. (Whether a scrape
  // catches a worker holding leases is a race with the generation, so the leases are checked
  // through their counter below, not through the level.)
  double most_subscribers = 0;
  for (const Scrape& s : scrapes[learner]) {
    most_subscribers =
        std::max(most_subscribers, s.exposition.Value("sfpo_weight_subscribers").value_or(0));
  }
  EXPECT_EQ(most_subscribers, kWorkers);

  // Every trained group was leased by some worker, and the workers took no lease the learner
  // did not count (the ledger counts samples, group_size per lease).
  double leases_taken = 0;
  for (size_t i : workers) leases_taken += last[i].exposition.Sum("sfpo_rollout_leases_total");
  EXPECT_GE(leases_taken, kSteps * kBatchPrompts);
  const std::optional<double> learner_leased =
      last[learner].exposition.Value("sfpo_samples_total", {{"state", "leased"}});
  ASSERT_TRUE(learner_leased.has_value());
  EXPECT_LE(leases_taken * kGroupSize, *learner_leased);

  // --- Workers and verifier: everything scored was generated and judged. ---
  double sequences = 0, tokens = 0, batches = 0;
  for (size_t i : workers) {
    SCOPED_TRACE(absl::StrCat("worker :", services[i].port));
    const Exposition& e = last[i].exposition;
    sequences += e.Sum("sfpo_rollout_sequences_total");
    tokens += e.Sum("sfpo_rollout_tokens_total");
    batches += e.Sum("sfpo_rollout_generate_seconds_count");
    const std::optional<double> version = e.Value("sfpo_rollout_policy_version");
    ASSERT_TRUE(version.has_value());
    EXPECT_GE(*version, 0);
    EXPECT_LE(*version, final_record["policy_version"].get<double>());
    EXPECT_THAT(e.Value("sfpo_rollout_weight_apply_seconds_count"), Optional(Ge(1.0)));
    EXPECT_THAT(e.Value("sfpo_rollout_leases_in_flight"), Optional(0.0)) << "stopped";
  }
  EXPECT_GE(sequences, scored);
  EXPECT_GE(tokens, sequences) << "every completion has a token";
  EXPECT_GE(batches, 1);
  {
    SCOPED_TRACE("reward");
    const Exposition& e = last[rewards[0]].exposition;
    const double verdicts = e.Sum("sfpo_reward_verdicts_total");
    EXPECT_GE(verdicts, scored);
    EXPECT_THAT(e.Value("sfpo_reward_items_total"), Optional(verdicts));
    EXPECT_EQ(e.Sum("sfpo_reward_errors_total"),
              e.Value("sfpo_reward_verdicts_total", {{"verdict", "error"}}).value_or(-1));
    EXPECT_THAT(e.Value("sfpo_reward_request_seconds_count"), Optional(Ge(1.0)));
  }

  // --- Counters move: never backwards, and forwards while the run goes. ---
  for (size_t i = 0; i < services.size(); ++i) {
    SCOPED_TRACE(absl::StrCat(services[i].role, " :", services[i].port));
    ASSERT_GE(scrapes[i].size(), 2u);
    for (size_t j = 1; j < scrapes[i].size(); ++j) {
      const Exposition& before = scrapes[i][j - 1].exposition;
      const Exposition& after = scrapes[i][j].exposition;
      for (const testing::Sample& s : after.samples) {
        const std::string type = after.families.at(after.FamilyOf(s.name)).type;
        if (type != "counter" && type != "histogram") continue;
        const std::optional<double> was = before.Value(s.name, s.labels);
        if (was) EXPECT_GE(s.value, *was) << s.name << " went backwards in scrape " << j;
      }
    }
  }
  auto first_and_last = [&](size_t i, const std::string& name) {
    return std::make_pair(scrapes[i].front().exposition.Sum(name), last[i].exposition.Sum(name));
  };
  EXPECT_LT(first_and_last(learner, "sfpo_rollouts_total").first,
            first_and_last(learner, "sfpo_rollouts_total").second);
  EXPECT_LT(first_and_last(rewards[0], "sfpo_reward_verdicts_total").first,
            first_and_last(rewards[0], "sfpo_reward_verdicts_total").second);
  double first_sequences = 0;
  for (size_t i : workers)
    first_sequences += first_and_last(i, "sfpo_rollout_sequences_total").first;
  EXPECT_LT(first_sequences, sequences);
  // The learner's step counter, scrape after scrape: exported from the first scrape on, never
  // back, within [0, kSteps], and at kSteps in the end. (How many distinct values the scrapes
  // catch depends on timing; learner_metrics_test follows the steps one by one.)
  double previous_step = 0;
  for (const Scrape& s : scrapes[learner]) {
    const std::optional<double> step = s.exposition.Value("sfpo_learner_steps_total");
    ASSERT_TRUE(step.has_value());
    EXPECT_GE(*step, previous_step);
    EXPECT_LE(*step, kSteps);
    previous_step = *step;
  }
  EXPECT_EQ(previous_step, kSteps);

  // --- deploy/metrics.txt and the expositions agree, role by role. ---
  SFPO_ASSERT_OK_AND_ASSIGN(
      const std::vector<ListedMetric> listed,
      testing::ParseMetricList(testing::ReadFile(source_dir_ + "/deploy/metrics.txt")));
  for (size_t i = 0; i < services.size(); ++i) {
    const std::string& role = services[i].role;
    SCOPED_TRACE(absl::StrCat(role, " :", services[i].port));
    const Exposition& e = last[i].exposition;
    std::set<std::string> want, have;
    for (const ListedMetric& m : listed) {
      if (m.role != role) continue;
      want.insert(m.name);
      auto family = e.families.find(m.name);
      if (family == e.families.end()) continue;  // reported by the set comparison below
      EXPECT_EQ(family->second.type, m.type) << m.name;
      EXPECT_FALSE(family->second.help.empty()) << m.name << " has no help text";
      const std::string sample_name = m.type == "histogram" ? m.name + "_count" : m.name;
      for (const testing::Sample& s : e.samples) {
        if (s.name != sample_name) continue;
        std::set<std::string> keys;
        for (const auto& [k, v] : s.labels) keys.insert(k);
        std::set<std::string> listed_keys;
        for (const auto& [k, v] : m.labels) listed_keys.insert(k);
        EXPECT_EQ(keys, listed_keys) << m.name << " carries other labels than listed";
      }
      for (const auto& [label, values] : m.labels) {
        if (values) {
          EXPECT_EQ(e.LabelValues(sample_name, label), *values) << m.name << "{" << label << "}";
        }
      }
    }
    for (const auto& [name, family] : e.families) have.insert(name);
    EXPECT_EQ(have, want) << "exported families and deploy/metrics.txt's " << role
                          << " list differ";
  }

  // --- promtool accepts every exposition, before the run moved and at its end. ---
  for (size_t i = 0; i < services.size(); ++i) {
    const std::string name = absl::StrCat(services[i].role, "_", i);
    EXPECT_EQ(PromtoolComplaints(scrapes[i].front().text, dir_, name + "_first"), "") << name;
    EXPECT_EQ(PromtoolComplaints(last[i].text, dir_, name + "_last"), "") << name;
  }

  // --- stderr is a file, not a terminal: one plain progress line per step. ---
  EXPECT_THAT(exited.err, Not(HasSubstr("\r")));
  EXPECT_THAT(exited.err, Not(HasSubstr("\033")));
  std::vector<std::string> progress;
  for (absl::string_view line : absl::StrSplit(exited.err, '\n')) {
    if (absl::StartsWith(line, "step ")) progress.emplace_back(line);
  }
  ASSERT_EQ(progress.size(), static_cast<size_t>(kSteps)) << exited.err;
  for (int k = 0; k < kSteps; ++k) {
    const int step = k + 1;
    EXPECT_THAT(progress[k], ::testing::StartsWith(absl::StrCat(
                                 "step ", step, "/", kSteps, " v", step,
                                 " rollouts=", step * kBatchPrompts * kGroupSize, " ")));
    EXPECT_THAT(progress[k], ::testing::ContainsRegex(" (SFPO|GRPO) "));
    EXPECT_THAT(progress[k], ::testing::ContainsRegex(" eta [0-9]+m[0-9][0-9]s$"));
  }
}

}  // namespace
}  // namespace sfpo
