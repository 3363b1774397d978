#include "experiment/plan_programs.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "bitfusion/log.h"
#include "bitfusion/probe.h"
#include "core/sha256.h"

namespace bitfusion::internal {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool Executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

fs::path PlanRelative(const PlanSpec& plan, const std::string& path) {
  fs::path p(path);
  if (p.is_relative() && !plan.source_file.empty()) {
    p = fs::path(plan.source_file).parent_path() / p;
  }
  return p.lexically_normal();
}

// SHA-256 over every file of a build (names and contents), so a changed benchmark program or
// Dockerfile makes the image be built again.
Result<std::string> ContextDigest(const BuildSpec& build) {
  std::vector<std::pair<std::string, fs::path>> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(build.context_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) {
      files.emplace_back(fs::relative(it->path(), build.context_dir).string(), it->path());
    }
  }
  if (ec) return ErrnoError(ec.value(), "reading build context " + build.context_dir.string());
  for (const auto& [name, path] : build.extra_files) files.emplace_back(name, path);
  std::sort(files.begin(), files.end());
  Sha256 sha;
  for (const auto& [name, path] : files) {
    sha.Update(std::string_view(name.data(), name.size() + 1));
    std::ifstream in(path, std::ios::binary);
    if (!in) return ErrnoError(errno, "reading " + path.string());
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      sha.Update(std::string_view(buf, static_cast<std::size_t>(in.gcount())));
    }
  }
  for (const auto& [k, v] : build.build_args) {
    sha.Update(std::string_view(k.data(), k.size() + 1));
    sha.Update(std::string_view(v.data(), v.size() + 1));
  }
  return sha.HexDigest();
}

// Label holding ContextDigest on images a plan built.
constexpr const char* kContextLabel = "bitfusion.context_sha256";

}  // namespace

// A bundled program ("bf-stream") next to the CLI first, then in PATH; or a path (relative to
// the plan). `field` names where it was asked for, for the error.
Result<std::string> LocateProgram(const PlanSpec& plan, const std::string& program,
                                  const std::string& field, const ExperimentOptions& options) {
  if (program.find('/') != std::string::npos) {
    fs::path p(program);
    if (p.is_relative() && !plan.source_file.empty()) {
      p = fs::path(plan.source_file).parent_path() / p;
    }
    if (!Executable(p)) {
      return NotFoundError(field + ": \"" + p.string() + "\" is not an executable file");
    }
    return fs::absolute(p).string();
  }
  std::string looked;
  for (const auto& dir : options.program_dirs) {
    const fs::path candidate = fs::path(dir) / program;
    if (Executable(candidate)) return candidate.string();
    looked += (looked.empty() ? "" : ", ") + dir;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const fs::path candidate = fs::path(std::string(dirs.substr(0, colon))) / program;
    if (Executable(candidate)) return candidate.string();
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
  }
  return NotFoundError(field + ": \"" + program + "\" is neither a bundled benchmark (looked in " +
                       (looked.empty() ? std::string("no program directories") : looked) +
                       ") nor in PATH; build it or give a path");
}

// argv for one benchmark: bundled programs are looked up next to the CLI first.
Result<std::vector<std::string>> ResolveCommand(const PlanSpec& plan, const BenchmarkSpec& b,
                                                std::size_t index,
                                                const ExperimentOptions& options) {
  if (!b.command.empty()) return b.command;
  const std::string field =
      plan.source_file + ": benchmarks[" + std::to_string(index) + "].program";
  std::vector<std::string> argv;
  if (!b.image.empty()) {
    argv.push_back(b.program);  // resolved inside the image
  } else {
    BITFUSION_ASSIGN_OR_RETURN(auto program, LocateProgram(plan, b.program, field, options));
    argv.push_back(std::move(program));
  }
  argv.insert(argv.end(), b.args.begin(), b.args.end());
  return argv;
}

// The plan's own recipe for `ref`: built when the engine lacks the image or holds an older
// build of it.
Status BuildPlanImage(ContainerRunner& runner, const PlanSpec& plan, const std::string& ref,
                      const ImageRecipe& recipe, const ExperimentOptions& options) {
  const std::string field = plan.source_file + ": images[\"" + ref + "\"]";
  BuildSpec build;
  build.context_dir = PlanRelative(plan, recipe.context);
  build.dockerfile = recipe.dockerfile;
  build.tag = ref;
  build.build_args = recipe.build_args;
  for (const auto& [name, source] : recipe.files) {
    if (source.find('/') != std::string::npos) {
      build.extra_files[name] = PlanRelative(plan, source);
      std::error_code ec;
      if (!fs::exists(build.extra_files[name], ec)) {
        return NotFoundError(field + ".files." + name + ": " + build.extra_files[name].string() +
                             " does not exist");
      }
    } else {
      BITFUSION_ASSIGN_OR_RETURN(auto program,
                                 LocateProgram(plan, source, field + ".files." + name, options));
      build.extra_files[name] = program;
    }
  }
  BITFUSION_ASSIGN_OR_RETURN(std::string digest, ContextDigest(build));
  auto present = runner.InspectImage(ref);
  if (present.ok()) {
    auto it = present->labels.find(kContextLabel);
    if (it != present->labels.end() && it->second == digest) return Status::OK();
  } else if (present.error().code() != StatusCode::kNotFound) {
    return present.error();
  }
  build.labels[kContextLabel] = digest;
  LogAt(LogLevel::kInfo, "building image ", ref, " from ", build.context_dir.string());
  return runner.BuildImage(build, DeadlineAfter(10min)).status().WithContext(field);
}

Result<std::string> LocateProbe(const PlanSpec& plan, const ExperimentOptions& options) {
  auto bundled = LocateProgram(plan, "bitfusion-probe", "metric source \"probe\"", options);
  if (bundled.ok()) return bundled;
  return FindProbe();
}

}  // namespace bitfusion::internal
