// The `bitfusion` command's subcommands. Each takes the arguments after its own name and
// returns the process exit status: 0 success, 1 a run or store failed, 2 bad usage or input,
// 130 interrupted.
#pragma once

#include <boost/program_options.hpp>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "bitfusion/results.h"

namespace bitfusion::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInterrupted = 130;

int InventoryCommand(const std::vector<std::string>& args);
int DevicesCommand(const std::vector<std::string>& args);
int RunCommand(const std::vector<std::string>& args);
int MetricsCommand(const std::vector<std::string>& args);
int ImportCommand(const std::vector<std::string>& args);
int ReapCommand(const std::vector<std::string>& args);
int MachinesCommand(const std::vector<std::string>& args);
int CompareCommand(const std::vector<std::string>& args);
int ReportCommand(const std::vector<std::string>& args);

/// The options `compare` and `report` share (--threshold, --alpha, --better), and reading them
/// into CompareOptions: an error message when one is malformed.
void AddCompareOptions(boost::program_options::options_description& options);
std::optional<std::string> ReadCompareOptions(const boost::program_options::variables_map& vm,
                                              CompareOptions& options);

/// Parses `args` for command `name`. Returns an exit status when the command should end now
/// (--help printed: 0; bad options explained on stderr: 2), nullopt to go on.
std::optional<int> ParseOptions(const char* name, const char* synopsis,
                                const boost::program_options::options_description& options,
                                const boost::program_options::positional_options_description& pos,
                                const std::vector<std::string>& args,
                                boost::program_options::variables_map& vm);

/// Set by SIGINT/SIGTERM; the first signal asks politely, the second one kills.
const std::atomic<bool>& InterruptFlag();
void InstallInterruptHandler();

/// Directories holding the bundled benchmark programs: next to this executable (build tree),
/// then ../libexec/bitfusion (installed).
std::vector<std::string> BundledProgramDirs();

}  // namespace bitfusion::cli
