// static:// without an sshd: inventory parsing, the fingerprint script run on this host, and
// the errors a request gets before anything is leased. The SSH parts run against real sshds in
// tests/integration/static_provisioner_test.cc.
#include "provisioners/static_provisioner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/shell_quote.h"
#include "integration/service.h"
#include "provisioners/host_fingerprint.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

Result<std::vector<StaticHost>> Parse(const std::string& text) {
  return ParseInventory(text, "/etc/bf/inventory.json", "/home/bench");
}

std::string ErrorOf(const std::string& text) {
  auto r = Parse(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.error().message();
}

TEST(StaticInventoryTest, ParsesTheIssuesExampleWithDefaultsAndPaths) {
  auto hosts = Parse(R"({"hosts": [
    {"name": "fpga1", "address": "10.0.0.5", "port": 2222, "user": "bench",
     "key": "~/.ssh/id_ed25519", "labels": {"fpga": "xilinx-u250"}},
    {"name": "office-7", "address": "office-7.example.com", "key": "keys/office"},
    {"name": "abs", "address": "h", "key": "/k/abs"}]})");
  ASSERT_TRUE(hosts.ok()) << hosts.error().ToString();
  ASSERT_EQ(hosts->size(), 3u);
  const StaticHost& a = (*hosts)[0];
  EXPECT_EQ(a.name, "fpga1");
  EXPECT_EQ(a.address, "10.0.0.5");
  EXPECT_EQ(a.port, 2222);
  EXPECT_EQ(a.user, "bench");
  EXPECT_EQ(a.key, fs::path("/home/bench/.ssh/id_ed25519"));
  EXPECT_EQ(a.labels.at("fpga"), "xilinx-u250");
  EXPECT_EQ((*hosts)[1].port, 22);
  EXPECT_TRUE((*hosts)[1].user.empty());
  EXPECT_EQ((*hosts)[1].key, fs::path("/etc/bf/keys/office"));  // against the file's directory
  EXPECT_EQ((*hosts)[2].key, fs::path("/k/abs"));
}

TEST(StaticInventoryTest, SyntaxErrorNamesFileLineAndColumn) {
  const std::string m = ErrorOf("{\"hosts\": [\n  {\"name\": \"a\", \"address\": \"x\",}\n]}");
  EXPECT_THAT(m, HasSubstr("/etc/bf/inventory.json"));
  EXPECT_THAT(m, HasSubstr("line 2"));
  EXPECT_THAT(m, HasSubstr("fix the JSON"));
}

TEST(StaticInventoryTest, FieldErrorsNameTheHostAndField) {
  EXPECT_THAT(ErrorOf(R"({"hosts": [{"name": "a"}]})"),
              HasSubstr("hosts[0] (\"a\").address: missing"));
  EXPECT_THAT(ErrorOf(R"({"hosts": [{"name": "a", "address": "x", "pots": 22}]})"),
              HasSubstr("hosts[0] (\"a\").pots: unknown key"));
  EXPECT_THAT(ErrorOf(R"({"hosts": [{"name": "a", "address": "x", "port": "22"}]})"),
              HasSubstr(".port: expected a number from 1 to 65535"));
  EXPECT_THAT(ErrorOf(R"({"hosts": [{"address": "x"}]})"), HasSubstr("hosts[0].name: missing"));
  EXPECT_THAT(
      ErrorOf(R"({"hosts": [{"name": "a", "address": "x"}, {"name": "a", "address": "y"}]})"),
      HasSubstr("listed twice"));
  EXPECT_THAT(ErrorOf(R"({"hosts": [{"name": "a", "address": "-oProxyCommand=x"}]})"),
              HasSubstr("not a host name or address"));
  EXPECT_THAT(ErrorOf(R"({"hosts": [{"name": "a", "address": "x", "labels": {"gpu": 1}}]})"),
              HasSubstr("labels.gpu: expected a string"));
  EXPECT_THAT(ErrorOf(R"({"machines": []})"), HasSubstr("unknown key"));
  EXPECT_THAT(ErrorOf(R"({"hosts": []})"), HasSubstr("list at least one machine"));
}

TEST(StaticInventoryTest, BadFileIsAnErrorOfMakeBeforeAnythingIsLeased) {
  const auto dir = testing::FreshDir("static-inv");
  std::ofstream(dir / "bad.json") << "{\"hosts\": [";
  auto p = ProvisionerFromUri("static://" + (dir / "bad.json").string() +
                              "?lease_dir=" + (dir / "leases").string());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(p.error().message(), HasSubstr("bad.json: line 1"));
  auto missing = ProvisionerFromUri("static://" + (dir / "none.json").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message(), HasSubstr("none.json"));
  EXPECT_FALSE(fs::exists(dir / "leases"));
  fs::remove_all(dir);
}

