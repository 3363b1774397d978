// What docker:// decides without an engine: URIs and the environment, refusals before anything
// is sent, and the tar archives it moves files in. The engine itself is exercised in
// tests/integration/docker_integration_test.cc.
#include "runners/docker_runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "fakes/http_test_server.h"
#include "integration/service.h"
#include "runners/docker_container.h"
#include "runners/tar_archive.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

using testing::ScopedEnv;

Result<DockerRunnerOptions> Options(const std::string& uri) {
  auto parsed = Uri::Parse(uri);
  if (!parsed) return parsed.error();
  return DockerRunnerOptions::FromUri(*parsed);
}

TEST(DockerRunnerOptionsTest, SocketPathsAndTheDefault) {
  ScopedEnv env({{"DOCKER_HOST", nullptr}, {"DOCKER_TLS_VERIFY", nullptr}});
  auto plain = Options("docker://");
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_EQ(plain->socket_path, "/var/run/docker.sock");
  EXPECT_EQ(plain->Endpoint(), "unix:///var/run/docker.sock");
  auto path = Options("docker:///tmp/x/d.sock?ttl=2h&init=false&api=1.43");
  ASSERT_TRUE(path.ok()) << path.error().ToString();
  EXPECT_EQ(path->socket_path, "/tmp/x/d.sock");
  EXPECT_EQ(path->ttl, std::chrono::hours(2));
  EXPECT_FALSE(path->init);
  EXPECT_EQ(path->api_version, "1.43");
  auto tcp = Options("docker://10.0.0.5:2375");
  ASSERT_TRUE(tcp.ok());
  EXPECT_TRUE(tcp->socket_path.empty());
  EXPECT_EQ(tcp->Endpoint(), "http://10.0.0.5:2375");
}

TEST(DockerRunnerOptionsTest, DockerHostAndTlsVerifyFromTheEnvironment) {
  {
    ScopedEnv env({{"DOCKER_HOST", "unix:///run/other.sock"}, {"DOCKER_TLS_VERIFY", nullptr}});
    auto o = Options("docker://");
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(o->socket_path, "/run/other.sock");
    // An explicit path wins over the environment.
    EXPECT_EQ(Options("docker:///tmp/mine.sock")->socket_path, "/tmp/mine.sock");
  }
  const fs::path certs =
      fs::path(::testing::TempDir()) / ("bf-certs-" + std::to_string(::getpid()));
  fs::create_directories(certs);
  for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) std::ofstream(certs / f) << "x";
  {
    ScopedEnv env({{"DOCKER_HOST", "tcp://127.0.0.1:2376"},
                   {"DOCKER_TLS_VERIFY", "1"},
                   {"DOCKER_CERT_PATH", certs.c_str()}});
    auto o = Options("docker://");
    ASSERT_TRUE(o.ok()) << o.error().ToString();
    EXPECT_TRUE(o->tls);
    EXPECT_EQ(o->Endpoint(), "https://127.0.0.1:2376");
    EXPECT_EQ(o->ca_file, (certs / "ca.pem").string());
    EXPECT_EQ(o->cert_file, (certs / "cert.pem").string());
    EXPECT_EQ(o->key_file, (certs / "key.pem").string());
  }
  {
    ScopedEnv env({{"DOCKER_HOST", "tcp://127.0.0.1:2375"}, {"DOCKER_TLS_VERIFY", nullptr}});
    auto o = Options("docker://");
    ASSERT_TRUE(o.ok());
    EXPECT_FALSE(o->tls) << "without DOCKER_TLS_VERIFY a tcp:// host is plain HTTP";
  }
  fs::remove_all(certs);
}

TEST(DockerRunnerOptionsTest, TlsCertificatesFromTheUri) {
  ScopedEnv env({{"DOCKER_CERT_PATH", "/nonexistent"}, {"HOME", "/nonexistent"}});
  auto none = Options("docker+tls://127.0.0.1:2376");
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_TRUE(none->tls);
  EXPECT_TRUE(none->cert_file.empty());
  auto missing = Options("docker+tls://127.0.0.1:2376?ca=/nonexistent/ca.pem");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.error().message().find("/nonexistent/ca.pem"), std::string::npos);
}

