// bitfusion-probe and the "probe:NAME" source: the wire format, the probe binary reading
// recorded container trees, and the source receiving a real probe that wraps a local command.
// The probe inside a real container is tests/integration/probe_docker_test.cc.
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bitfusion/clock.h"
#include "bitfusion/probe.h"
#include "core/event_loop.h"
#include "integration/service.h"
#include "metrics/probe_source.h"
#include "probe/probe_wire.h"

extern char** environ;

namespace bitfusion {
namespace {

namespace wire = probe_wire;
using namespace std::chrono_literals;

const std::string kProbe = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";
const std::string kFixtures = std::string(BITFUSION_TEST_FIXTURES) + "/probe";

// ---- the wire format ---------------------------------------------------------------------------

struct Buffer {
  unsigned char data[4096];
  wire::Writer w{data, sizeof data};
};

// Decodes one record from the start of `bytes`, expecting success.
wire::Record One(const unsigned char* bytes, std::size_t size) {
  wire::Record r;
  std::size_t used = 0;
  std::string error;
  EXPECT_EQ(wire::NextRecord(bytes, size, r, used, error), wire::Next::kRecord) << error;
  EXPECT_EQ(used, size);
  return r;
}

std::string DecodeError(const std::vector<unsigned char>& bytes) {
  wire::Record r;
  std::size_t used = 0;
  std::string error;
  EXPECT_EQ(wire::NextRecord(bytes.data(), bytes.size(), r, used, error), wire::Next::kError);
  return error;
}

TEST(ProbeWireTest, EveryRecordTypeRoundTrips) {
  Buffer b;
  wire::Hello hello;
  hello.interval_ns = 10'000'000;
  hello.probe_pid = 1;
  hello.cgroup = "v1";
  hello.hostname = "3ab1fce85d65";
  ASSERT_TRUE(wire::EncodeHello(b.w, hello));
  const std::size_t hello_size = b.w.size();
  wire::Hello h;
  std::string error;
  ASSERT_TRUE(wire::ParseHello(One(b.data, hello_size), h, error)) << error;
  EXPECT_EQ(h.version, wire::kVersion);
  EXPECT_EQ(h.interval_ns, 10'000'000);
  EXPECT_EQ(h.probe_pid, 1);
  EXPECT_EQ(h.cgroup, "v1");
  EXPECT_EQ(h.hostname, "3ab1fce85d65");

  b.w.Clear();
  wire::Declare d;
  d.index = 4;
  d.counter = true;
  d.metric = "proc.cpu.user";
  d.unit = "s";
  d.labels[0] = {"pid", "7"};
  d.labels[1] = {"comm", "sleep"};
  d.label_count = 2;
  ASSERT_TRUE(wire::EncodeDeclare(b.w, d));
  wire::Declare d2;
  ASSERT_TRUE(wire::ParseDeclare(One(b.data, b.w.size()), d2, error)) << error;
  EXPECT_EQ(d2.index, 4u);
  EXPECT_TRUE(d2.counter);
  EXPECT_EQ(d2.metric, "proc.cpu.user");
  EXPECT_EQ(d2.unit, "s");
  ASSERT_EQ(d2.label_count, 2u);
  EXPECT_EQ(d2.labels[1].key, "comm");
  EXPECT_EQ(d2.labels[1].value, "sleep");

  b.w.Clear();
  const std::size_t at = wire::BeginTick(b.w, {1700000000123456789, 987654321, 4242, 0});
  wire::TickValue(b.w, 0, 1.5);
  wire::TickValue(b.w, 3, -0.0);
  wire::TickValue(b.w, 7, 1e300);
  ASSERT_TRUE(wire::FinishTick(b.w, at));
  EXPECT_EQ(b.w.size(), wire::kSizeBytes + wire::kTickHeaderBytes + 3 * wire::kTickValueBytes);
  const wire::Record tick = One(b.data, b.w.size());
  wire::Tick t;
  ASSERT_TRUE(wire::ParseTick(tick, t, error)) << error;
  EXPECT_EQ(t.wall_ns, 1700000000123456789);
  EXPECT_EQ(t.mono_ns, 987654321);
  EXPECT_EQ(t.probe_cpu_ns, 4242);
  ASSERT_EQ(t.count, 3u);
  std::uint32_t s = 0;
  double v = 0;
  wire::TickValueAt(tick, 2, s, v);
  EXPECT_EQ(s, 7u);
  EXPECT_EQ(v, 1e300);
  wire::TickValueAt(tick, 1, s, v);
  EXPECT_TRUE(std::signbit(v));

  b.w.Clear();
  ASSERT_TRUE(wire::EncodeEnd(b.w, {true, -1, 9, 77}));
  wire::End e;
  ASSERT_TRUE(wire::ParseEnd(One(b.data, b.w.size()), e, error)) << error;
  EXPECT_TRUE(e.has_exit);
  EXPECT_EQ(e.exit_code, -1);
  EXPECT_EQ(e.signal, 9);
  EXPECT_EQ(e.probe_cpu_ns, 77);
}

TEST(ProbeWireTest, AWriterThatRunsOutOfRoomSaysSo) {
  unsigned char small[16];
  wire::Writer w(small, sizeof small);
  wire::Declare d;
  d.metric = "a.metric.name.longer.than.sixteen.bytes";
  EXPECT_FALSE(wire::EncodeDeclare(w, d));
  EXPECT_FALSE(w.ok());
}

TEST(ProbeWireTest, ARecordNotYetWhollyArrivedNeedsMore) {
  Buffer b;
  ASSERT_TRUE(wire::EncodeEnd(b.w, {}));
  for (std::size_t n = 0; n < b.w.size(); ++n) {
    wire::Record r;
    std::size_t used = 0;
    std::string error;
    EXPECT_EQ(wire::NextRecord(b.data, n, r, used, error), wire::Next::kNeedMore) << n;
  }
}

TEST(ProbeWireTest, OversizedZeroSizedAndUnknownRecordsAreRefusedAtOnce) {
  // Garbage: an HTTP request line read as a size is 0x20544547 bytes.
  const std::string http = "GET / HTTP/1.1\r\n";
  const std::string garbage = DecodeError({http.begin(), http.end()});
  EXPECT_NE(garbage.find("record size 542393671 is outside 1..1048576"), std::string::npos)
      << garbage;
  EXPECT_NE(garbage.find("not from a bitfusion-probe"), std::string::npos);

  // One byte over the limit, refused from its first five bytes.
  const std::uint32_t over = wire::kMaxRecordBytes + 1;
  const std::string oversized = DecodeError(
      {static_cast<unsigned char>(over), static_cast<unsigned char>(over >> 8),
       static_cast<unsigned char>(over >> 16), static_cast<unsigned char>(over >> 24), 3});
  EXPECT_NE(oversized.find("record size 1048577"), std::string::npos) << oversized;

  EXPECT_NE(DecodeError({0, 0, 0, 0, 1}).find("record size 0"), std::string::npos);
  const std::string unknown = DecodeError({1, 0, 0, 0, 9});
  EXPECT_NE(unknown.find("unknown record type 9"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("wire version 1"), std::string::npos) << unknown;
}

TEST(ProbeWireTest, TruncatedAndPaddedBodiesAreNamed) {
  Buffer b;
  wire::Hello hello;
  hello.cgroup = "v2";
  hello.hostname = "h";
  ASSERT_TRUE(wire::EncodeHello(b.w, hello));
  // The same record claiming two bytes fewer: the hostname's string runs past its end.
  wire::Record r = One(b.data, b.w.size());
  r.size -= 2;
  wire::Hello h;
  std::string error;
  EXPECT_FALSE(wire::ParseHello(r, h, error));
  EXPECT_NE(error.find("HELLO record"), std::string::npos) << error;
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;

  b.w.Clear();
  const std::size_t at = wire::BeginTick(b.w, {});
  wire::TickValue(b.w, 0, 1.0);
  wire::TickValue(b.w, 1, 2.0);
  ASSERT_TRUE(wire::FinishTick(b.w, at));
  r = One(b.data, b.w.size());
  r.size -= 5;  // a value cut in the middle
  wire::Tick t;
  EXPECT_FALSE(wire::ParseTick(r, t, error));
  EXPECT_NE(error.find("TICK record says 2 values but carries 19 bytes"), std::string::npos)
      << error;

  b.w.Clear();
  ASSERT_TRUE(wire::EncodeEnd(b.w, {}));
  r = One(b.data, b.w.size());
  r.size += 0;
  b.data[b.w.size()] = 0;
  r.size += 1;  // one byte too many
  wire::End e;
  EXPECT_FALSE(wire::ParseEnd(r, e, error));
  EXPECT_NE(error.find("1 bytes after its last field"), std::string::npos) << error;
}

TEST(ProbeWireTest, AnotherVersionIsNamedWithBoth) {
  Buffer b;
  wire::Hello hello;
  hello.version = 2;
  ASSERT_TRUE(wire::EncodeHello(b.w, hello));
  wire::Hello h;
  std::string error;
  EXPECT_FALSE(wire::ParseHello(One(b.data, b.w.size()), h, error));
  EXPECT_NE(error.find("speaks wire version 2, this bitfusion reads version 1"), std::string::npos)
      << error;

  b.w.Clear();
  ASSERT_TRUE(wire::EncodeHello(b.w, {}));
  b.data[5] = 'X';  // the magic
  EXPECT_FALSE(wire::ParseHello(One(b.data, b.w.size()), h, error));
  EXPECT_NE(error.find("magic"), std::string::npos) << error;
}

// ---- the probe binary on recorded trees ---------------------------------------------------------

struct Decoded {
  wire::Hello hello;
  std::string cgroup;
  std::vector<Series> series;
  struct TickValues {
    std::int64_t wall_ns = 0, mono_ns = 0, probe_cpu_ns = 0;
    std::map<std::string, double> values;  // "metric{k=v,...}"
  };
  std::vector<TickValues> ticks;
  int declares = 0;
  int pongs = 0;
  std::vector<wire::Pong> pong_records;
  bool ended = false;
  std::string error;
};

std::string Key(const Series& s) {
  std::string k = s.metric;
  for (const auto& [name, value] : s.labels) k += "," + name + "=" + value;
  return k;
}

Decoded DecodeAll(const std::string& bytes) {
  Decoded out;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t at = 0;
  while (at < bytes.size()) {
    wire::Record r;
    std::size_t used = 0;
    const wire::Next next = wire::NextRecord(data + at, bytes.size() - at, r, used, out.error);
    if (next != wire::Next::kRecord) {
      if (next == wire::Next::kNeedMore) out.error = "the stream ends inside a record";
      return out;
    }
    at += used;
    switch (r.type) {
      case wire::RecordType::kHello:
        if (!wire::ParseHello(r, out.hello, out.error)) return out;
        out.cgroup = std::string(out.hello.cgroup);
        break;
      case wire::RecordType::kDeclare: {
        wire::Declare d;
        if (!wire::ParseDeclare(r, d, out.error)) return out;
        EXPECT_EQ(d.index, out.series.size());
        Series s;
        s.metric = d.metric;
        s.unit = d.unit;
        s.counter = d.counter;
        for (std::size_t i = 0; i < d.label_count; ++i) {
          s.labels[std::string(d.labels[i].key)] = d.labels[i].value;
        }
        out.series.push_back(s);
        ++out.declares;
        break;
      }
      case wire::RecordType::kTick: {
        wire::Tick t;
        if (!wire::ParseTick(r, t, out.error)) return out;
        Decoded::TickValues tv{t.wall_ns, t.mono_ns, t.probe_cpu_ns, {}};
        for (std::uint32_t i = 0; i < t.count; ++i) {
          std::uint32_t s = 0;
          double v = 0;
          wire::TickValueAt(r, i, s, v);
          EXPECT_LT(s, out.series.size());
          if (s < out.series.size()) tv.values[Key(out.series[s])] = v;
        }
        out.ticks.push_back(tv);
        break;
      }
      case wire::RecordType::kEnd: out.ended = true; break;
      case wire::RecordType::kPing: out.error = "a PING from the probe"; return out;
      case wire::RecordType::kPong: {
        wire::Pong pong;
        if (!wire::ParsePong(r, pong, out.error)) return out;
        out.pong_records.push_back(pong);
        ++out.pongs;
        break;
      }
    }
  }
  return out;
}

// Runs the probe with `args`, returning its stdout (the records) and its exit status.
std::string RunProbe(const std::string& args, int* status) {
  const std::string command = kProbe + " " + args + " 2>/dev/null";
  FILE* p = ::popen(command.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = ::pclose(p);
  if (status != nullptr) *status = st;
  return out;
}

// --control-stdin (host+ssh://): each PING on stdin is answered with a PONG echoing its t1 and
// stamped on this host's wall clock; the end of stdin stops a probe that has no command.
TEST(ProbeBinaryTest, AnswersPingsAndStopsAtTheEndOfStdin) {
  const std::string pings = ::testing::TempDir() + "/probe_pings_" + std::to_string(::getpid());
  {
    unsigned char bytes[256];
    wire::Writer w(bytes, sizeof bytes);
    for (std::int64_t t1 : {11, 22, 33}) ASSERT_TRUE(wire::EncodePing(w, wire::Ping{t1}));
    std::ofstream(pings, std::ios::binary)
        .write(reinterpret_cast<const char*>(w.data()), static_cast<std::streamsize>(w.size()));
  }
  const std::int64_t before = WallNowNs();
  int status = -1;
  // A 60 min interval: only the first sample is taken, so the probe ends because stdin did.
  const Decoded d = DecodeAll(RunProbe(
      "--stdout --control-stdin --no-processes --no-cgroup --interval 60m < " + pings, &status));
  const std::int64_t after = WallNowNs();
  std::remove(pings.c_str());
  ASSERT_TRUE(d.error.empty()) << d.error;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(d.ended);
  EXPECT_EQ(d.ticks.size(), 1u);
  EXPECT_EQ(d.cgroup, "none") << "--no-cgroup";
  for (const Series& series : d.series) EXPECT_NE(series.metric.rfind("cgroup.", 0), 0u);
  ASSERT_EQ(d.pongs, 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const wire::Pong& p = d.pong_records[i];
    EXPECT_EQ(p.t1, 11 * static_cast<std::int64_t>(i + 1));
    EXPECT_GE(p.t2, before);
    EXPECT_LE(p.t2, p.t3);
    EXPECT_LE(p.t3, after);
  }
}

TEST(ProbeBinaryTest, ReadsARecordedCgroupV1Container) {
  const std::string root = kFixtures + "/v1";
  int status = -1;
  const Decoded d = DecodeAll(RunProbe("--stdout --count 2 --interval 1ms --proc-root " + root +
                                           "/proc --cgroup-root " + root + "/cgroup",
                                       &status));
  ASSERT_TRUE(d.error.empty()) << d.error;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(d.cgroup, "v1");
  ASSERT_EQ(d.ticks.size(), 2u);
  EXPECT_TRUE(d.ended);
  // Declared once: the second tick adds no series.
  EXPECT_EQ(d.declares, static_cast<int>(d.series.size()));
  const auto& v = d.ticks[1].values;
  const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(v.at("cgroup.cpu.usage"), 62863526e-9);
  EXPECT_DOUBLE_EQ(v.at("cgroup.cpu.user"), 4 * tick);
  EXPECT_DOUBLE_EQ(v.at("cgroup.cpu.system"), 1 * tick);
  EXPECT_EQ(v.at("cgroup.cpu.throttled_periods"), 0);
  EXPECT_EQ(v.at("cgroup.memory.usage"), 1064960);
  EXPECT_EQ(v.at("cgroup.memory.limit"), 268435456);
  EXPECT_EQ(v.at("cgroup.memory.anon"), 163840);
  EXPECT_EQ(v.at("cgroup.memory.file"), 77824);
  EXPECT_EQ(v.at("cgroup.memory.pgfault"), 1908);
  EXPECT_EQ(v.at("cgroup.pids.current"), 3);
  EXPECT_EQ(v.at("cgroup.io.read_bytes"), 4096);  // the "Total" lines are not added in
  EXPECT_EQ(v.at("cgroup.io.write_bytes"), 0);
  EXPECT_DOUBLE_EQ(v.at("cpu.user,cpu=all"), 1419457 * tick);
  EXPECT_DOUBLE_EQ(v.at("cpu.steal,cpu=all"), 2141 * tick);
  EXPECT_GT(v.at("mem.total"), 0);
  EXPECT_EQ(v.at("procs"), 2);
  EXPECT_DOUBLE_EQ(v.at("proc.cpu.user,comm=sh,pid=1"), 4 * tick);
  EXPECT_DOUBLE_EQ(v.at("proc.cpu.system,comm=sh,pid=1"), 1 * tick);
  EXPECT_EQ(v.at("proc.rss,comm=sh,pid=1"), 396.0 * static_cast<double>(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(v.at("proc.threads,comm=sh,pid=1"), 1);
  EXPECT_TRUE(v.count("proc.threads,comm=sleep,pid=7"));
  // Stamped with the host's clocks, on absolute deadlines 1 ms apart.
  EXPECT_GT(d.ticks[1].mono_ns, d.ticks[0].mono_ns);
  EXPECT_GT(d.ticks[1].probe_cpu_ns, 0);
  for (const Series& s : d.series) {
    if (s.metric == "cgroup.cpu.usage") EXPECT_TRUE(s.counter);
    if (s.metric == "cgroup.memory.usage") EXPECT_FALSE(s.counter);
  }
}

TEST(ProbeBinaryTest, ReadsACgroupV2GroupSeenThroughItsNamespace) {
  const std::string root = kFixtures + "/v2";
  const Decoded d = DecodeAll(RunProbe("--stdout --count 1 --no-processes --proc-root " + root +
                                           "/proc --cgroup-root " + root + "/cgroup",
                                       nullptr));
  ASSERT_TRUE(d.error.empty()) << d.error;
  EXPECT_EQ(d.cgroup, "v2");
  ASSERT_EQ(d.ticks.size(), 1u);
  const auto& v = d.ticks[0].values;
  EXPECT_DOUBLE_EQ(v.at("cgroup.cpu.usage"), 2.5);
  EXPECT_DOUBLE_EQ(v.at("cgroup.cpu.user"), 2.0);
  EXPECT_DOUBLE_EQ(v.at("cgroup.cpu.throttled_time"), 0.035);
  EXPECT_EQ(v.at("cgroup.cpu.throttled_periods"), 7);
  EXPECT_EQ(v.at("cgroup.memory.usage"), 52428800);
  EXPECT_EQ(v.count("cgroup.memory.limit"), 0u);  // "max": no limit, no sample
  EXPECT_EQ(v.at("cgroup.memory.anon"), 41943040);
  EXPECT_EQ(v.at("cgroup.memory.pgmajfault"), 3);
  EXPECT_EQ(v.at("cgroup.pids.current"), 4);
  EXPECT_EQ(v.at("cgroup.io.read_bytes"), 1048576 + 2048);
  EXPECT_EQ(v.at("cgroup.io.write_bytes"), 4096 + 8192);
  EXPECT_EQ(v.count("procs"), 0u);
}

TEST(ProbeBinaryTest, BadUsageAndMissingCommandsHaveTheirExitCodes) {
  int status = -1;
  RunProbe("--interval 10parsecs --stdout", &status);
  EXPECT_EQ(WEXITSTATUS(status), 125);
  RunProbe("--stdout --socket /tmp/x", &status);
  EXPECT_EQ(WEXITSTATUS(status), 125);
  RunProbe("--stdout --proc-root /nonexistent", &status);
  EXPECT_EQ(WEXITSTATUS(status), 125);
  const Decoded d = DecodeAll(RunProbe("--stdout -- /nonexistent/program", &status));
  EXPECT_EQ(WEXITSTATUS(status), 127);
  EXPECT_TRUE(d.ended);
}

// ---- the source, with a real probe wrapping a local command ------------------------------------

class ProbeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/bfprobe-unit-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    socket_ = dir_ + "/probe.sock";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::shared_ptr<ProbeSource> Source(std::chrono::nanoseconds connect_timeout = 0ns) {
    ProbeSourceOptions o;
    o.name = "local";
    o.socket_path = socket_;
    o.connect_timeout = connect_timeout;
    auto s = ProbeSource::Make(o);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? *s : nullptr;
  }

  pid_t Spawn(std::vector<std::string> args) {
    args.insert(args.begin(), kProbe);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    EXPECT_EQ(::posix_spawn(&pid, kProbe.c_str(), nullptr, nullptr, argv.data(), environ), 0);
    return pid;
  }

  // Collects until the source ends (or 30 s pass); the final status is returned.
  Status CollectToTheEnd(MetricSource& source, SampleBatch& batch) {
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < give_up) {
      Status s = source.Collect(Now(), batch);
      if (!s.ok()) return s;
      std::this_thread::sleep_for(5ms);
    }
    return DeadlineExceededError("the source did not end");
  }

  // A raw client speaking `bytes` to the source.
  void Send(const std::string& bytes) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_.data(), socket_.size());
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }

  std::string dir_, socket_;
};

TEST_F(ProbeSourceTest, SamplesOfAWrappedCommandArriveWithTheirOwnTimestampsThenItEnds) {
  auto source = Source();
  ASSERT_NE(source, nullptr);
  const Timestamp before = Now();
  const pid_t probe = Spawn({"--socket", socket_, "--interval", "2ms", "--", "sh", "-c",
                             "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3"});
  SampleBatch batch;
  const Status end = CollectToTheEnd(*source, batch);
  int status = 0;
  ASSERT_EQ(::waitpid(probe, &status, 0), probe);
  const Timestamp after = Now();

  EXPECT_EQ(end.code(), StatusCode::kNotFound) << end.ToString();
  EXPECT_NE(end.message().find("the probed command exited with code 3"), std::string::npos)
      << end.message();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
  ASSERT_GT(batch.size(), 0u);
  EXPECT_GT(source->ticks_received(), 2);
  EXPECT_GT(source->BackgroundCpuNs(), 0);

  // One timeline: every stamp lies between what this process read before and after, and each
  // tick's wall - monotonic offset is this process's.
  const std::int64_t offset = after.wall_ns - after.mono_ns;
  std::int64_t sh_cpu_max = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    ASSERT_GE(batch.timestamp_ns[i], before.wall_ns);
    ASSERT_LE(batch.timestamp_ns[i], after.wall_ns);
    ASSERT_GE(batch.monotonic_ns[i], before.mono_ns);
    ASSERT_LE(batch.monotonic_ns[i], after.mono_ns);
    ASSERT_LT(std::llabs(batch.timestamp_ns[i] - batch.monotonic_ns[i] - offset), 5'000'000);
    const Series& s = batch.series[batch.series_index[i]];
    EXPECT_EQ(s.labels.at("view"), "inside");
    EXPECT_EQ(s.labels.at("container"), "local");
    if (s.metric == "proc.cpu.user" && s.labels.at("comm") == "sh") {
      sh_cpu_max =
          std::max<std::int64_t>(sh_cpu_max, static_cast<std::int64_t>(batch.value[i] * 1e9));
    }
  }
  EXPECT_GT(sh_cpu_max, 0) << "the wrapped shell's CPU time was not sampled";
  // After the end, the source stays ended.
  EXPECT_EQ(source->Collect(Now(), batch).code(), StatusCode::kNotFound);
}

TEST_F(ProbeSourceTest, SignalsReachTheCommandAndItsDeathIsReported) {
  auto source = Source();
  ASSERT_NE(source, nullptr);
  const pid_t probe = Spawn({"--socket", socket_, "--interval", "5ms", "--", "sleep", "30"});
  SampleBatch batch;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (source->ticks_received() < 3 && std::chrono::steady_clock::now() < give_up) {
    ASSERT_TRUE(source->Collect(Now(), batch).ok());
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(::kill(probe, SIGTERM), 0);
  const Status end = CollectToTheEnd(*source, batch);
  int status = 0;
  ASSERT_EQ(::waitpid(probe, &status, 0), probe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << status;
  EXPECT_NE(end.message().find("killed by signal 15"), std::string::npos) << end.ToString();
}

TEST_F(ProbeSourceTest, GarbageIsOneErrorNamingItThenTheEnd) {
  auto source = Source();
  ASSERT_NE(source, nullptr);
  Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  SampleBatch batch;
  const Status first = CollectToTheEnd(*source, batch);
  EXPECT_EQ(first.code(), StatusCode::kIOError) << first.ToString();
  EXPECT_NE(first.message().find("corrupt stream: record size 542393671"), std::string::npos)
      << first.ToString();
  const Status then = source->Collect(Now(), batch);
  EXPECT_EQ(then.code(), StatusCode::kNotFound) << then.ToString();
  EXPECT_TRUE(batch.empty());
}

TEST_F(ProbeSourceTest, AProbeOfAnotherVersionIsNamed) {
  auto source = Source();
  ASSERT_NE(source, nullptr);
  Buffer b;
  wire::Hello hello;
  hello.version = 7;
  ASSERT_TRUE(wire::EncodeHello(b.w, hello));
  Send(std::string(reinterpret_cast<char*>(b.data), b.w.size()));
  SampleBatch batch;
  const Status first = CollectToTheEnd(*source, batch);
  EXPECT_EQ(first.code(), StatusCode::kIOError);
  EXPECT_NE(first.message().find("wire version 7, this bitfusion reads version 1"),
            std::string::npos)
      << first.ToString();
}

TEST_F(ProbeSourceTest, ATickBeforeItsSeriesOrAConnectionCutShortEndsIt) {
  {
    auto source = Source();
    Buffer b;
    ASSERT_TRUE(wire::EncodeHello(b.w, {}));
    const std::size_t at = wire::BeginTick(b.w, {1, 1, 0, 0});
    wire::TickValue(b.w, 0, 1.0);
    ASSERT_TRUE(wire::FinishTick(b.w, at));
    Send(std::string(reinterpret_cast<char*>(b.data), b.w.size()));
    SampleBatch batch;
    const Status s = CollectToTheEnd(*source, batch);
    EXPECT_NE(s.message().find("TICK refers to series 0 but only 0 were declared"),
              std::string::npos)
        << s.ToString();
  }
  {
    auto source = Source();
    Buffer b;
    ASSERT_TRUE(wire::EncodeHello(b.w, {}));
    Send(std::string(reinterpret_cast<char*>(b.data), b.w.size() - 3));
    SampleBatch batch;
    const Status s = CollectToTheEnd(*source, batch);
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_NE(s.message().find("closed inside a record"), std::string::npos) << s.ToString();
  }
}

TEST_F(ProbeSourceTest, NoProbeWithinTheConnectTimeoutEndsItSayingSo) {
  auto source = Source(50ms);
  SampleBatch batch;
  const Status s = CollectToTheEnd(*source, batch);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no bitfusion-probe connected to " + socket_), std::string::npos)
      << s.ToString();
}

TEST_F(ProbeSourceTest, AFileInTheSocketsPlaceIsRefusedAndKept) {
  { std::ofstream(socket_) << "precious"; }
  ProbeSourceOptions o;
  o.name = "x";
  o.socket_path = socket_;
  auto s = ProbeSource::Make(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.error().message().find("is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(socket_)) << "the file was removed";
}

TEST_F(ProbeSourceTest, AConnectionFromAnotherUserIsRefusedAndTheProbesIsTaken) {
  BITFUSION_REQUIRE_SERVICE(::geteuid() == 0, "needs root to connect as another user");
  ProbeSourceOptions o;
  o.name = "local";
  o.socket_path = socket_;
  o.peer_uid = 4242;  // the container's user
  auto made = ProbeSource::Make(o);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  auto source = *made;
  ::chmod(dir_.c_str(), 0755);
  // nobody (65534) connects first and sends a valid stream; it must not be taken.
  Buffer forged;
  ASSERT_TRUE(wire::EncodeHello(forged.w, {}));
  const std::string forged_bytes(reinterpret_cast<char*>(forged.data), forged.w.size());
  for (uid_t uid : {uid_t{65534}, uid_t{4242}}) {
    const pid_t child = ::fork();
    if (child == 0) {
      if (::setgid(65534) != 0 || ::setuid(uid) != 0) ::_exit(2);
      const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, socket_.data(), socket_.size());
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) ::_exit(3);
      // The forger keeps its connection open; the container's user sends garbage to be named.
      const std::string bytes = uid == 65534 ? forged_bytes : std::string("XXXXXXXXXXXX");
      if (::write(fd, bytes.data(), bytes.size()) < 0) ::_exit(4);
      if (uid == 65534) ::pause();
      ::_exit(0);
    }
    ASSERT_GT(child, 0);
    if (uid == 65534) {
      for (int i = 0; i < 500 && source->peers_refused() == 0; ++i) {
        std::this_thread::sleep_for(10ms);
      }
      EXPECT_EQ(source->peers_refused(), 1);
      ::kill(child, SIGKILL);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
  }
  SampleBatch batch;
  const Status s = CollectToTheEnd(*source, batch);
  EXPECT_EQ(s.code(), StatusCode::kIOError)
      << "the container user's connection was read: " << s.ToString();
}

TEST_F(ProbeSourceTest, ASocketSomethingListensOnIsNotTaken) {
  auto first = Source();
  ASSERT_NE(first, nullptr);
  ProbeSourceOptions o;
  o.name = "second";
  o.socket_path = socket_;
  auto second = ProbeSource::Make(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(second.error().message().find("something is listening on"), std::string::npos);
}

TEST_F(ProbeSourceTest, ALabelAProbeDoesNotSendEndsTheStream) {
  auto source = Source();
  Buffer b;
  ASSERT_TRUE(wire::EncodeHello(b.w, {}));
  wire::Declare d;
  d.index = 0;
  d.metric = "cpu.user";
  d.unit = "s";
  d.labels[0] = {"run_id", "forged"};
  d.label_count = 1;
  ASSERT_TRUE(wire::EncodeDeclare(b.w, d));
  Send(std::string(reinterpret_cast<char*>(b.data), b.w.size()));
  SampleBatch batch;
  const Status s = CollectToTheEnd(*source, batch);
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find("label \"run_id\" is not one a probe sends"), std::string::npos)
      << s.ToString();
}

// The threads of this process, from /proc/self/task.
int ThreadCount() {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)entry;
    ++n;
  }
  return n;
}

TEST_F(ProbeSourceTest, ManySourcesAddNoThreadAndEachIsRead) {
  // The sources wait and read on the library's event loop, whose fixed threads start here.
  internal::EventLoop();
  constexpr int kSources = 50;
  const int before = ThreadCount();
  std::vector<std::shared_ptr<ProbeSource>> sources;
  for (int i = 0; i < kSources; ++i) {
    ProbeSourceOptions o;
    o.name = "s" + std::to_string(i);
    o.socket_path = dir_ + "/p" + std::to_string(i) + ".sock";
    auto s = ProbeSource::Make(o);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    sources.push_back(*s);
  }
  const int waiting = ThreadCount();
  // Each one takes a connection and reads it: garbage, named once, then the end.
  std::vector<int> clients;
  for (int i = 0; i < kSources; ++i) {
    const std::string path = dir_ + "/p" + std::to_string(i) + ".sock";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << path;
    clients.push_back(fd);
  }
  const int connected = ThreadCount();
  const std::string garbage = "GET / HTTP/1.1\r\n\r\n";
  for (const int fd : clients) {
    EXPECT_EQ(::write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
    ::close(fd);
  }
  for (auto& source : sources) {
    SampleBatch batch;
    const Status s = CollectToTheEnd(*source, batch);
    EXPECT_EQ(s.code(), StatusCode::kIOError) << source->uri() << ": " << s.ToString();
    EXPECT_EQ(source->Collect(Now(), batch).code(), StatusCode::kNotFound) << source->uri();
  }
  sources.clear();
  std::printf("threads: %d before, %d with %d sources waiting, %d with their connections\n", before,
              waiting, kSources, connected);
  EXPECT_LE(waiting, before) << kSources << " sources waiting for their probes added threads";
  EXPECT_LE(connected, before) << kSources << " sources with a connection added threads";
}

TEST(ProbeSourceUriTest, TheSocketIsRequiredAndKeysAreChecked) {
  auto no_socket = MetricSourceFromUri("probe:web");
  ASSERT_FALSE(no_socket.ok());
  EXPECT_EQ(no_socket.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_socket.error().message().find("socket"), std::string::npos);
  EXPECT_FALSE(MetricSourceFromUri("probe:web?socket=/tmp/x.sock&colour=red").ok());
  EXPECT_FALSE(MetricSourceFromUri("probe:web?socket=/tmp/" + std::string(120, 'x')).ok());
  const std::string path = "/tmp/bfprobe-uri-" + std::to_string(::getpid()) + ".sock";
  auto ok = MetricSourceFromUri("probe:web?socket=" + path + "&connect_timeout=1s");
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_TRUE(std::filesystem::is_socket(path));
  ok = MetricSourceFromUri("null");
  EXPECT_FALSE(std::filesystem::exists(path)) << "the socket outlives its source";
}

TEST(ProbeContainerTest, MountsTheProbeAndWrapsTheCommand) {
  ContainerSpec spec;
  spec.name = "bench";
  spec.command = {"sh", "-c", "work"};
  ContainerProbeOptions o;
  o.probe_path = kProbe;
  o.interval = 20ms;
  auto probe = ProbeContainer(o, spec);
  ASSERT_TRUE(probe.ok()) << probe.error().ToString();
  EXPECT_EQ(probe->source->uri(), "probe:bench?socket=" + probe->socket_path);
  EXPECT_TRUE(std::filesystem::is_socket(probe->socket_path));
  ASSERT_EQ(spec.mounts.size(), 2u);
  EXPECT_EQ(spec.mounts[0].source, kProbe);
  EXPECT_EQ(spec.mounts[0].target, "/.bitfusion/bitfusion-probe");
  EXPECT_TRUE(spec.mounts[0].read_only);
  EXPECT_EQ(spec.mounts[1].target, "/.bitfusion/run");
  const std::vector<std::string> want = {"/.bitfusion/bitfusion-probe",
                                         "--socket",
                                         "/.bitfusion/run/probe.sock",
                                         "--interval",
                                         "20000000ns",
                                         "--"};
  EXPECT_EQ(spec.entrypoint, want);
  EXPECT_EQ(spec.command, (std::vector<std::string>{"sh", "-c", "work"}));
  EXPECT_EQ(probe->exec_command,
            std::vector<std::string>(want.begin(), want.end() - 1));  // sample-only: no "--"

  EXPECT_TRUE(spec.mounts[1].read_only);
  const std::string dir = std::filesystem::path(probe->socket_path).parent_path();
  struct stat st;
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "only root and this user reach the socket";
  probe->source.reset();
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the directory it made outlives the source";

  ContainerSpec empty;
  auto refused = ProbeContainer(o, empty);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kInvalidArgument);
  o.interval = 100us;
  EXPECT_FALSE(ProbeContainer(o, spec).ok());
}

}  // namespace
}  // namespace bitfusion
