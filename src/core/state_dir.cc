#include "core/state_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <system_error>

namespace bitfusion::internal {

Result<std::filesystem::path> StateDir(std::string_view remedy) {
  if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && *state == '/') {
    return std::filesystem::path(state) / "bitfusion";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return std::filesystem::path(home) / ".local" / "state" / "bitfusion";
  }
  return FailedPreconditionError(
      "no place for bitfusion's state: neither XDG_STATE_HOME nor HOME is set to an absolute "
      "path; set one, or " +
      std::string(remedy));
}

Status EnsurePrivateDir(const std::filesystem::path& dir, std::string_view remedy) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return ErrnoError(ec.value(),
                      "cannot create directory " + dir.string() + "; " + std::string(remedy));
  }
  if (!existed) ::chmod(dir.c_str(), 0700);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return ErrnoError(errno, "cannot stat " + dir.string());
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    return PermissionDeniedError(
        dir.string() +
        " is not a directory owned by this user and closed to others' writes (a link, or "
        "another user's, or group/world-writable); " +
        std::string(remedy) + ", or chmod go-w it");
  }
  return Status::OK();
}

}  // namespace bitfusion::internal