TEST(DockerRunnerOptionsTest, MistakesAreNamed) {
  ScopedEnv env({{"DOCKER_HOST", nullptr}});
  for (const char* bad : {"docker:///x.sock?tll=1h", "docker+tls://", "docker:///x.sock?api=1.30",
                          "docker:///x.sock?cert=/etc/hosts", "docker:///x.sock?ttl=0s"}) {
    auto o = Options(bad);
    EXPECT_FALSE(o.ok()) << bad;
    if (!o.ok()) EXPECT_EQ(o.error().code(), StatusCode::kInvalidArgument) << bad;
  }
  for (const char* host : {"npipe:////./pipe/docker_engine", "ssh://user@host/var/run/x.sock"}) {
    ScopedEnv unsupported({{"DOCKER_HOST", host}});
    auto o = Options("docker://");
    ASSERT_FALSE(o.ok()) << host;
    EXPECT_EQ(o.error().code(), StatusCode::kInvalidArgument) << host;
    EXPECT_NE(o.error().message().find("DOCKER_HOST"), std::string::npos) << o.error().message();
  }
}

TEST(DockerRunnerOptionsTest, SshHostSocketAndFiles) {
  ScopedEnv env({{"DOCKER_HOST", nullptr}});
  auto plain = Options("docker+ssh://bench@10.0.0.5");
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_EQ(plain->ssh.host, "10.0.0.5");
  EXPECT_EQ(plain->ssh.user, "bench");
  EXPECT_EQ(plain->ssh.port, 0);
  EXPECT_EQ(plain->ssh.socket_path, "/var/run/docker.sock");
  EXPECT_TRUE(plain->socket_path.empty());
  EXPECT_TRUE(plain->host.empty());
  EXPECT_FALSE(plain->local()) << "an engine over SSH is remote, like one over TLS";
  EXPECT_EQ(plain->Endpoint(), "ssh://bench@10.0.0.5/var/run/docker.sock");

  const fs::path dir = fs::path(::testing::TempDir()) / ("bf-sshopt-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config") << "Host *\n";
  std::ofstream(dir / "key") << "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n";
  auto full = Options(
      "docker+ssh://root@127.0.0.1:2222?socket=/run/user/1000/docker.sock&ssh_config=" +
      (dir / "config").string() + "&identity=" + (dir / "key").string() + "&api_timeout=30s");
  ASSERT_TRUE(full.ok()) << full.error().ToString();
  EXPECT_EQ(full->ssh.port, 2222);
  EXPECT_EQ(full->ssh.socket_path, "/run/user/1000/docker.sock");
  EXPECT_EQ(full->ssh.config_file, (dir / "config").string());
  EXPECT_EQ(full->ssh.identity_file, (dir / "key").string());
  EXPECT_EQ(full->api_timeout, std::chrono::seconds(30));
  EXPECT_EQ(full->Endpoint(), "ssh://root@127.0.0.1:2222/run/user/1000/docker.sock");
  // The login options of the other SSH backends: a plan's docker machine gets its provisioner's.
  auto login = Options(
      "docker+ssh://root@h?ssh_option=ServerAliveInterval%3D5&ssh_option=Compression%3Dyes"
      "&runtime_dir=/run/bf");
  ASSERT_TRUE(login.ok()) << login.error().ToString();
  EXPECT_EQ(login->ssh.options,
            (std::vector<std::string>{"ServerAliveInterval=5", "Compression=yes"}));
  EXPECT_EQ(login->ssh.runtime_dir, "/run/bf");

  auto missing = Options("docker+ssh://root@h?identity=/nonexistent/key");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.error().message().find("/nonexistent/key"), std::string::npos);
  for (const char* bad :
       {"docker+ssh://", "docker+ssh://root@h/var/run/docker.sock",
        "docker+ssh://root@h?socket=rel", "docker+ssh://root@h?socket=/a:b",
        "docker+ssh://root:pw@h", "docker+ssh://root@h?sockte=/x", "docker:///x.sock?socket=/y",
        "docker+tls://h:2376?identity=/etc/hosts", "docker+ssh://root@h?ssh_option=NoValue",
        "docker+ssh://root@h?runtime_dir=/tmp/"
        "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
        "docker:///x.sock?runtime_dir=/run", "docker+tls://h:2376?ssh_option=A%3Db"}) {
    auto o = Options(bad);
    EXPECT_FALSE(o.ok()) << bad;
    if (o.ok()) continue;
    EXPECT_EQ(o.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(o.error().message().find("pw"), std::string::npos) << o.error().message();
  }
  fs::remove_all(dir);
}

