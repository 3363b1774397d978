// A Docker registry of a test's own: Debian's docker-registry (Distribution 2.8) with its own
// config, listening on 127.0.0.1 on a free port, storing under a directory of the test's, and
// stopped by PID. Engines trust registries on 127.0.0.0/8 without TLS by default, so a test
// dockerd pushes to and pulls from it as it is. A read-only one refuses every push.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "integration/service.h"
#include "net/http_client.h"

namespace bitfusion::testing {

class RegistryServer {
 public:
  /// Starts it with its files under `dir`; `read_only` turns on the maintenance mode that
  /// refuses pushes.
  RegistryServer(const std::filesystem::path& dir, bool read_only = false) : port_(FreePort()) {
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
    process_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"docker-registry", "serve", config.string()},
        (dir / "registry.log").string());
    const bool up = process_->WaitReady([&] { return Get("/v2/").find("200 ") == 0; });
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
