// How docker:// judges and encodes a request without an engine: image references, every field
// of a ContainerSpec it refuses (with the field named), and the JSON it would send for a valid
// one. The engine's side is exercised in tests/integration/docker_integration_test.cc.
#include "runners/docker_spec.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/percent_encode.h"
#include "runners/docker_api.h"
#include "runners/docker_events.h"

namespace bitfusion::internal {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

// A spec using every field docker:// encodes; valid for a remote engine on API 1.44.
ContainerSpec FullSpec() {
  ContainerSpec spec;
  spec.name = "bench-1";
  spec.image = "registry.example:5000/team/bench:1.2";
  spec.entrypoint = {"/bin/sh", "-c"};
  spec.command = {"run", "--fast"};
  spec.env = {{"A", "1"}, {"B", "x=y"}};
  spec.working_dir = "/work";
  spec.user = "1000:1000";
  spec.mounts = {{"bind", "/data/in", "/in", true, 0}, {"tmpfs", "", "/scratch", false, 1 << 20}};
  spec.devices = {{"/dev/nvidia0", "", "rw"}, {"/dev/nvidia1", "/dev/gpu1", "rwm"}};
  spec.device_requests = {{"nvidia", -1, {}, {{"gpu", "compute"}}, {{"k", "v"}}}};
  spec.cdi_devices = {"nvidia.com/gpu=0"};
  spec.device_cgroup_rules = {"c 195:* rwm"};
  spec.cpuset = "0-3,6";
  spec.cpus = 1.5;
  spec.memory_bytes = 512 << 20;
  spec.shm_bytes = 64 << 20;
  spec.network_mode = "none";
  spec.labels = {{"experiment", "e1"}};
  spec.timeout_ns = 5'000'000'000;
  spec.health_check.command = {"true"};
  spec.health_check.interval_ns = 2'000'000'000;
  spec.health_check.timeout_ns = 1'000'000'000;
  spec.health_check.start_period_ns = 3'000'000'000;
  spec.health_check.retries = 4;
  return spec;
}

const json::value& At(const json::value& v, std::initializer_list<std::string_view> keys) {
  const json::value* p = &v;
  for (auto k : keys) p = &p->as_object().at(k);
  return *p;
}

TEST(DockerSpecTest, AValidSpecBecomesTheCreateBody) {
  const ContainerSpec spec = FullSpec();
  ASSERT_TRUE(ValidateSpec(spec, /*local_engine=*/false, /*api_minor=*/44).ok());
  const json::value body = CreateBody(spec, {{"experiment", "e1"}, {"bitfusion.creator", "bf"}},
                                      /*init=*/true);
  EXPECT_EQ(At(body, {"Image"}), "registry.example:5000/team/bench:1.2");
  EXPECT_EQ(At(body, {"Cmd"}), json::parse(R"(["run","--fast"])"));
  EXPECT_EQ(At(body, {"Entrypoint"}), json::parse(R"(["/bin/sh","-c"])"));
  EXPECT_EQ(At(body, {"Env"}), json::parse(R"(["A=1","B=x=y"])"));
  EXPECT_EQ(At(body, {"WorkingDir"}), "/work");
  EXPECT_EQ(At(body, {"User"}), "1000:1000");
  EXPECT_EQ(At(body, {"Labels"}), json::parse(R"({"bitfusion.creator":"bf","experiment":"e1"})"));
  EXPECT_EQ(At(body, {"Tty"}), false);
  EXPECT_EQ(At(body, {"Healthcheck"}),
            json::parse(R"({"Test":["CMD","true"],"Interval":2000000000,"Timeout":1000000000,
                            "StartPeriod":3000000000,"Retries":4})"));
  const json::value& host = At(body, {"HostConfig"});
  EXPECT_EQ(At(host, {"Init"}), true);
  EXPECT_EQ(At(host, {"Mounts"}),
            json::parse(R"([{"Type":"bind","Target":"/in","ReadOnly":true,"Source":"/data/in"},
                            {"Type":"tmpfs","Target":"/scratch","ReadOnly":false,
                             "TmpfsOptions":{"SizeBytes":1048576}}])"));
  // A device without a path in the container keeps its host path there.
  EXPECT_EQ(At(host, {"Devices"}),
            json::parse(R"([{"PathOnHost":"/dev/nvidia0","PathInContainer":"/dev/nvidia0",
                             "CgroupPermissions":"rw"},
                            {"PathOnHost":"/dev/nvidia1","PathInContainer":"/dev/gpu1",
                             "CgroupPermissions":"rwm"}])"));
  // CDI names travel as one more DeviceRequest with the "cdi" driver.
  EXPECT_EQ(At(host, {"DeviceRequests"}),
            json::parse(R"([{"Driver":"nvidia","Count":-1,"DeviceIDs":[],
                             "Capabilities":[["gpu","compute"]],"Options":{"k":"v"}},
                            {"Driver":"cdi","DeviceIDs":["nvidia.com/gpu=0"]}])"));
  EXPECT_EQ(At(host, {"DeviceCgroupRules"}), json::parse(R"(["c 195:* rwm"])"));
  EXPECT_EQ(At(host, {"CpusetCpus"}), "0-3,6");
  EXPECT_EQ(At(host, {"NanoCpus"}), 1'500'000'000);
  EXPECT_EQ(At(host, {"Memory"}), 512 << 20);
  EXPECT_EQ(At(host, {"ShmSize"}), 64 << 20);
  EXPECT_EQ(At(host, {"NetworkMode"}), "none");
}

