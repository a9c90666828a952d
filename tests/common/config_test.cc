#include "common/config.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A YAML file in the test's temporary directory, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    path_ = ::testing::TempDir() + "sfpo_config_test_" + std::to_string(getpid()) + "_" +
            std::to_string(counter_++) + ".yaml";
    std::ofstream(path_) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

absl::StatusOr<Config> Parse(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  return ParseConfig(yaml, "test.yaml", sets);
}

void ExpectSameConfig(const Config& a, const Config& b) {
  // ConfigToYaml prints every key with full precision; equal text means equal configs, and a
  // mismatch shows which key differs.
  EXPECT_EQ(ConfigToYaml(a), ConfigToYaml(b));
}

TEST(ConfigTest, DefaultsLoadWithoutAFile) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config c, LoadConfig("", {}));
  // The paper's defaults.
  EXPECT_EQ(c.learner.algorithm, "sfpo");
  EXPECT_EQ(c.sfpo.inner_steps, 3);
  EXPECT_DOUBLE_EQ(c.sfpo.alpha, 0.8);
  EXPECT_DOUBLE_EQ(c.learner.clip_low, 0.2);
  EXPECT_DOUBLE_EQ(c.learner.clip_high, 0.2);
  EXPECT_DOUBLE_EQ(c.learner.entropy_coef, 0.001);
  EXPECT_DOUBLE_EQ(c.learner.kl_coef, 0.0);
  EXPECT_EQ(c.sfpo.gate, "entropy");
  EXPECT_EQ(c.sfpo.gate_window, 30);
  EXPECT_DOUBLE_EQ(c.sfpo.gate_threshold, 1.0);
  EXPECT_EQ(c.rollout.group_size, 8);
  EXPECT_EQ(c.data.batch_prompts, 256);
  EXPECT_EQ(c.learner.mini_batch_prompts, 64);
  EXPECT_FALSE(c.run.resume);
  EXPECT_EQ(c.sfpo.theta0_device, "device");
  EXPECT_TRUE(c.learner.param_delta_norm);
  EXPECT_TRUE(c.learner.overlap_grad_reduce);
  ExpectSameConfig(c, Config{});
}

TEST(ConfigTest, EmptyTextAndNullSectionsMeanDefaults) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config empty, Parse(""));
  ExpectSameConfig(empty, Config{});
  SFPO_ASSERT_OK_AND_ASSIGN(Config null_section, Parse("run:\nlearner:\n"));
  ExpectSameConfig(null_section, Config{});
}

TEST(ConfigTest, LoadsAYamlFile) {
  TempFile file(
      "run:\n"
      "  name: exp1\n"
      "  total_steps: 7\n"
      "  resume: true\n"
      "rollout:\n"
      "  temperature: 0.7\n"
      "  top_k: 50\n"
      "learner:\n"
      "  algorithm: grpo\n"
      "  lr: 3.0e-6\n");
  SFPO_ASSERT_OK_AND_ASSIGN(Config c, LoadConfig(file.path(), {}));
  EXPECT_EQ(c.run.name, "exp1");
  EXPECT_EQ(c.run.total_steps, 7);
  EXPECT_TRUE(c.run.resume);
  EXPECT_DOUBLE_EQ(c.rollout.temperature, 0.7);
  EXPECT_EQ(c.rollout.top_k, 50);
  EXPECT_EQ(c.learner.algorithm, "grpo");
  EXPECT_DOUBLE_EQ(c.learner.lr, 3.0e-6);
  // Keys the file does not mention keep their defaults.
  EXPECT_EQ(c.rollout.group_size, 8);
  EXPECT_DOUBLE_EQ(c.sfpo.alpha, 0.8);
}

TEST(ConfigTest, SetOverridesTheFileAndApplyInOrder) {
  TempFile file("run:\n  total_steps: 7\nsfpo:\n  alpha: 0.5\n");
  SFPO_ASSERT_OK_AND_ASSIGN(
      Config c, LoadConfig(file.path(),
                           {"run.total_steps=9", "sfpo.alpha=0.25", "run.total_steps=11",
                            "learner.algorithm=grpo", "run.name=with spaces", "run.resume=true"}));
  EXPECT_EQ(c.run.total_steps, 11);  // The last --set wins.
  EXPECT_DOUBLE_EQ(c.sfpo.alpha, 0.25);
  EXPECT_EQ(c.learner.algorithm, "grpo");
  EXPECT_EQ(c.run.name, "with spaces");
  EXPECT_TRUE(c.run.resume);
}

TEST(ConfigTest, SetWithAnEmptyValueGivesAnEmptyString) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config c, Parse("model:\n  init: ckpt/step_5\n", {"model.init="}));
  EXPECT_EQ(c.model.init, "");
}

