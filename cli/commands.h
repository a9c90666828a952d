// Registration of the `sfpo` subcommands. Each Add*Command adds a subcommand to `root` and
// returns the body to run when it is the one selected.
#ifndef SFPO_CLI_COMMANDS_H_
#define SFPO_CLI_COMMANDS_H_

#include <utility>
#include <vector>

#include "cli/flags.h"

namespace sfpo {

// (subcommand, body) pairs; main runs the body whose subcommand was parsed.
using CommandTable = std::vector<std::pair<CLI::App*, CommandBody>>;

// The `bench` parent command, created by whichever benchmark registers first.
CLI::App* BenchCommand(CLI::App* root);

void AddVersionCommand(CLI::App* root, CommandTable* table);
void AddServiceCommands(CLI::App* root, CommandTable* table);  // learner, rollout, reward
void AddLocalCommand(CLI::App* root, CommandTable* table);
void AddPlotCommand(CLI::App* root, CommandTable* table);
void AddRewardCheckCommand(CLI::App* root, CommandTable* table);  // after AddServiceCommands
void AddBenchGenerateCommand(CLI::App* root, CommandTable* table);  // bench generate
void AddSftCommand(CLI::App* root, CommandTable* table);
void AddBenchLearnerCommand(CLI::App* root, CommandTable* table);  // bench learner

}  // namespace sfpo

#endif  // SFPO_CLI_COMMANDS_H_
