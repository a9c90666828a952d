// The `sfpo` binary as users and orchestrators see it: help, version, and one-line errors for
// bad configs and busy ports.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/subprocess.h"

namespace sfpo {
namespace {

using ::sfpo::testing::ProcessResult;
using ::sfpo::testing::RunProcess;
using ::sfpo::testing::SfpoBinary;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kCommandTimeout = absl::Seconds(30);

// Runs `sfpo args...` to completion.
ProcessResult RunSfpo(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {SfpoBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<ProcessResult> result = RunProcess(argv, kCommandTimeout);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult{};
}

// The contract for a failure: stderr ends with exactly one line that starts with "sfpo: "
// (anything before it is the resolved config or library logging) and the exit code is not 0.
// Returns that line.
std::string ExpectOneLineError(const ProcessResult& r) {
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.term_signal, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.err, '\n', absl::SkipEmpty());
  int error_lines = 0;
  for (const std::string& line : lines) error_lines += absl::StartsWith(line, "sfpo: ");
  EXPECT_EQ(error_lines, 1) << r.err;
  if (lines.empty()) {
    ADD_FAILURE() << "nothing on stderr";
    return "";
  }
  EXPECT_THAT(lines.back(), StartsWith("sfpo: ")) << r.err;
  EXPECT_TRUE(absl::EndsWith(r.err, "\n")) << r.err;
  return lines.back();
}

// A TCP socket listening on a free loopback port, closed on destruction.
class OccupiedPort {
 public:
  OccupiedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SFPO_CHECK(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    SFPO_CHECK(listen(fd_, 1) == 0);
    socklen_t len = sizeof(addr);
    SFPO_CHECK(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  }
  ~OccupiedPort() { close(fd_); }
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  std::string address_;
};

std::string ParamIsName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

class SfpoCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(SfpoBinary().empty())
        << "SFPO_BINARY is not set: run through ctest (sfpo_test sets it) or export it";
    ASSERT_EQ(access(SfpoBinary().c_str(), X_OK), 0) << SfpoBinary() << " is not executable";
  }
};

TEST_F(SfpoCliTest, HelpExitsZeroAndListsEverySubcommand) {
  const ProcessResult r = RunSfpo({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* sub : {"version", "doctor", "learner", "rollout", "reward", "local"}) {
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("  ", sub, " "))) << sub;
  }
}

TEST_F(SfpoCliTest, NoSubcommandFailsPointingToHelp) {
  const ProcessResult r = RunSfpo({});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out + r.err, HasSubstr("--help"));
}

TEST_F(SfpoCliTest, UnknownSubcommandAndUnknownFlagFail) {
  EXPECT_NE(RunSfpo({"trainer"}).exit_code, 0);
  EXPECT_NE(RunSfpo({"learner", "--no-such-flag"}).exit_code, 0);
}

