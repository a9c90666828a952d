// The one `sfpo` binary: every role and tool is a subcommand.
#include "CLI/CLI.hpp"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"sfpo: distributed SFPO/GRPO post-training (learner, rollout workers, verifiers)",
               "sfpo"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  sfpo::CommandTable table;
  sfpo::AddVersionCommand(&app, &table);
  sfpo::AddServiceCommands(&app, &table);
  sfpo::AddLocalCommand(&app, &table);
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