TEST(DockerRunnerOptionsTest, DockerHostSshMeansDockerSsh) {
  ScopedEnv env({{"DOCKER_HOST", "ssh://bench@10.0.0.5:2200"}, {"DOCKER_TLS_VERIFY", nullptr}});
  auto o = Options("docker://?socket=/run/docker.sock");
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->ssh.host, "10.0.0.5");
  EXPECT_EQ(o->ssh.user, "bench");
  EXPECT_EQ(o->ssh.port, 2200);
  EXPECT_EQ(o->ssh.socket_path, "/run/docker.sock");
  EXPECT_EQ(o->Endpoint(), "ssh://bench@10.0.0.5:2200/run/docker.sock");
  // An explicit socket path wins over the environment, as it does for unix:// and tcp://.
  auto mine = Options("docker:///tmp/mine.sock");
  ASSERT_TRUE(mine.ok());
  EXPECT_TRUE(mine->ssh.host.empty());
  EXPECT_EQ(mine->socket_path, "/tmp/mine.sock");
}

TEST(DockerRunnerTest, UnreachableSshHostIsNamed) {
  // Nothing listens on port 1 of 127.0.0.1: the login fails at once, before any engine call.
  auto runner = ContainerRunnerFromUri(
      "docker+ssh://nobody@127.0.0.1:1?ssh_config=/dev/null&connect_timeout=2s");
  ASSERT_FALSE(runner.ok());
  BITFUSION_REQUIRE_SERVICE(runner.error().code() != StatusCode::kNotFound ||
                                runner.error().message().find("no \"ssh\"") == std::string::npos,
                            runner.error().message());
  EXPECT_EQ(runner.error().code(), StatusCode::kUnavailable) << runner.error().ToString();
  EXPECT_NE(runner.error().message().find("nobody@127.0.0.1:1"), std::string::npos)
      << runner.error().message();
}

TEST(DockerRunnerTest, UnreachableEngineSaysWhereAndWhatToDo) {
  auto runner = ContainerRunnerFromUri("docker:///tmp/bf-unit-no-engine.sock");
  ASSERT_TRUE(runner.ok());
  auto caps = (*runner)->Capabilities();
  ASSERT_FALSE(caps.ok());
  EXPECT_EQ(caps.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(caps.error().message().find("no socket at /tmp/bf-unit-no-engine.sock"),
            std::string::npos)
      << caps.error().message();
  // Invalid input is refused before the engine is asked anything.
  ContainerSpec spec;
  spec.image = "Upper:1";  // a single name component must be lower-case
  EXPECT_EQ((*runner)->Create(spec).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*runner)->InspectImage("bad image").error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*runner)->EnsureImage("", kNoDeadline).code(), StatusCode::kInvalidArgument);
}

TEST(DockerRunnerOptionsTest, ApiTimeoutBoundsEachCall) {
  ScopedEnv env({{"DOCKER_HOST", nullptr}});
  EXPECT_EQ(Options("docker://")->api_timeout, std::chrono::seconds(60));
  EXPECT_EQ(Options("docker:///x.sock?api_timeout=1500ms")->api_timeout,
            std::chrono::milliseconds(1500));
  for (const char* bad : {"docker:///x.sock?api_timeout=0s", "docker:///x.sock?api_timeout=soon"}) {
    auto o = Options(bad);
    ASSERT_FALSE(o.ok()) << bad;
    EXPECT_EQ(o.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(o.error().message().find("api_timeout"), std::string::npos) << o.error().message();
  }
}

// An engine that answers /_ping and then never finishes another answer: each call that has no
// deadline of its own ends at api_timeout instead of hanging its caller.
TEST(DockerRunnerTest, AWedgedEngineFailsCallsAtTheApiTimeout) {
  testing::HttpTestServer engine([](const testing::TestRequest& request) {
    testing::TestResponse out;
    if (request.target == "/_ping") {
      out.headers = {{"Api-Version", "1.43"}};
      out.body = "OK";
      return out;
    }
    out.chunks = {"{"};
    out.hold_open = true;
    return out;
  });
  // "http://127.0.0.1:PORT" -> "docker://127.0.0.1:PORT" (plain TCP)
  auto runner = ContainerRunnerFromUri("docker" + engine.url().substr(4) + "?api_timeout=300ms");
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  const auto started = std::chrono::steady_clock::now();
  auto listed = (*runner)->ListContainers({});
  auto inspected = (*runner)->InspectContainer("abc");
  auto tail = (*runner)->TailLogs("abc", 10);
  auto caps = (*runner)->Capabilities();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  for (const Status& s : {listed.status(), inspected.status(), tail.status(), caps.status()}) {
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  }
}

// "Created" is in seconds: one past 2262 does not fit in ns and reads as unknown (0) instead of
// overflowing (it did, in ListContainers and ListImages).
TEST(DockerRunnerTest, ACreationTimePast2262IsUnknownNotOverflowed) {
  testing::HttpTestServer engine([](const testing::TestRequest& request) {
    testing::TestResponse out;
    if (request.target == "/_ping") {
      out.headers = {{"Api-Version", "1.43"}};
      out.body = "OK";
    } else if (request.target.find("/containers/json") != std::string::npos) {
      out.body = R"([{"Id":"a","Names":["/late"],"State":"exited","Created":9300000000},
                     {"Id":"b","Names":["/now"],"State":"exited","Created":1700000000}])";
    } else {
      out.body = R"([{"Id":"sha256:1","RepoTags":["x:1"],"Created":9300000000}])";
    }
    return out;
  });
  auto runner = ContainerRunnerFromUri("docker" + engine.url().substr(4));
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  auto listed = (*runner)->ListContainers({});
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].created_ns, 0);
  EXPECT_EQ((*listed)[1].created_ns, 1'700'000'000'000'000'000);
  auto images = (*runner)->ListImages({});
  ASSERT_TRUE(images.ok()) << images.error().ToString();
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ((*images)[0].created_ns, 0);
}