TEST(DockerSpecTest, AMinimalSpecSendsOnlyWhatItSays) {
  ContainerSpec spec;
  spec.image = "busybox:1.36";
  ASSERT_TRUE(ValidateSpec(spec, /*local_engine=*/true, /*api_minor=*/-1).ok());
  const json::object body = CreateBody(spec, {}, /*init=*/false);
  for (const char* absent : {"Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Healthcheck"}) {
    EXPECT_FALSE(body.contains(absent)) << absent;
  }
  const json::object& host = body.at("HostConfig").as_object();
  EXPECT_EQ(host.at("Init"), false);
  EXPECT_EQ(host.size(), 1u) << json::serialize(host);
}

struct Refusal {
  const char* what;
  std::function<void(ContainerSpec&)> edit;
  StatusCode code;
  const char* named;  // the message names the field or the bad value
};

TEST(DockerSpecTest, EachInvalidFieldIsRefusedByName) {
  const std::vector<Refusal> refusals = {
      {"no image", [](auto& s) { s.image.clear(); }, StatusCode::kInvalidArgument, "no image"},
      {"upper-case image", [](auto& s) { s.image = "Busybox"; }, StatusCode::kInvalidArgument,
       "\"Busybox\" is not a valid image reference"},
      {"name", [](auto& s) { s.name = "-x"; }, StatusCode::kInvalidArgument,
       "container name \"-x\""},
      {"env name with =", [](auto& s) { s.env["A=B"] = "1"; }, StatusCode::kInvalidArgument,
       "environment variable name \"A=B\""},
      {"empty env name", [](auto& s) { s.env[""] = "1"; }, StatusCode::kInvalidArgument,
       "environment variable name \"\""},
      {"relative working dir", [](auto& s) { s.working_dir = "work"; },
       StatusCode::kInvalidArgument, "working directory \"work\" must be an absolute path"},
      {"user with a space", [](auto& s) { s.user = "a b"; }, StatusCode::kInvalidArgument,
       "user \"a b\""},
      {"mount type", [](auto& s) { s.mounts[0].type = "volume"; }, StatusCode::kInvalidArgument,
       "mount type \"volume\""},
      {"mount target with ..", [](auto& s) { s.mounts[0].target = "/a/../etc"; },
       StatusCode::kInvalidArgument, "mount target \"/a/../etc\""},
      {"mount target /", [](auto& s) { s.mounts[0].target = "/"; }, StatusCode::kInvalidArgument,
       "mount target \"/\""},
      {"two mounts, one target", [](auto& s) { s.mounts[1].target = "/in"; },
       StatusCode::kInvalidArgument, "two mounts share the target /in"},
      {"relative bind source", [](auto& s) { s.mounts[0].source = "data"; },
       StatusCode::kInvalidArgument, "bind mount source \"data\""},
      {"tmpfs with a source", [](auto& s) { s.mounts[1].source = "/x"; },
       StatusCode::kInvalidArgument, "tmpfs mount /scratch takes no source"},
      {"negative tmpfs size", [](auto& s) { s.mounts[1].tmpfs_bytes = -1; },
       StatusCode::kInvalidArgument, "tmpfs size"},
      {"relative device", [](auto& s) { s.devices[0].path_on_host = "nvidia0"; },
       StatusCode::kInvalidArgument, "device path \"nvidia0\""},
      {"device target with ..", [](auto& s) { s.devices[1].path_in_container = "/dev/../x"; },
       StatusCode::kInvalidArgument, "device path in the container \"/dev/../x\""},
      {"device permissions", [](auto& s) { s.devices[0].permissions = "rwx"; },
       StatusCode::kInvalidArgument, "device permissions \"rwx\""},
      {"repeated permission", [](auto& s) { s.devices[0].permissions = "rr"; },
       StatusCode::kInvalidArgument, "device permissions \"rr\""},
      {"device request count", [](auto& s) { s.device_requests[0].count = -2; },
       StatusCode::kInvalidArgument, "device request count -2"},
      {"device request without driver or capabilities",
       [](auto& s) {
         s.device_requests[0].driver.clear();
         s.device_requests[0].capabilities.clear();
       },
       StatusCode::kInvalidArgument, "needs a driver"},
      {"CDI name", [](auto& s) { s.cdi_devices = {"gpu0"}; }, StatusCode::kInvalidArgument,
       "CDI device \"gpu0\""},
      {"cgroup rule", [](auto& s) { s.device_cgroup_rules = {"c 195 rwm"}; },
       StatusCode::kInvalidArgument, "device cgroup rule \"c 195 rwm\""},
      {"cpuset syntax", [](auto& s) { s.cpuset = "0-3,"; }, StatusCode::kInvalidArgument,
       "cpuset \"0-3,\""},
      {"descending cpuset", [](auto& s) { s.cpuset = "3-1"; }, StatusCode::kInvalidArgument,
       "cpuset \"3-1\""},
      {"negative cpus", [](auto& s) { s.cpus = -1; }, StatusCode::kInvalidArgument, "cpus"},
      {"infinite cpus", [](auto& s) { s.cpus = std::numeric_limits<double>::infinity(); },
       StatusCode::kInvalidArgument, "cpus"},
      {"negative memory", [](auto& s) { s.memory_bytes = -1; }, StatusCode::kInvalidArgument,
       "memory"},
      {"network mode", [](auto& s) { s.network_mode = "bad mode"; }, StatusCode::kInvalidArgument,
       "network mode \"bad mode\""},
      {"empty label key", [](auto& s) { s.labels[""] = "x"; }, StatusCode::kInvalidArgument,
       "label keys"},
      {"reserved label", [](auto& s) { s.labels["bitfusion.run_id"] = "x"; },
       StatusCode::kInvalidArgument, "label \"bitfusion.run_id\" uses the reserved prefix"},
      {"negative timeout", [](auto& s) { s.timeout_ns = -1; }, StatusCode::kInvalidArgument,
       "timeout"},
      {"sub-millisecond health interval", [](auto& s) { s.health_check.interval_ns = 10; },
       StatusCode::kInvalidArgument, "health check"},
      {"negative health retries", [](auto& s) { s.health_check.retries = -1; },
       StatusCode::kInvalidArgument, "health check"},
  };
  for (const auto& r : refusals) {
    ContainerSpec spec = FullSpec();
    r.edit(spec);
    const Status s = ValidateSpec(spec, /*local_engine=*/false, /*api_minor=*/44);
    ASSERT_FALSE(s.ok()) << r.what;
    EXPECT_EQ(s.code(), r.code) << r.what << ": " << s.ToString();
    EXPECT_NE(s.message().find(r.named), std::string::npos) << r.what << ": " << s.ToString();
  }
}