TEST(ConfigTest, SetWithoutAnEqualsSignIsRejected) {
  EXPECT_THAT(Parse("", {"run.total_steps"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("run.total_steps"), HasSubstr("section.key=value"))));
  EXPECT_THAT(Parse("", {"=3"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("=3")));
}

TEST(ConfigTest, UnknownSectionIsRejectedNamingIt) {
  EXPECT_THAT(Parse("trainer:\n  lr: 0.1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml"), HasSubstr("trainer"))));
  EXPECT_THAT(Parse("trainer: 3\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'trainer'")));
  EXPECT_THAT(Parse("", {"trainer.lr=0.1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trainer.lr")));
}

TEST(ConfigTest, UnknownKeyIsRejectedNamingIt) {
  EXPECT_THAT(Parse("learner:\n  learning_rate: 0.1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml"), HasSubstr("'learner.learning_rate'"))));
  EXPECT_THAT(Parse("", {"run.bogus=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--set"), HasSubstr("'run.bogus'"))));
}

TEST(ConfigTest, SectionThatIsNotAMappingIsRejected) {
  EXPECT_THAT(Parse("run: 3\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          AllOf(HasSubstr("'run'"), HasSubstr("mapping"))));
  EXPECT_THAT(Parse("- run\n"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mapping")));
}

TEST(ConfigTest, InvalidYamlIsRejectedNamingTheSource) {
  EXPECT_THAT(Parse("run: {name: [unclosed\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml"), HasSubstr("invalid YAML"))));
}

TEST(ConfigTest, WrongTypesAreRejectedNamingTheKey) {
  struct Case {
    std::string yaml;
    std::string key;
  };
  const std::vector<Case> cases = {
      {"run:\n  total_steps: ten\n", "run.total_steps"},          // string for an int
      {"run:\n  total_steps: 1.5\n", "run.total_steps"},          // fraction for an int
      {"run:\n  total_steps: 1e3\n", "run.total_steps"},          // exponent for an int
      {"run:\n  total_steps: [1, 2]\n", "run.total_steps"},       // sequence for an int
      {"rollout:\n  temperature: hot\n", "rollout.temperature"},  // string for a double
      {"run:\n  resume: yes\n", "run.resume"},                    // YAML 1.1 boolean spelling
      {"run:\n  resume: 1\n", "run.resume"},                      // int for a bool
      {"run:\n  resume: maybe\n", "run.resume"},
      {"run:\n  name: {a: 1}\n", "run.name"},  // mapping for a string
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Parse(c.yaml), StatusIs(absl::StatusCode::kInvalidArgument,
                                        AllOf(HasSubstr("'" + c.key + "'"), HasSubstr("must be"))))
        << c.yaml;
  }
  EXPECT_THAT(Parse("", {"learner.entropy_coef=.nan"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'learner.entropy_coef'"), HasSubstr("a number"))));
  EXPECT_THAT(Parse("", {"data.batch_prompts=1.5"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'data.batch_prompts'"), HasSubstr("an integer"))));
  EXPECT_THAT(Parse("", {"learner.normalize_adv_std=yes"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'learner.normalize_adv_std'"), HasSubstr("boolean"))));
}

TEST(ConfigTest, BooleansAcceptTrueAndFalseOnly) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config t, Parse("run:\n  resume: true\n"));
  EXPECT_TRUE(t.run.resume);
  SFPO_ASSERT_OK_AND_ASSIGN(Config f, Parse("", {"learner.normalize_adv_std=false"}));
  EXPECT_FALSE(f.learner.normalize_adv_std);
  SFPO_ASSERT_OK_AND_ASSIGN(Config cap, Parse("run:\n  resume: True\n"));
  EXPECT_TRUE(cap.run.resume);
}

TEST(ConfigTest, IntegersForDoublesAreAccepted) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config c, Parse("rollout:\n  temperature: 2\n"));
  EXPECT_DOUBLE_EQ(c.rollout.temperature, 2.0);
}

TEST(ConfigTest, OutOfRangeValuesAreRejectedNamingTheKey) {
  const std::vector<std::string> sets = {
      "run.total_steps=0",    "run.threads=-1",           "data.batch_prompts=0",
      "rollout.group_size=0", "rollout.temperature=-0.1", "rollout.top_p=0",
      "rollout.top_p=1.5",    "reward.format_reward=2",   "learner.lr=0",
      "learner.clip_low=1",   "learner.adam_beta2=1",     "sfpo.alpha=1.01",
      "sfpo.alpha=-0.1",      "sfpo.inner_steps=-1",      "sfpo.gate_window=1",
      "run.output_dir=",
  };
  for (const std::string& set : sets) {
    const std::string key = set.substr(0, set.find('='));
    EXPECT_THAT(Parse("", {set}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'" + key + "'")))
        << set;
  }
}

TEST(ConfigTest, BoundaryValuesAreAccepted) {
  SFPO_ASSERT_OK_AND_ASSIGN(Config c,
                            Parse("", {"sfpo.alpha=0", "sfpo.inner_steps=0", "rollout.top_p=1",
                                       "rollout.temperature=0", "run.total_steps=1"}));
  EXPECT_DOUBLE_EQ(c.sfpo.alpha, 0.0);
  EXPECT_EQ(c.sfpo.inner_steps, 0);
  SFPO_ASSERT_OK(Parse("", {"sfpo.alpha=1"}).status());
}

TEST(ConfigTest, BadChoicesAreRejectedListingTheAllowedOnes) {
  EXPECT_THAT(Parse("learner:\n  algorithm: ppo\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'learner.algorithm'"), HasSubstr("sfpo|grpo"),
                             HasSubstr("'ppo'"))));
  for (const std::string& set :
       {"run.device=tpu", "learner.schedule=linear", "learner.loss_agg=sum", "sfpo.gate=kl",
        "reward.verifier=llm", "rollout.weights_dtype=f16", "learner.kl_estimator=k2",
        "sfpo.theta0_device=gpu"}) {
    const std::string key = set.substr(0, set.find('='));
    EXPECT_THAT(Parse("", {set}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("'" + key + "'"), HasSubstr("must be one of"))))
        << set;
  }
}

TEST(ConfigTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = ::testing::TempDir() + "sfpo_config_test_does_not_exist.yaml";
  EXPECT_THAT(LoadConfig(path, {}), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(ConfigTest, ErrorsInAFileNameTheFile) {
  TempFile file("run:\n  totl_steps: 3\n");
  EXPECT_THAT(LoadConfig(file.path(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(file.path()), HasSubstr("'run.totl_steps'"))));
}

TEST(ConfigTest, ValidateConfigAcceptsDefaultsAndRejectsBrokenStructs) {
  SFPO_EXPECT_OK(ValidateConfig(Config{}));
  Config c;
  c.rollout.group_size = 0;
  EXPECT_THAT(ValidateConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'rollout.group_size'")));
}

TEST(ConfigTest, YamlOfDefaultsRoundTripsExactly) {
  const Config defaults;
  const std::string yaml = ConfigToYaml(defaults);
  SFPO_ASSERT_OK_AND_ASSIGN(Config back, Parse(yaml));
  EXPECT_EQ(ConfigToYaml(back), yaml);
  // Every key appears, section by section.
  EXPECT_THAT(yaml, AllOf(HasSubstr("run:\n"), HasSubstr("sfpo:\n"), HasSubstr("  lr: "),
                          HasSubstr("  gate_window: 30\n"), HasSubstr("  init: \"\"\n")));
}

TEST(ConfigTest, YamlRoundTripsDoublesBitForBit) {
  Config c;
  c.learner.lr = 1.0 / 3.0 * 1e-6;
  c.sfpo.alpha = 0.1 + 0.2;  // 0.30000000000000004
  c.learner.adam_eps = std::numeric_limits<double>::denorm_min();
  c.learner.entropy_coef = 1e-300;
  c.rollout.temperature = 123456789.123456789;
  c.sfpo.gate_threshold = std::numeric_limits<double>::infinity();  // "never gate"
  c.learner.kl_coef = std::numeric_limits<double>::max();
  c.run.name = "1e5";        // A string that looks like a number stays a string.
  c.model.init = "yes";      // A string that looks like a boolean stays a string.
  c.data.task = "a: b # c";  // YAML punctuation inside a string.
  c.run.total_steps = std::numeric_limits<int64_t>::max();
  c.rollout.top_k = -1;
  c.learner.normalize_adv_std = false;
  SFPO_ASSERT_OK(ValidateConfig(c));
  SFPO_ASSERT_OK_AND_ASSIGN(Config back, Parse(ConfigToYaml(c)));
  EXPECT_EQ(back.learner.lr, c.learner.lr);
  EXPECT_EQ(back.sfpo.alpha, c.sfpo.alpha);
  EXPECT_EQ(back.learner.adam_eps, c.learner.adam_eps);
  EXPECT_EQ(back.learner.entropy_coef, c.learner.entropy_coef);
  EXPECT_EQ(back.rollout.temperature, c.rollout.temperature);
  EXPECT_EQ(back.sfpo.gate_threshold, c.sfpo.gate_threshold);
  EXPECT_EQ(back.learner.kl_coef, c.learner.kl_coef);
  EXPECT_EQ(back.run.name, "1e5");
  EXPECT_EQ(back.model.init, "yes");
  EXPECT_EQ(back.data.task, "a: b # c");
  EXPECT_EQ(back.run.total_steps, c.run.total_steps);
  EXPECT_EQ(back.rollout.top_k, -1);
  EXPECT_FALSE(back.learner.normalize_adv_std);
  ExpectSameConfig(back, c);
}

}  // namespace
}  // namespace sfpo
