#include "net/ssh_uri.h"

#include <cstdlib>
#include <filesystem>

namespace bitfusion::internal {

Result<SshLogin> SshLoginFromUri(const Uri& uri, std::string_view scheme_name) {
  const std::string scheme(scheme_name);
  if (!uri.password.empty()) {
    return InvalidArgumentError(
        scheme +
        ":// takes no password in the URI (it would show in logs and process lists); "
        "log in with a key: identity=PATH, ssh-agent or ~/.ssh/config");
  }
  if (uri.host.empty() || (!uri.path.empty() && uri.path != "/")) {
    return InvalidArgumentError(scheme + ":// needs a host and no path, got \"" + uri.ToString() +
                                "\"; write " + scheme + "://USER@HOST[:PORT]");
  }
  SshLogin o;
  o.target.host = uri.host;
  o.target.port = uri.port.value_or(0);
  o.target.user = uri.user;
  auto file = [&](const char* key) -> Result<std::filesystem::path> {
    std::string value = uri.Query(key).value_or("");
    if (value.empty()) return std::filesystem::path();
    if (value.starts_with("~/")) {
      const char* home = std::getenv("HOME");
      if (home != nullptr) value = std::string(home) + value.substr(1);
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(value, ec)) {
      return NotFoundError(scheme + ":// option " + key + ": " + value +
                           " is not a file; give the path of an existing file");
    }
    return std::filesystem::path(value);
  };
  BITFUSION_ASSIGN_OR_RETURN(o.target.identity, file("identity"));
  BITFUSION_ASSIGN_OR_RETURN(o.session.config_file, file("ssh_config"));
  BITFUSION_ASSIGN_OR_RETURN(o.session.runtime_dir, RuntimeDirFromUri(uri, scheme_name));
  BITFUSION_ASSIGN_OR_RETURN(o.session.options, SshOptionsFromUri(uri, scheme_name));
  BITFUSION_ASSIGN_OR_RETURN(std::int64_t timeout, uri.QueryInt("connect_timeout", 10));
  if (timeout < 1) {
    return InvalidArgumentError(scheme + ":// option connect_timeout must be at least 1 (seconds)");
  }
  o.session.connect_timeout = std::chrono::seconds(timeout);
  return o;
}

Result<std::filesystem::path> RuntimeDirFromUri(const Uri& uri, std::string_view scheme) {
  std::filesystem::path dir = uri.Query("runtime_dir").value_or("");
  BITFUSION_RETURN_IF_ERROR(CheckRuntimeDir(dir).WithContext(std::string(scheme) + ":// URI"));
  return dir;
}

Result<std::vector<std::string>> SshOptionsFromUri(const Uri& uri, std::string_view scheme) {
  std::vector<std::string> options;
  for (const auto& [k, v] : uri.query) {
    if (k != "ssh_option") continue;
    // ssh -o takes "KEY=VALUE" and "KEY VALUE".
    const auto separator = v.find_first_of("= \t");
    if (separator == std::string::npos || separator == 0) {
      return InvalidArgumentError(std::string(scheme) + ":// option ssh_option=" + v +
                                  " needs KEY=VALUE (e.g. ssh_option=ServerAliveInterval=15)");
    }
    options.push_back(v);
  }
  return options;
}

}  // namespace bitfusion::internal
