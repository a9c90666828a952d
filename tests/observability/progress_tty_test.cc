// The progress line on a terminal: `sfpo local` with its stderr on a pseudo-terminal rewrites one
// line in place (carriage return, erase line) and ends it with a newline after the last step.
// (run_metrics_test covers the plain lines written when stderr is a file.)
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/subprocess.h"

namespace sfpo {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kRunBound = absl::Seconds(120);

struct TerminalRun {
  std::string output;  // everything the child wrote to the terminal
  int exit_code = -1;
  bool timed_out = false;
};

// Runs argv with stdin, stdout and stderr on a raw pseudo-terminal (no newline translation) and
// collects its output until it exits; kills it past `bound`.
TerminalRun RunOnTerminal(const std::vector<std::string>& argv, absl::Duration bound) {
  TerminalRun run;
  termios raw{};
  cfmakeraw(&raw);
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, &raw, nullptr);
  if (pid < 0) {
    ADD_FAILURE() << "forkpty: " << errno;
    return run;
  }
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  const absl::Time deadline = absl::Now() + bound;
  char buf[4096];
  while (true) {
    if (absl::Now() > deadline) {
      run.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO once the child and its descendants closed the terminal
    run.output.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

TEST(ProgressTtyTest, RewritesTheLineInPlaceOnATerminalAndEndsItAfterTheLastStep) {
  ASSERT_FALSE(testing::SfpoBinary().empty()) << "SFPO_BINARY is not set";
  const std::string dir = testing::MakeTempDir();
  ASSERT_FALSE(dir.empty());
  const TerminalRun run = RunOnTerminal(
      {testing::SfpoBinary(), "local", "--set", absl::StrCat("run.output_dir=", dir, "/run"),
       "--set", "data.batch_prompts=2", "--set", "rollout.group_size=2", "--set",
       "rollout.workers=1", "--set", "run.total_steps=3"},
      kRunBound);
  ASSERT_FALSE(run.timed_out) << run.output;
  ASSERT_EQ(run.exit_code, 0) << run.output;

  // Each step's line starts by returning to the start of the line and erasing it ...
  const std::string kRewrite = "\r\033[K";
  std::vector<size_t> starts;
  for (int step = 1; step <= 3; ++step) {
    const size_t at = run.output.find(absl::StrCat(kRewrite, "step ", step, "/3 "));
    ASSERT_NE(at, std::string::npos) << "step " << step << " not rewritten in place:\n"
                                     << run.output;
    starts.push_back(at);
  }
  // ... the earlier lines end without a newline, so the next one overwrites them ...
  for (int k = 0; k < 2; ++k) {
    const std::string line = run.output.substr(starts[k], starts[k + 1] - starts[k]);
    EXPECT_THAT(line, Not(HasSubstr("\n"))) << "line " << k + 1;
  }
  // ... and the last one is ended, so whatever follows starts on a line of its own.
  const size_t end = run.output.find('\n', starts[2]);
  ASSERT_NE(end, std::string::npos);
  EXPECT_THAT(run.output.substr(starts[2], end - starts[2]), HasSubstr(" eta "));
}

}  // namespace
}  // namespace sfpo
