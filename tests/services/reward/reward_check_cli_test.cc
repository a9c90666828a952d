// Runs the real `sfpo reward check` binary ($SFPO_BINARY) on a small file.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sfpo {
namespace {

using ::testing::HasSubstr;

std::string RunCommand(const std::string& command, int* exit_code) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

TEST(RewardCheckCli, PrintsOneVerdictLinePerInputLine) {
  // $SFPO_BINARY when set, else the path CMake compiled in.
  const char* binary = std::getenv("SFPO_BINARY");
  if (binary == nullptr || *binary == '\0') binary = SFPO_BINARY_PATH;
  std::string path = ::testing::TempDir() + "reward_check_cli_input.jsonl";
  std::ofstream(path) << "{\"gold\": \"2\", \"prediction\": \"\\\\boxed{2}\"}\n"
                      << "garbage\n"
                      << "{\"gold\": \"2\", \"prediction\": \"\\\\boxed{3}\"}\n";
  int code = -1;
  std::string out = RunCommand(std::string(binary) + " reward check --input " + path + " 2>/dev/null",
                        &code);
  EXPECT_EQ(code, 0);
  std::istringstream lines(out);
  std::string l1, l2, l3, extra;
  ASSERT_TRUE(std::getline(lines, l1) && std::getline(lines, l2) && std::getline(lines, l3));
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_THAT(l1, HasSubstr("\"verdict\":\"correct\""));
  EXPECT_THAT(l2, HasSubstr("\"verdict\":\"error\""));
  EXPECT_THAT(l2, HasSubstr("line 2"));
  EXPECT_THAT(l3, HasSubstr("\"verdict\":\"incorrect\""));

  RunCommand(std::string(binary) + " reward check --input /nonexistent.jsonl 2>&1", &code);
  EXPECT_EQ(code, 1);
  std::string bad = RunCommand(std::string(binary) + " reward check --input " + path +
                            " --task nosuch 2>&1",
                        &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(bad, HasSubstr("unknown task"));
}

}  // namespace
}  // namespace sfpo