TEST(DockerSpecTest, CdiNamesNeedApi144OnceTheVersionIsKnown) {
  const ContainerSpec spec = FullSpec();
  EXPECT_TRUE(ValidateSpec(spec, false, /*api_minor=*/-1).ok()) << "version not known yet";
  const Status old = ValidateSpec(spec, false, /*api_minor=*/43);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(old.message().find("API 1.43"), std::string::npos) << old.ToString();
  EXPECT_NE(old.message().find("needs API 1.44"), std::string::npos) << old.ToString();
}

TEST(DockerSpecTest, ALocalEngineHasItsHostPathsCheckedHere) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("bf-docker-spec-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "plain") << "not a device";
  ContainerSpec spec;
  spec.image = "busybox";
  spec.mounts = {{"bind", (dir / "missing").string(), "/in", false, 0}};
  Status s = ValidateSpec(spec, /*local_engine=*/true, -1);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find((dir / "missing").string() + " does not exist on this host"),
            std::string::npos)
      << s.ToString();
  // A remote engine's host is not this one: nothing is looked for here.
  EXPECT_TRUE(ValidateSpec(spec, /*local_engine=*/false, -1).ok());

  spec.mounts = {{"bind", dir.string(), "/in", false, 0}};
  EXPECT_TRUE(ValidateSpec(spec, true, -1).ok());
  spec.devices = {{(dir / "nodev").string(), "", "rwm"}};
  s = ValidateSpec(spec, true, -1);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("device " + (dir / "nodev").string()), std::string::npos);
  spec.devices = {{(dir / "plain").string(), "", "rwm"}};
  s = ValidateSpec(spec, true, -1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("is not a device node"), std::string::npos) << s.ToString();
  spec.devices = {{"/dev/null", "", "rwm"}};
  EXPECT_TRUE(ValidateSpec(spec, true, -1).ok());
  fs::remove_all(dir);
}

