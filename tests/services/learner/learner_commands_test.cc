// Runs the real `sfpo` binary ($SFPO_BINARY): `sfpo sft` on a JSONL file and
// `sfpo bench learner --json` on a tiny model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/model_arch.h"
#include "nlohmann/json.hpp"

namespace sfpo {
namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// $SFPO_BINARY, else the path CMake compiled in.
const char* SfpoBinary() {
  const char* env = std::getenv("SFPO_BINARY");
  return env != nullptr && *env != 0 ? env : SFPO_BINARY_PATH;
}

Result RunSfpo(const std::string& args) {
  const char* binary = SfpoBinary();
  Result r;
  FILE* pipe = popen(absl::StrCat(binary, " ", args, " 2>&1").c_str(), "r");
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.output.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

class LearnerCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(SfpoBinary())) << SfpoBinary();
    dir_ = fs::temp_directory_path() / absl::StrCat("sfpo_learner_cmd_", getpid(), "_",
                                                    ::testing::UnitTest::GetInstance()
                                                        ->current_test_info()
                                                        ->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(LearnerCommandsTest, BenchLearnerPrintsOneJsonObjectLast) {
  Result r = RunSfpo(
      "bench learner --algo sfpo --layers 1 --hidden 32 --heads 2 --kv-heads 1 --intermediate 64 "
      "--vocab 64 --batch-prompts 2 --group 2 --response-tokens 8 --steps 2 --threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(LastLine(r.output), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.output;
  EXPECT_EQ(j["algo"], "sfpo");
  EXPECT_GT(j["params"].get<int64_t>(), 0);
  EXPECT_GT(j["step_seconds"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["saved_state_bytes"].get<int64_t>(), j["param_bytes"].get<int64_t>());
}

TEST_F(LearnerCommandsTest, BenchLearnerRejectsAnUnknownAlgorithm) {
  Result r = RunSfpo("bench learner --algo ppo --steps 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--algo must be sfpo or grpo"), std::string::npos) << r.output;
}

TEST_F(LearnerCommandsTest, SftTrainsFromJsonlAndWritesALoadableModel) {
  ModelArch arch;
  arch.vocab_size = 98;
  arch.hidden_size = 32;
  arch.intermediate_size = 64;
  arch.num_hidden_layers = 1;
  arch.num_attention_heads = 2;
  arch.num_key_value_heads = 1;
  arch.max_position_embeddings = 32;
  fs::create_directories(dir_ / "arch");
  std::ofstream(dir_ / "arch" / "config.json") << ModelArchToHfConfigJson(arch);
  {
    std::ofstream data(dir_ / "data.jsonl");
    data << R"({"prompt": "3 5 7=22:", "solution": "3*5+7"})" << "\n"
         << R"({"prompt": "1+2=", "completion": "3"})" << "\n";
  }
  const std::string out = (dir_ / "out").string();
  Result r = RunSfpo(absl::StrCat("sft --set model.config=", (dir_ / "arch").string(), " --data ",
                              (dir_ / "data.jsonl").string(), " --out ", out,
                              " --steps 5 --batch 4 --lr 0.01 --seed 3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(out) / "model.safetensors"));
  EXPECT_TRUE(fs::exists(fs::path(out) / "config.json"));
  std::ifstream log(fs::path(out) / "sft_log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  EXPECT_EQ(lines, 5);
  // The output directory serves as the next run's model config and init.
  Result again = RunSfpo(absl::StrCat("sft --set model.config=", out, " --init ", out, " --data ",
                                  (dir_ / "data.jsonl").string(), " --out ", out,
                                  "2 --steps 1 --batch 2"));
  EXPECT_EQ(again.exit_code, 0) << again.output;
}

TEST_F(LearnerCommandsTest, SftNamesTheBadLineOfItsData) {
  std::ofstream(dir_ / "bad.jsonl") << R"({"prompt": "1+2="})" << "\n";
  Result r = RunSfpo(absl::StrCat("sft --data ", (dir_ / "bad.jsonl").string(), " --out ",
                              (dir_ / "out").string(), " --steps 1"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("bad.jsonl:1"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace sfpo