// Network and block I/O counters are summed over interfaces and devices: sums int64 cannot
// hold stop at its limit instead of overflowing.
TEST(DockerStatsTest, SumsThatInt64CannotHoldSaturate) {
  const auto v = boost::json::parse(R"({"read":"2024-01-02T03:04:05.5Z",
    "networks":{"eth0":{"rx_bytes":9000000000000000000,"tx_bytes":-9000000000000000000},
                "eth1":{"rx_bytes":9000000000000000000,"tx_bytes":-9000000000000000000}},
    "blkio_stats":{"io_service_bytes_recursive":[{"op":"Read","value":9000000000000000000},
      {"op":"read","value":9000000000000000000},{"op":"Write","value":5},
      {"op":"write","value":1e300}]}})");
  const ContainerStats st = internal::ParseDockerStats(v);
  EXPECT_TRUE(st.running);
  EXPECT_EQ(st.rx_bytes, INT64_MAX);
  EXPECT_EQ(st.tx_bytes, INT64_MIN);
  EXPECT_EQ(st.read_bytes, INT64_MAX);
  EXPECT_EQ(st.write_bytes, 5);  // 1e300 reads as missing
}

TEST(TarArchiveTest, RoundTripWithLongNamesLinksAndModes) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("bf-tar-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string long_dir(120, 'd');
  fs::create_directories(dir / "in" / long_dir);
  std::ofstream(dir / "in" / long_dir / "file.txt") << "content";
  std::ofstream(dir / "in" / "run.sh") << "#!/bin/sh\n";
  fs::permissions(dir / "in" / "run.sh", fs::perms(0755));
  fs::create_symlink("run.sh", dir / "in" / "link");
  internal::TarWriter w;
  ASSERT_TRUE(w.AddPath(dir / "in", "top").ok());
  const std::string archive = w.Finish();
  ASSERT_EQ(archive.size() % 512, 0u);

  auto entries = internal::ReadTar(archive);
  ASSERT_TRUE(entries.ok()) << entries.error().ToString();
  bool saw_long = false;
  for (const auto& e : *entries) saw_long = saw_long || e.name == "top/" + long_dir + "/file.txt";
  EXPECT_TRUE(saw_long) << "a name over 100 bytes survives (PAX path record)";

  fs::create_directories(dir / "out");
  ASSERT_TRUE(internal::ExtractTar(archive, dir / "out").ok());
  std::ifstream in(dir / "out" / "top" / long_dir / "file.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "content");
  EXPECT_EQ(fs::read_symlink(dir / "out" / "top" / "link"), "run.sh");
  EXPECT_EQ(fs::status(dir / "out" / "top" / "run.sh").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
  fs::remove_all(dir);
}

TEST(TarArchiveTest, ArchivesCannotWriteOutsideTheTarget) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("bf-tar-evil-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "out");
  internal::TarWriter dots;
  dots.AddFile("a/../../escaped.txt", "x");
  Status s = internal::ExtractTar(dots.Finish(), dir / "out");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(fs::exists(dir / "escaped.txt"));

  internal::TarWriter through_link;
  through_link.AddSymlink("up", "..");
  through_link.AddFile("up/escaped.txt", "x");
  s = internal::ExtractTar(through_link.Finish(), dir / "out");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(fs::exists(dir / "escaped.txt"));

  std::string corrupt = [] {
    internal::TarWriter w;
    w.AddFile("f", "data");
    return w.Finish();
  }();
  corrupt[10] ^= 1;  // the header checksum no longer matches
  EXPECT_EQ(internal::ReadTar(corrupt).error().code(), StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bitfusion