TEST(DockerSpecTest, ImageReferences) {
  for (const char* good :
       {"busybox", "busybox:1.36", "library/busybox:latest", "registry.example:5000/a/b-c_d:v1.0",
        "localhost/x",
        "a/b@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        "sha256:0123456789ab", "0123456789abcdef"}) {
    EXPECT_TRUE(ValidateImageRef(good).ok()) << good;
  }
  for (const char* bad :
       {"Busybox", "busybox:", ":tag", "a//b", "a b", "busybox:-tag", "a/../b", "a@sha256:short"}) {
    const Status s = ValidateImageRef(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(std::string("\"") + bad + "\""), std::string::npos) << s.ToString();
  }
  EXPECT_FALSE(ValidateImageRef(std::string(256, 'a')).ok());
}

TEST(DockerSpecTest, SplitRefSeparatesRepositoryAndTagOrDigest) {
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(SplitRef("busybox"), P("busybox", "latest"));
  EXPECT_EQ(SplitRef("busybox:1.36"), P("busybox", "1.36"));
  EXPECT_EQ(SplitRef("registry:5000/a/b"), P("registry:5000/a/b", "latest"));
  EXPECT_EQ(SplitRef("registry:5000/a/b:tag"), P("registry:5000/a/b", "tag"));
  EXPECT_EQ(SplitRef("a/b@sha256:abc"), P("a/b", "sha256:abc"));
}

TEST(DockerSpecTest, LabelFilterSelectsByKeyOrKeyAndValue) {
  EXPECT_EQ(LabelFilter({}), PercentEncode("{}"));
  EXPECT_EQ(LabelFilter({{"bitfusion.creator", "bitfusion"}, {"mine", ""}}),
            PercentEncode(R"({"label":["bitfusion.creator=bitfusion","mine"]})"));
}

std::string Frame(int stream, std::string_view payload, std::size_t declared = 0) {
  const std::size_t n = declared != 0 ? declared : payload.size();
  std::string f = {static_cast<char>(stream),
                   0,
                   0,
                   0,
                   static_cast<char>((n >> 24) & 0xff),
                   static_cast<char>((n >> 16) & 0xff),
                   static_cast<char>((n >> 8) & 0xff),
                   static_cast<char>(n & 0xff)};
  return f + std::string(payload);
}

TEST(DockerStreamTest, DemuxerGivesTheSameBytesHoweverTheTransportSplitsThem) {
  const std::string wire = Frame(1, "hello\nwor") + Frame(2, "oops\n") + Frame(1, "") +
                           Frame(1, "ld\n") + Frame(2, std::string(100000, 'e'));
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{9},
                           std::size_t{4096}, wire.size()}) {
    Demuxer demux;
    std::string out, err;
    for (std::size_t i = 0; i < wire.size(); i += step) {
      demux.Feed(std::string_view(wire).substr(i, step), [&](LogStream s, std::string_view b) {
        (s == LogStream::kStdout ? out : err).append(b);
      });
    }
    EXPECT_EQ(out, "hello\nworld\n") << "step " << step;
    EXPECT_EQ(err, "oops\n" + std::string(100000, 'e')) << "step " << step;
  }
}