TEST_F(SfpoCliTest, VersionPrintsTorchBlasThreadsAndCuda) {
  const ProcessResult r = RunSfpo({"version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  auto line_with = [&](const std::string& prefix) -> std::string {
    for (const std::string& line : lines) {
      if (absl::StartsWith(line, prefix)) return line.substr(prefix.size());
    }
    ADD_FAILURE() << "no '" << prefix << "' line in:\n" << r.out;
    return "";
  };
  EXPECT_THAT(line_with("torch: "), StartsWith("1."));
  EXPECT_FALSE(line_with("blas: ").empty());
  int threads = 0;
  EXPECT_TRUE(absl::SimpleAtoi(line_with("threads: "), &threads));
  EXPECT_GE(threads, 1);
  EXPECT_THAT(line_with("cuda: "), ::testing::AnyOf(StartsWith("available"),
                                                  StartsWith("not available")));
}

// Every subcommand answers --help with exit 0 and documents its contract flags.
struct HelpCase {
  std::string subcommand;
  std::vector<std::string> flags;
};

class SubcommandHelpTest : public SfpoCliTest, public ::testing::WithParamInterface<HelpCase> {};

TEST_P(SubcommandHelpTest, HelpExitsZeroAndListsTheFlags) {
  const HelpCase& c = GetParam();
  const ProcessResult r = RunSfpo({c.subcommand, "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("Usage: ", "sfpo ", c.subcommand))) << r.out;
  for (const std::string& flag : c.flags) EXPECT_THAT(r.out, HasSubstr(flag)) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Subcommands, SubcommandHelpTest,
    ::testing::Values(
        HelpCase{"version", {"--verbose"}}, HelpCase{"doctor", {}},
        HelpCase{"learner", {"--config", "--set", "--listen", "--metrics-listen"}},
        HelpCase{"rollout",
                 {"--config", "--set", "--learner", "--reward", "--metrics-listen"}},
        HelpCase{"reward", {"--config", "--set", "--listen", "--metrics-listen"}},
        HelpCase{"local", {"--config", "--set", "--endpoints-file"}}),
    [](const ::testing::TestParamInfo<HelpCase>& info) { return info.param.subcommand; });

// Config errors: the same one-line failure from every subcommand that reads the config.
class ConfigErrorTest : public SfpoCliTest, public ::testing::WithParamInterface<std::string> {
 protected:
  // Runs the subcommand on free ports, so that a config that wrongly passed could not collide.
  ProcessResult Run(const std::vector<std::string>& args) {
    std::vector<std::string> all = {GetParam()};
    if (GetParam() != "local") {
      all.insert(all.end(), {"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
    }
    all.insert(all.end(), args.begin(), args.end());
    return RunSfpo(all);
  }
};

TEST_P(ConfigErrorTest, UnknownKeyInSetFailsNamingTheKey) {
  EXPECT_THAT(ExpectOneLineError(Run({"--set", "run.bogus_key=1"})), HasSubstr("run.bogus_key"));
}

TEST_P(ConfigErrorTest, MissingConfigFileFailsNamingThePath) {
  const std::string path = testing::MakeTempDir() + "/no_such_config.yaml";
  EXPECT_THAT(ExpectOneLineError(Run({"--config", path})), HasSubstr(path));
}

INSTANTIATE_TEST_SUITE_P(Subcommands, ConfigErrorTest,
                         ::testing::Values("learner", "rollout", "reward", "local"),
                         ParamIsName);

// The subcommands share the loading code, so the finer cases run on the learner only (each
// run of the binary costs about a second of loading LibTorch).
TEST_F(SfpoCliTest, UnknownKeyInTheFileFailsNamingFileAndKey) {
  const std::string path = testing::MakeTempDir() + "/run.yaml";
  std::ofstream(path) << "learner:\n  learning_rate: 0.1\n";
  EXPECT_THAT(ExpectOneLineError(RunSfpo({"learner", "--config", path})),
              AllOf(HasSubstr(path), HasSubstr("learner.learning_rate")));
}

TEST_F(SfpoCliTest, BadValuesFailNamingTheKey) {
  EXPECT_THAT(ExpectOneLineError(RunSfpo({"learner", "--set", "learner.algorithm=ppo"})),
              AllOf(HasSubstr("learner.algorithm"), HasSubstr("ppo")));
  EXPECT_THAT(ExpectOneLineError(RunSfpo({"learner", "--set", "run.total_steps=1.5"})),
              HasSubstr("run.total_steps"));
}

TEST_F(SfpoCliTest, CheckValidatesAndPrintsTheResolvedConfigWithoutServing) {
  // Ports that are certainly taken would make a real start fail: --check must not bind.
  OccupiedPort busy;
  const ProcessResult r =
      RunSfpo({"learner", "--check", "--listen", busy.address(), "--metrics-listen",
               busy.address(), "--set", "sfpo.alpha=0.25", "--set", "run.name=x1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("alpha: 0.25\n"), HasSubstr("name: \"x1\"\n")));
}

// A busy port: each service fails with one line naming the address, whether it is the gRPC
// port or the metrics port that is taken.
class PortInUseTest : public SfpoCliTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(PortInUseTest, GrpcPortInUseFailsNamingTheAddress) {
  OccupiedPort busy;
  const ProcessResult r =
      RunSfpo({GetParam(), "--listen", busy.address(), "--metrics-listen", "127.0.0.1:0"});
  EXPECT_THAT(ExpectOneLineError(r), HasSubstr(busy.address()));
}

TEST_P(PortInUseTest, MetricsPortInUseFailsNamingTheAddress) {
  OccupiedPort busy;
  const ProcessResult r =
      RunSfpo({GetParam(), "--listen", "127.0.0.1:0", "--metrics-listen", busy.address()});
  EXPECT_THAT(ExpectOneLineError(r), HasSubstr(busy.address()));
}

INSTANTIATE_TEST_SUITE_P(Services, PortInUseTest,
                         ::testing::Values("learner", "reward", "rollout"),
                         ParamIsName);

}  // namespace
}  // namespace sfpo
