// bitfusion: run benchmark plans, read this host's inventory, stream metrics.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/version.h"
#include "cli/commands.h"

namespace bitfusion::cli {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signals{0};

// How long cleanup may take once the user has interrupted twice.
constexpr unsigned kHurriedCleanupSeconds = 10;

void Say(const char* text) {
  // write(2) is async-signal-safe; stdio is not.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, text, std::strlen(text));
}

// First signal: stop starting work, clean up as usual (containers, leases, sinks). Second:
// cleanup gets kHurriedCleanupSeconds more, then SIGALRM ends the process (what is left is the
// reaper's: labels on containers, the process ledger, device lease files). Third: at once.
void OnInterrupt(int signal) {
  const int n = ++g_signals;
  g_interrupted.store(true);
  if (n == 1) {
    Say("\nbitfusion: interrupted; cleaning up (interrupt again to bound the cleanup)\n");
  } else if (n == 2) {
    Say("\nbitfusion: cleaning up for at most 10 s more; interrupt again to stop at once\n");
    ::alarm(kHurriedCleanupSeconds);
  } else {
    std::signal(signal, SIG_DFL);
    ::raise(signal);
  }
}

constexpr const char* kUsage = R"(usage: bitfusion <command> [options]

commands:
  run SPEC        run a benchmark plan (JSON), stream metrics, store results, print a summary
  inventory       print this host's hardware fingerprint
  devices         list the GPUs and FPGAs that can be leased, and who holds them
  metrics         sample metric sources for a while and store or print the samples
  import          store results measured elsewhere (Google Benchmark JSON) in any sink
  reap            remove containers and images that dead or expired runs left on an engine
  machines        machines from a provisioner: types (with --explain), up, list, down
  compare         compare two plan runs: change of each median, its interval, p-value, verdict
  report          write one self-contained HTML page (plots, statistics) of a plan run

`bitfusion <command> --help` describes each command's options.
)";

}  // namespace

const std::atomic<bool>& InterruptFlag() { return g_interrupted; }

void InstallInterruptHandler() {
  static_assert(std::atomic<bool>::is_always_lock_free, "signal handler needs a lock-free flag");
  static_assert(std::atomic<int>::is_always_lock_free, "signal handler needs a lock-free count");
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  // A closed terminal (SIGHUP) is an interrupt too: the run cleans up instead of dying.
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) sigaction(signal, &action, nullptr);
}

std::optional<int> ParseOptions(const char* name, const char* synopsis,
                                const boost::program_options::options_description& options,
                                const boost::program_options::positional_options_description& pos,
                                const std::vector<std::string>& args,
                                boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  po::options_description all = options;
  all.add_options()("help,h", "show this help");
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: bitfusion " << name << " " << synopsis << "\n\n" << all;
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bitfusion " << name << ": " << e.what() << "\n\nusage: bitfusion " << name << " "
              << synopsis << "\n\n"
              << all;
    return kExitUsage;
  }
  return std::nullopt;
}

std::vector<std::string> BundledProgramDirs() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const auto dir = exe.parent_path();
  return {dir.string(), (dir.parent_path() / "libexec" / "bitfusion").lexically_normal().string()};
}

}  // namespace bitfusion::cli

int main(int argc, char** argv) {
  using namespace bitfusion::cli;
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (command == "--version") {
    std::printf("bitfusion %s\n", bitfusion::Version());
    return kExitOk;
  }
  // A closed pipe (`bitfusion run plan.json | head`) is an error on that write, not the end of
  // the process with its containers left running.
  std::signal(SIGPIPE, SIG_IGN);
  int (*run)(const std::vector<std::string>&) = nullptr;
  if (command == "run") run = RunCommand;
  if (command == "inventory") run = InventoryCommand;
  if (command == "devices") run = DevicesCommand;
  if (command == "metrics") run = MetricsCommand;
  if (command == "import") run = ImportCommand;
  if (command == "reap") run = ReapCommand;
  if (command == "compare") run = CompareCommand;
  if (command == "report") run = ReportCommand;
  if (command == "machines") run = MachinesCommand;
  if (run == nullptr) {
    std::fprintf(stderr, "bitfusion: unknown command \"%s\"\n\n%s", command.c_str(), kUsage);
    return kExitUsage;
  }
  const int exit = run(args);
  // Warnings with one cause were printed once; say how often they recurred.
  for (const auto& repeated : bitfusion::RepeatedLogs()) {
    std::fprintf(stderr, "bitfusion: the warning \"%.100s%s\" recurred %lld more time%s\n",
                 repeated.first_message.c_str(), repeated.first_message.size() > 100 ? "..." : "",
                 static_cast<long long>(repeated.repeats), repeated.repeats == 1 ? "" : "s");
  }
  return exit;
}
