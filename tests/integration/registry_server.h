// A Docker registry of a test's own: Debian's docker-registry (Distribution 2.8) with its own
// config, listening on 127.0.0.1 on a free port, storing under a directory of the test's, and
// stopped by PID. Engines trust registries on 127.0.0.0/8 without TLS by default, so a test
// dockerd pushes to and pulls from it as it is. A read-only one refuses every push; one with a
// user asks for that user's password (htpasswd auth, bcrypt as Distribution requires) on every
// call, and refuses everyone else.
#pragma once

#include <crypt.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "integration/service.h"
#include "net/http_client.h"

namespace bitfusion::testing {

class RegistryServer {
 public:
  struct User {
    std::string name, password;
  };
  /// Starts it with its files under `dir`; `read_only` turns on the maintenance mode that
  /// refuses pushes; with `user`, only that user (basic auth) may pull or push.
  RegistryServer(const std::filesystem::path& dir, bool read_only = false,
                 const std::optional<User>& user = std::nullopt)
      : port_(FreePort()) {
    if (!HaveProgram("docker-registry")) {
      error_ = "docker-registry is not installed (Debian: apt-get install docker-registry)";
      return;
    }
    std::filesystem::create_directories(dir / "storage");
    const auto config = dir / "config.yml";
    std::ofstream(config) << "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
                          << "    rootdirectory: " << (dir / "storage").string() << "\n"
                          << "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                          << "    readonly:\n      enabled: " << (read_only ? "true" : "false")
                          << "\nhttp:\n  addr: " << address() << "\n";
    if (user) {
      // Distribution reads bcrypt hashes only; libxcrypt makes them ("$2b$").
      char salt[CRYPT_GENSALT_OUTPUT_SIZE];
      crypt_data data{};
      if (crypt_gensalt_rn("$2b$", 10, nullptr, 0, salt, sizeof salt) == nullptr ||
          crypt_r(user->password.c_str(), salt, &data) == nullptr) {
        error_ = "libcrypt could not make a bcrypt hash for the registry's htpasswd";
        return;
      }
      std::ofstream(dir / "htpasswd") << user->name << ":" << data.output << "\n";
      std::ofstream(config, std::ios::app)
          << "auth:\n  htpasswd:\n    realm: bitfusion-test\n    path: "
          << (dir / "htpasswd").string() << "\n";
    }
    process_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"docker-registry", "serve", config.string()},
        (dir / "registry.log").string());
    // Without a password /v2/ answers 401 once the registry is up.
    const bool up = process_->WaitReady([&] {
      const std::string answer = Get("/v2/");
      return answer.find(user ? "401 " : "200 ") == 0;
    });
    if (!up) error_ = "docker-registry did not answer on " + address() + ": " + process_->Log();
  }

  const std::string& error() const { return error_; }
  /// "127.0.0.1:PORT", as an image reference starts.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  /// "STATUS BODY" of a GET on the registry's API, or "error: ..." when it does not answer.
  std::string Get(const std::string& target) const {
    net::HttpClientOptions o;
    o.base_url = "http://" + address();
    auto client = net::HttpClient::Make(o);
    if (!client.ok()) return "error: " + client.error().ToString();
    net::HttpRequest request;
    request.target = target;
    request.deadline = DeadlineAfter(std::chrono::seconds(5));
    auto r = (*client)->Send(request);
    if (!r.ok()) return "error: " + r.error().ToString();
    return std::to_string(r->status) + " " + r->body;
  }

  std::string Log() const { return process_ ? process_->Log() : ""; }

 private:
  int port_;
  std::string error_;
  std::unique_ptr<ServiceProcess> process_;
};

}  // namespace bitfusion::testing
