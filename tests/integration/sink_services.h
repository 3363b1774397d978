// The stores the network sinks are tested against, each started by the tests in a directory of
// its own on 127.0.0.1 ports nobody else uses, and stopped by PID: a real InfluxDB 1.x, a real
// PostgreSQL, and the strict Elasticsearch fake (tests/fakes/es_fake.py). Each is started once per
// test program, on first use, and shared by its tests (every test writes to a store of its own
// name).
#pragma once

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "integration/service.h"
#include "net/http_client.h"

namespace bitfusion::testing {

/// GET (or POST) `target` on http://127.0.0.1:port; the body, or "" when it failed.
inline net::HttpResponse HttpCall(int port, const std::string& method, const std::string& target,
                                  const std::string& body = "",
                                  const std::string& content_type = "application/json") {
  net::HttpClientOptions options;
  options.base_url = "http://127.0.0.1:" + std::to_string(port);
  auto client = net::HttpClient::Make(options);
  net::HttpRequest request;
  request.method = method;
  request.target = target;
  request.body = body;
  if (!body.empty()) request.headers.emplace_back("Content-Type", content_type);
  request.deadline = DeadlineAfter(std::chrono::seconds(60));
  auto response = (*client)->Send(request);
  return response.ok() ? *response : net::HttpResponse{};
}

/// influxd with its data in a fresh directory.
class InfluxService {
 public:
  /// The shared instance, or nullptr when it cannot run here (why() says why).
  static InfluxService* Get() {
    static std::unique_ptr<InfluxService> instance(new InfluxService());
    return instance->ready_ ? instance.get() : nullptr;
  }
  static std::string Why() {
    Get();
    return why_;
  }
  /// One of its own, on `port` (0: any free one), for tests that stop or start the store.
  static std::unique_ptr<InfluxService> Start(int port) {
    return std::unique_ptr<InfluxService>(new InfluxService(port));
  }
  bool ready() const { return ready_; }
  int port() const { return port_; }

 private:
  explicit InfluxService(int port = 0) {
    if (!HaveProgram("influxd")) {
      why_ = "influxd is not installed (Debian package influxdb)";
      return;
    }
    static int instances = 0;
    dir_ = FreshDir("influxd-" + std::to_string(instances++));
    remove_dir_.path = dir_;
    port_ = port != 0 ? port : FreePort();
    const int rpc_port = FreePort();
    std::ofstream(dir_ / "influxdb.conf")
        << "reporting-disabled = true\n"
        << "bind-address = \"127.0.0.1:" << rpc_port << "\"\n"
        << "[meta]\n  dir = \"" << (dir_ / "meta").string() << "\"\n"
        << "[data]\n  dir = \"" << (dir_ / "data").string() << "\"\n"
        << "  wal-dir = \"" << (dir_ / "wal").string() << "\"\n"
        << "  query-log-enabled = false\n"
        << "[http]\n  bind-address = \"127.0.0.1:" << port_ << "\"\n"
        << "  log-enabled = false\n  max-row-limit = 0\n"
        << "[monitor]\n  store-enabled = false\n";
    process_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"influxd", "-config", (dir_ / "influxdb.conf").string()},
        (dir_ / "influxd.log").string());
    ready_ = process_->WaitReady([&] { return HttpCall(port_, "GET", "/ping").status == 204; });
    if (!ready_) why_ = "influxd did not start: " + process_->Log().substr(0, 2000);
  }

  std::filesystem::path dir_;
  RemoveDirLater remove_dir_;
  int port_ = 0;
  bool ready_ = false;
  std::unique_ptr<ServiceProcess> process_;
  static inline std::string why_;
};