TEST(DockerStreamTest, AFrameDeclaringGigabytesIsPassedOnAsItArrives) {
  // Before: the demuxer held bytes until the whole declared frame (here 4 GiB - 1) was there.
  Demuxer demux;
  std::size_t delivered = 0;
  demux.Feed(Frame(1, "", 0xffffffffu),
             [&](LogStream, std::string_view b) { delivered += b.size(); });
  const std::string mib(1 << 20, 'x');
  for (int i = 0; i < 4; ++i) {
    demux.Feed(mib, [&](LogStream, std::string_view b) { delivered += b.size(); });
    EXPECT_EQ(delivered, (i + 1) * mib.size());
  }
}

TEST(DockerStreamTest, JsonLinesSkipsALineTooLongToHoldAndGoesOn) {
  JsonLines lines;
  std::vector<std::string> seen;
  auto on_value = [&](const json::value& v) { seen.push_back(json::serialize(v)); };
  lines.Feed("{\"a\":1}\n{\"b\"", on_value);
  lines.Feed(":2}\n", on_value);
  const std::string big(1 << 20, ' ');
  lines.Feed("[", on_value);
  for (std::size_t i = 0; i <= JsonLines::kMaxLine / big.size(); ++i) lines.Feed(big, on_value);
  lines.Feed("]\n{\"c\":3}\n{\"d\":4}", on_value);
  lines.Finish(on_value);
  EXPECT_EQ(lines.skipped(), 1u);
  EXPECT_EQ(seen,
            (std::vector<std::string>{R"({"a":1})", R"({"b":2})", R"({"c":3})", R"({"d":4})"}));
}

// The messages a Docker 24 engine sends while pulling a two-layer image (one already there)
// and pushing one, as its NDJSON progress stream carries them.
TEST(DockerProgressTest, LayerProgressSumsTheLayersAsTheEngineReportsThem) {
  LayerProgress pull;
  auto feed = [](LayerProgress& p, std::string_view line) { return p.Feed(json::parse(line)); };
  EXPECT_FALSE(feed(pull, R"({"status":"Pulling from bftest/busybox","id":"1"})"))
      << "the image's own line is not a layer's";
  EXPECT_TRUE(feed(pull, R"({"status":"Already exists","progressDetail":{},"id":"aa"})"));
  EXPECT_TRUE(feed(pull, R"({"status":"Pulling fs layer","progressDetail":{},"id":"bb"})"));
  EXPECT_TRUE(feed(pull,
                   R"({"status":"Downloading","progressDetail":{"current":1000,"total":4000},)"
                   R"("progress":"[==>  ]","id":"bb"})"));
  auto now = pull.Now();
  EXPECT_EQ(now.layers, 2);
  EXPECT_EQ(now.layers_done, 1);
  EXPECT_EQ(now.done_bytes, 1000);
  EXPECT_EQ(now.total_bytes, 4000);
  EXPECT_FALSE(feed(
      pull, R"({"status":"Downloading","progressDetail":{"current":1000,"total":4000},"id":"bb"})"))
      << "nothing moved";
  EXPECT_FALSE(feed(pull, R"({"status":"Verifying Checksum","progressDetail":{},"id":"bb"})"));
  EXPECT_TRUE(feed(pull, R"({"status":"Download complete","progressDetail":{},"id":"bb"})"));
  // Extraction has a progressDetail of its own, of the unpacked bytes: not what moved.
  EXPECT_FALSE(feed(
      pull, R"({"status":"Extracting","progressDetail":{"current":9000,"total":9000},"id":"bb"})"));
  EXPECT_FALSE(feed(pull, R"({"status":"Pull complete","progressDetail":{},"id":"bb"})"));
  EXPECT_FALSE(feed(pull, R"({"status":"Digest: sha256:0123"})"));
  now = pull.Now();
  EXPECT_EQ(now.layers, 2);
  EXPECT_EQ(now.layers_done, 2);
  EXPECT_EQ(now.done_bytes, 4000);
  EXPECT_EQ(now.total_bytes, 4000);

  LayerProgress push;
  EXPECT_FALSE(
      feed(push, R"({"status":"The push refers to repository [127.0.0.1:5000/bftest/busybox]"})"));
  EXPECT_TRUE(feed(push, R"({"status":"Preparing","progressDetail":{},"id":"cc"})"));
  EXPECT_TRUE(feed(push, R"({"status":"Preparing","progressDetail":{},"id":"dd"})"));
  EXPECT_TRUE(
      feed(push, R"({"status":"Mounted from bftest/other","progressDetail":{},"id":"dd"})"));
  EXPECT_TRUE(feed(
      push, R"({"status":"Pushing","progressDetail":{"current":512,"total":2048},"id":"cc"})"));
  // A count that goes back (a retried upload) does not take the sum back.
  EXPECT_FALSE(feed(
      push, R"({"status":"Pushing","progressDetail":{"current":100,"total":2048},"id":"cc"})"));
  EXPECT_EQ(push.Now().done_bytes, 512);
  EXPECT_TRUE(feed(push, R"({"status":"Pushed","progressDetail":{},"id":"cc"})"));
  now = push.Now();
  EXPECT_EQ(now.layers, 2);
  EXPECT_EQ(now.layers_done, 2);
  EXPECT_EQ(now.done_bytes, 2048);
  EXPECT_EQ(now.total_bytes, 2048);
}