// ssh_option= is read as every SSH backend reads it: KEY=VALUE, or a clear error from FromUri
// before the inventory is read.
TEST(StaticInventoryTest, AnSshOptionWithoutAValueIsRefused) {
  const auto dir = testing::FreshDir("static-sshopt");
  std::ofstream(dir / "inv.json") << R"({"hosts": [{"name": "a", "address": "127.0.0.1"}]})";
  const std::string base =
      "static://" + (dir / "inv.json").string() + "?lease_dir=" + (dir / "leases").string();
  auto p = ProvisionerFromUri(base + "&ssh_option=Compression");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(p.error().message(),
              HasSubstr("static:// option ssh_option=Compression needs KEY=VALUE"));
  EXPECT_FALSE(fs::exists(dir / "leases"));
  auto o = StaticProvisionerOptions::FromUri(
      *Uri::Parse(base + "&ssh_option=Compression%3Dyes&ssh_option=ServerAliveInterval=5"
                         "&ssh_option=ConnectionAttempts%202"));
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->ssh_options, (std::vector<std::string>{"Compression=yes", "ServerAliveInterval=5",
                                                      "ConnectionAttempts 2"}));
  fs::remove_all(dir);
}

// A runtime_dir too long for ssh's control socket is refused when the URI is read (not later as a
// host that never becomes reachable); a trailing '/' is not counted.
TEST(StaticInventoryTest, ATooLongRuntimeDirIsRefusedWhenTheUriIsRead) {
  const std::string fits = "/tmp/" + std::string(70, 'r');
  ASSERT_EQ(fits.size(), 75u);
  auto ok =
      StaticProvisionerOptions::FromUri(*Uri::Parse("static:///x.json?runtime_dir=" + fits + "/"));
  EXPECT_TRUE(ok.ok()) << ok.error().ToString();
  auto bad =
      StaticProvisionerOptions::FromUri(*Uri::Parse("static:///x.json?runtime_dir=" + fits + "x"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message(),
              HasSubstr("static:// URI: runtime_dir " + fits + "x has 76 characters"));
  EXPECT_THAT(bad.error().message(), HasSubstr("at most 75"));
}

// A lease directory that cannot be trusted is refused, and the error names static://'s own
// setting for it, not a device allocator's.
TEST(StaticInventoryTest, AnUntrustedLeaseDirNamesTheLeaseDirOption) {
  const auto dir = testing::FreshDir("static-leasedir");
  std::ofstream(dir / "inv.json") << R"({"hosts": [{"name": "a", "address": "127.0.0.1"}]})";
  fs::create_directories(dir / "leases");
  fs::permissions(dir / "leases", fs::perms::all);  // 0777 without the sticky bit
  auto p = ProvisionerFromUri("static://" + (dir / "inv.json").string() +
                              "?lease_dir=" + (dir / "leases").string());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), StatusCode::kPermissionDenied) << p.error().ToString();
  EXPECT_THAT(p.error().message(), HasSubstr("?lease_dir=DIR in the static:// URI"));
  EXPECT_THAT(p.error().message(),
              HasSubstr("the host lease directory " + (dir / "leases").string()));
  EXPECT_THAT(p.error().message(), Not(HasSubstr("allocator")));
  EXPECT_THAT(p.error().message(), Not(HasSubstr("device")));
  fs::remove_all(dir);
}

TEST(StaticInventoryTest, RequestNoHostSatisfiesNamesWhatWasAsked) {
  const auto dir = testing::FreshDir("static-req");
  // Nothing listens on this port: the fingerprint cannot be read, and the error says so.
  const int port = testing::FreePort();
  std::ofstream(dir / "inv.json") << R"({"hosts": [{"name": "a", "address": "127.0.0.1", "port": )"
                                  << port << R"(, "labels": {"fpga": "xilinx-u250"}}]})";
  auto p = ProvisionerFromUri("static://" + (dir / "inv.json").string() +
                              "?lease_dir=" + (dir / "leases").string() + "&connect_timeout=2");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  MachineRequest r;
  r.type = "h100-box";
  auto got = (*p)->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(got.error().message(), HasSubstr("\"h100-box\""));
  EXPECT_THAT(got.error().message(), HasSubstr("its hosts are a"));

  r.type.clear();
  r.requirements.accelerator_kind = "gpu";
  got = (*p)->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(got.error().message(), HasSubstr("gpu"));
  EXPECT_THAT(got.error().message(), HasSubstr("host \"a\" of " + (dir / "inv.json").string() +
                                               ": cannot reach 127.0.0.1:" + std::to_string(port)));

  // The label decides an FPGA request, so the host is a candidate, and being unreachable is
  // the error, with nothing left leased.
  r.requirements.accelerator_kind = "fpga";
  got = (*p)->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(got.error().message(), HasSubstr("Connection refused"));
  EXPECT_THAT(got.error().message(), HasSubstr("nothing was leased"));
  auto listed = (*p)->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());

  auto types = (*p)->Types();
  ASSERT_TRUE(types.ok());
  ASSERT_EQ(types->size(), 1u);
  ASSERT_EQ((*types)[0].accelerators.size(), 1u);
  EXPECT_EQ((*types)[0].accelerators[0].kind, "fpga");
  EXPECT_EQ((*types)[0].accelerators[0].model, "xilinx-u250");
  fs::remove_all(dir);
}

