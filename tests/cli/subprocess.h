// Test helper: runs a program (the `sfpo` binary) as a child process with its output captured
// in files, and waits for it with a bound.
#ifndef SFPO_TESTS_CLI_SUBPROCESS_H_
#define SFPO_TESTS_CLI_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sfpo {
namespace testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal.
  int term_signal = 0;  // The signal that killed it, 0 if it exited.
  std::string out;
  std::string err;
};

// A running child process. Not thread-safe.
class Subprocess {
 public:
  // Starts argv[0] (a path) with stdin from /dev/null and stdout/stderr into files.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv);
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Sends `sig`; false if the child has already been reaped.
  bool Signal(int sig);
  // True while the child has not exited (reaps it once it has).
  bool Running();
  // Waits up to `timeout` for the child to exit. DEADLINE_EXCEEDED (naming the command and
  // showing its stderr) if it is still running then; the child is left running.
  absl::StatusOr<ProcessResult> Wait(absl::Duration timeout);
  // What the child has written so far.
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  Subprocess(pid_t pid, std::string command, std::string dir);
  ProcessResult Result() const;

  pid_t pid_;
  std::string command_;
  std::string dir_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// Runs argv to completion: its result, or DEADLINE_EXCEEDED (after killing it) past `timeout`.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout);

// The built `sfpo` binary, from the SFPO_BINARY environment variable that sfpo_test sets; ""
// when unset.
std::string SfpoBinary();

// A new empty directory under the test's temporary directory.
std::string MakeTempDir();

// Reads a whole file; "" if it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace testing
}  // namespace sfpo

#endif  // SFPO_TESTS_CLI_SUBPROCESS_H_