TEST(DockerJsonTest, NumbersOutOfRangeReadAsMissingNotAsUndefinedCasts) {
  // Before: a double past int64 (or NaN from an engine's float) went through a bare cast.
  EXPECT_EQ(JsonInt(nullptr), 0);
  const json::value big = json::parse("[1e300, -1e300, 18446744073709551615, 42, 42.9, -7]");
  const auto& a = big.as_array();
  EXPECT_EQ(JsonInt(&a[0]), 0);
  EXPECT_EQ(JsonInt(&a[1]), 0);
  EXPECT_EQ(JsonInt(&a[2]), 0) << "a uint64 past int64";
  EXPECT_EQ(JsonInt(&a[3]), 42);
  EXPECT_EQ(JsonInt(&a[4]), 42);
  EXPECT_EQ(JsonInt(&a[5]), -7);
  const json::value nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(JsonInt(&nan), 0);
}

TEST(DockerJsonTest, EventsReadTheirFieldsAndTimesThatDoNotFitReadAsUnknown) {
  Event e = DockerEventFromJson(json::parse(R"({"Type":"container","Action":"die",
      "Actor":{"ID":"abc","Attributes":{"exitCode":"3"}},"time":1700000000,
      "timeNano":1700000000123456789})"),
                                "docker://x");
  EXPECT_EQ(e.type, EventType::kContainerDied);
  EXPECT_EQ(e.subject, "abc");
  EXPECT_EQ(e.attributes.at("exitCode"), "3");
  EXPECT_EQ(e.time_ns, 1700000000123456789);
  EXPECT_EQ(e.source, "docker://x");
  // Old engines: `status`, `id` and seconds only.
  e = DockerEventFromJson(json::parse(R"({"Type":"container","status":"destroy","id":"d",
      "time":1700000001})"),
                          "s");
  EXPECT_EQ(e.type, EventType::kContainerDestroyed);
  EXPECT_EQ(e.subject, "d");
  EXPECT_EQ(e.time_ns, 1700000001000000000);
  // Seconds past 2262 overflowed the nanoseconds (undefined behaviour) before.
  e = DockerEventFromJson(json::parse(R"({"Type":"container","Action":"start","time":9300000000})"),
                          "s");
  EXPECT_EQ(e.time_ns, 0);
  EXPECT_EQ(e.type, EventType::kContainerStarted);
  // Not a container event, or not even an object.
  EXPECT_EQ(DockerEventFromJson(json::parse(R"({"Type":"network","Action":"create"})"), "s").type,
            EventType::kOther);
  EXPECT_EQ(DockerEventFromJson(json::parse("[1,2]"), "s").subject, "");
}

}  // namespace
}  // namespace bitfusion::internal