// The script WaitReady runs remotely, run here: it must give what `bitfusion inventory` reads.
TEST(RemoteFingerprintTest, ScriptOnThisHostMatchesTheLocalFingerprint) {
  const auto dir = testing::FreshDir("static-fp");
  std::ofstream(dir / "fp.sh") << RemoteFingerprintScript();
  FILE* pipe = ::popen(("sh " + (dir / "fp.sh").string()).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = ::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  ASSERT_EQ(::pclose(pipe), 0);
  auto remote = ParseRemoteFingerprint(out);
  ASSERT_TRUE(remote.ok()) << remote.error().ToString();
  auto local = ReadHostFingerprint(FingerprintRoots{});
  ASSERT_TRUE(local.ok()) << local.error().ToString();
  EXPECT_EQ(remote->hostname, local->hostname);
  EXPECT_EQ(remote->kernel, local->kernel);
  EXPECT_EQ(remote->os, local->os);
  EXPECT_EQ(remote->cpu.architecture, local->cpu.architecture);
  EXPECT_EQ(remote->cpu.model_name, local->cpu.model_name);
  EXPECT_EQ(remote->cpu.threads, local->cpu.threads);
  EXPECT_EQ(remote->cpu.cores, local->cpu.cores);
  EXPECT_EQ(remote->cpu.sockets, local->cpu.sockets);
  EXPECT_EQ(remote->cpu.numa_nodes, local->cpu.numa_nodes);
  EXPECT_EQ(remote->cpu.caches.size(), local->cpu.caches.size());
  EXPECT_EQ(remote->memory_bytes, local->memory_bytes);
  ASSERT_EQ(remote->accelerators.size(), local->accelerators.size());
  for (std::size_t i = 0; i < local->accelerators.size(); ++i) {
    EXPECT_EQ(remote->accelerators[i].pci_address, local->accelerators[i].pci_address);
    EXPECT_EQ(remote->accelerators[i].driver, local->accelerators[i].driver);
  }
  fs::remove_all(dir);
}

TEST(RemoteFingerprintTest, OutputCannotWriteOutsideItsTreeAndMustBeComplete) {
  const std::string evil =
      "\n@@BF-UNAME h 6.1.0 x86_64\n"
      "\n@@BF-FILE /proc/cpuinfo\nprocessor\t: 0\nmodel name\t: Test CPU\n"
      "\n@@BF-FILE /proc/meminfo\nMemTotal:       1024 kB\n"
      "\n@@BF-FILE /proc/../../tmp/bf-escaped\nx\n"
      "\n@@BF-FILE /root/.bashrc\nx\n"
      "\n@@BF-END\n";
  auto m = ParseRemoteFingerprint(evil);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->cpu.model_name, "Test CPU");
  EXPECT_EQ(m->memory_bytes, 1024u * 1024);
  EXPECT_EQ(m->kernel, "6.1.0");
  EXPECT_FALSE(fs::exists("/tmp/bf-escaped"));

  auto cut = ParseRemoteFingerprint("\n@@BF-UNAME h 6.1.0 x86_64\n\n@@BF-FILE /proc/cpuinfo\n");
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(cut.error().message(), HasSubstr("did not finish"));
}

// What a host says is online is counted once per CPU, and a list no Linux machine could have
// (it once made a vector of 2^31 CPUs) is not believed: cpuinfo's processors count instead.
TEST(RemoteFingerprintTest, OnlineCpusAreCountedOnceAndBounded) {
  auto threads = [](const std::string& online) {
    const std::string out =
        "\n@@BF-UNAME h 6.1.0 x86_64\n"
        "\n@@BF-FILE /proc/cpuinfo\nprocessor\t: 0\n\nprocessor\t: 1\n"
        "\n@@BF-FILE /proc/meminfo\nMemTotal:       1024 kB\n"
        "\n@@BF-FILE /sys/devices/system/cpu/online\n" +
        online + "\n\n@@BF-END\n";
    auto m = ParseRemoteFingerprint(out);
    EXPECT_TRUE(m.ok()) << online << ": " << m.error().ToString();
    return m.ok() ? m->cpu.threads : -1;
  };
  EXPECT_EQ(threads("0-3"), 4);
  EXPECT_EQ(threads("0-3,2-5"), 6);
  EXPECT_EQ(threads("0-3,0-3,0-3"), 4);
  EXPECT_EQ(threads("0-8191"), 8192);
  EXPECT_EQ(threads("0-8192"), 2);
  EXPECT_EQ(threads("0-2147483647"), 2);
  EXPECT_EQ(threads("0-3,x"), 2);
}

TEST(SshSessionTest, ShellQuoteSurvivesQuotesAndMetacharacters) {
  EXPECT_EQ(ShellQuote("plain"), "'plain'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$(rm -rf /); `x`"), "'$(rm -rf /); `x`'");
  EXPECT_EQ(ShellQuote(""), "''");
}

}  // namespace
}  // namespace bitfusion
