// The one `sfpo` binary: every role and tool is a subcommand.
#include <grpc/support/log.h>

#include <cstdlib>
#include <cstring>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "common/allocator.h"

namespace {
// gRPC's own log lines (e.g. a failed bind) would precede our one-line error; show them only
// with SFPO_LOG_LEVEL=debug.
void GrpcLog(gpr_log_func_args* args) {
  const char* level = std::getenv("SFPO_LOG_LEVEL");
  if (level != nullptr && std::strcmp(level, "debug") == 0) {
    std::fprintf(stderr, "grpc %s:%d] %s\n", args->file, args->line, args->message);
  }
}
}  // namespace

int main(int argc, char** argv) {
  sfpo::KeepFreedMemory();
  gpr_set_log_function(GrpcLog);
  CLI::App app{"sfpo: distributed SFPO/GRPO post-training (learner, rollout workers, verifiers)",
               "sfpo"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  sfpo::CommandTable table;
  sfpo::AddVersionCommand(&app, &table);
  sfpo::AddServiceCommands(&app, &table);
  sfpo::AddLocalCommand(&app, &table);
  sfpo::AddPlotCommand(&app, &table);
  sfpo::AddRewardCheckCommand(&app, &table);
  sfpo::AddBenchGenerateCommand(&app, &table);
  sfpo::AddSftCommand(&app, &table);
  sfpo::AddBenchLearnerCommand(&app, &table);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Nested subcommands (`reward check`) are registered after their parent: the last parsed
  // entry is the most specific one.
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    if (it->first->parsed()) return it->second();
  }
  return 0;
}