/// A PostgreSQL server of its own (initdb into a fresh directory, trust authentication, fsync
/// off: the tests check what the server answers, not its durability).
class PostgresService {
 public:
  static PostgresService* Get() {
    static std::unique_ptr<PostgresService> instance(new PostgresService());
    return instance->ready_ ? instance.get() : nullptr;
  }
  static std::string Why() {
    Get();
    return why_;
  }
  int port() const { return port_; }
  /// libpq connection string for the superuser.
  std::string conninfo() const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres";
  }
  ~PostgresService() {
    // Fast shutdown (SIGTERM would wait for clients to leave).
    if (process_ && process_->pid() > 0) ::kill(-process_->pid(), SIGINT);
  }

 private:
  PostgresService() {
    std::string bin;
    for (const char* dir : {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
                            "/usr/lib/postgresql/17/bin"}) {
      if (::access((std::string(dir) + "/postgres").c_str(), X_OK) == 0) bin = dir;
    }
    if (bin.empty()) {
      why_ = "the PostgreSQL server is not installed (Debian package postgresql)";
      return;
    }
    // As root the server must run as another user: postgres, which the package creates.
    std::vector<std::string> as_user;
    const passwd* pg = ::getpwnam("postgres");
    if (IsRoot()) {
      if (pg == nullptr) {
        why_ = "running as root, but there is no postgres user to run the server as";
        return;
      }
      as_user = {"runuser", "-u", "postgres", "--"};
    }
    dir_ = FreshDir("postgres");
    remove_dir_.path = dir_;
    const auto data = dir_ / "data";
    const auto sockets = dir_ / "sockets";
    std::filesystem::create_directories(sockets);
    if (IsRoot()) {
      for (const auto& d : {dir_, sockets}) {
        if (::chown(d.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
          why_ = "cannot give " + d.string() + " to the postgres user";
          return;
        }
      }
    }
    std::string initdb;
    for (const auto& a : as_user) initdb += a + " ";
    initdb += bin + "/initdb -D " + data.string() +
              " -A trust -U postgres --no-sync -E UTF8 --locale=C > " +
              (dir_ / "initdb.log").string() + " 2>&1";
    if (std::system(initdb.c_str()) != 0) {
      std::ifstream log(dir_ / "initdb.log");
      why_ = "initdb failed: " + std::string(std::istreambuf_iterator<char>(log), {});
      return;
    }
    port_ = FreePort();
    std::vector<std::string> argv = as_user;
    for (const std::string& a :
         {bin + "/postgres", std::string("-D"), data.string(), std::string("-k"), sockets.string(),
          std::string("-p"), std::to_string(port_), std::string("-c"),
          std::string("listen_addresses=127.0.0.1"), std::string("-c"), std::string("fsync=off"),
          std::string("-c"), std::string("synchronous_commit=off"), std::string("-c"),
          std::string("full_page_writes=off")}) {
      argv.push_back(a);
    }
    process_ = std::make_unique<ServiceProcess>(argv, (dir_ / "postgres.log").string());
    ready_ = process_->WaitReady([&] { return PQping(conninfo().c_str()) == PQPING_OK; });
    if (!ready_) why_ = "postgres did not start: " + process_->Log().substr(0, 2000);
  }

  std::filesystem::path dir_;
  RemoveDirLater remove_dir_;
  int port_ = 0;
  bool ready_ = false;
  std::unique_ptr<ServiceProcess> process_;
  static inline std::string why_;
};

/// The Elasticsearch fake (tests/fakes/es_fake.py), run with Debian's python.
class EsFakeService {
 public:
  /// The shared instance (7.17, no faults), or nullptr when it cannot run (Why() says why).
  static EsFakeService* Get() {
    static std::unique_ptr<EsFakeService> instance(new EsFakeService({}));
    return instance->ready_ ? instance.get() : nullptr;
  }
  static std::string Why() {
    Get();
    return why_;
  }
  /// One of its own, with es_fake.py's options ("--version", "8.11.0", "--bulk-429", "0.5").
  static std::unique_ptr<EsFakeService> Start(const std::vector<std::string>& args) {
    return std::unique_ptr<EsFakeService>(new EsFakeService(args));
  }
  bool ready() const { return ready_; }
  int port() const { return port_; }
  std::string Log() const { return process_ ? process_->Log() : why_; }
  /// Stops it (SIGTERM): a store that is down.
  void Stop() {
    if (process_) process_->Stop();
  }

 private:
  explicit EsFakeService(const std::vector<std::string>& args) {
    const std::string python = BITFUSION_PYTHON;
    const std::string script = std::string(BITFUSION_SOURCE_DIR) + "/tests/fakes/es_fake.py";
    if (!HaveProgram(python)) {
      why_ = python + " is not installed";
      return;
    }
    static int instances = 0;
    dir_ = FreshDir("es-fake-" + std::to_string(instances++));
    remove_dir_.path = dir_;
    const auto port_file = dir_ / "port";
    std::vector<std::string> argv = {python, script, "--port-file", port_file.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<ServiceProcess>(argv, (dir_ / "es_fake.log").string());
    ready_ = process_->WaitReady([&] {
      std::ifstream in(port_file);
      return static_cast<bool>(in >> port_);
    });
    if (!ready_) why_ = "es_fake.py did not start: " + process_->Log().substr(0, 2000);
  }

  std::filesystem::path dir_;
  RemoveDirLater remove_dir_;
  int port_ = 0;
  bool ready_ = false;
  std::unique_ptr<ServiceProcess> process_;
  static inline std::string why_;
};

}  // namespace bitfusion::testing
