// The data model's JSON (core/json_codec, through ToJson/FromJson): shape, round trips, valid
// JSON for NaN and infinity, and errors that name the field.
#include "core/json_codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cmath>
#include <limits>

#include "bitfusion/serialize.h"
#include "sinks/record_json.h"

namespace bitfusion {
namespace {

namespace json = boost::json;
using namespace std::string_literals;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Parses as JSON (what a bare NaN would not), or fails the test.
json::value Parsed(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << ec.message() << " in " << text;
  return v;
}

template <class T>
T RoundTrip(const T& in) {
  const std::string text = ToJson(in);
  Parsed(text);
  T out;
  const Status status = FromJson(text, out);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  // The same record again: every field came back (doubles bit for bit, as the text is exact).
  EXPECT_EQ(ToJson(out), text);
  EXPECT_EQ(ToJson(out, /*pretty=*/true), ToJson(in, /*pretty=*/true));
  return out;
}

Sample MakeSample(double value) {
  return {"stream.triad", value, "GB/s", {{"threads", "2"}, {"a.b", "c"}}, 1700000000123456789, 5};
}

MachineInfo MakeMachine() {
  MachineInfo m;
  m.id = "i-0abc";
  m.provider = "aws";
  m.hostname = "h";
  m.type = "g5.xlarge";
  m.cpu.model_name = "Some CPU";
  m.cpu.max_mhz = 3400.5;
  m.cpu.caches.push_back({3, "Unified", 32u << 20, 64, 1});
  m.cpu.flags = {"avx2", "sve"};
  m.memory_bytes = std::numeric_limits<std::uint64_t>::max();
  m.accelerators.push_back(
      {"gpu", "NVIDIA", "0x10de", "0x2330", "0x030200", "0000:17:00.0", "nvidia", "H100", 0, 1});
  m.labels = {{"rack", "a1"}};
  m.zone = "us-east-1a";
  m.spot = true;
  m.ssh = {"10.0.0.1", 2222, "ubuntu", "key"};
  m.created_ns = 1;
  m.ready_ns = 4;
  return m;
}

RunRecord MakeRecord() {
  RunRecord r;
  r.run_id = "0123abcd";
  r.plan = "quickstart";
  r.benchmark = "bf-stream";
  r.repetition = 3;
  r.warmup = true;
  r.command = {"bf-stream", "--size", "64M"};
  r.machine = MakeMachine();
  r.exit.exit_code = 0;
  r.exit.usage.max_rss_bytes = std::int64_t{1} << 40;
  r.results.push_back(MakeSample(0.1 + 0.2));
  r.results.push_back(MakeSample(-kInf));
  r.overhead.samples = 100;
  r.labels = {{"owner", "perf-team"}};
  return r;
}

TEST(JsonCodecTest, SampleRoundTripsAndKeepsItsShape) {
  const Sample in = MakeSample(12.5);
  EXPECT_EQ(ToJson(in),
            "{\n\"metric\": \"stream.triad\",\n\"value\": 12.5,\n\"unit\": \"GB/s\",\n"
            "\"metadata\": {\n\"a.b\": \"c\",\n\"threads\": \"2\"\n},\n"
            "\"timestamp_ns\": 1700000000123456789,\n\"monotonic_ns\": 5\n}");
  EXPECT_EQ(ToJson(in, /*pretty=*/true),
            "{\n    \"metric\": \"stream.triad\",\n    \"value\": 12.5,\n    \"unit\": \"GB/s\",\n"
            "    \"metadata\": {\n        \"a.b\": \"c\",\n        \"threads\": \"2\"\n    },\n"
            "    \"timestamp_ns\": 1700000000123456789,\n    \"monotonic_ns\": 5\n}");
  const Sample out = RoundTrip(in);
  EXPECT_EQ(out.metric, in.metric);
  EXPECT_EQ(out.value, 12.5);
  EXPECT_EQ(out.metadata, in.metadata);
  EXPECT_EQ(out.timestamp_ns, in.timestamp_ns);
}

TEST(JsonCodecTest, DoublesAreWrittenAsBeforeAndReadBackExactly) {
  const std::pair<double, const char*> cases[] = {
      {3.0, "3.0"},         {0.0, "0.0"},
      {-0.0, "-0.0"},       {1e-7, "1e-7"},
      {0.001, "0.001"},     {1e20, "100000000000000000000.0"},
      {1e21, "1e21"},       {-1.5e300, "-1.5e300"},
      {123.456, "123.456"}, {0.1 + 0.2, "0.30000000000000004"}};
  for (const auto& [value, text] : cases) {
    const std::string json = ToJson(MakeSample(value));
    EXPECT_NE(json.find(std::string("\"value\": ") + text + ","), std::string::npos) << json;
  }
  // Values a fast parser gets wrong in the last bit come back exactly.
  for (const double value : {0.1 + 0.2, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308,
                             9007199254740993.0, 0.30000000000000004, 1.0 / 3}) {
    Sample out;
    ASSERT_TRUE(FromJson(ToJson(MakeSample(value)), out).ok());
    EXPECT_EQ(out.value, value);
  }
}

TEST(JsonCodecTest, NonFiniteValuesAreValidJsonAndReadBack) {
  for (const double value : {kNaN, kInf, -kInf}) {
    const std::string text = ToJson(MakeSample(value));
    const json::value tree = Parsed(text);
    EXPECT_TRUE(tree.at("value").is_null()) << text;
    EXPECT_EQ(tree.at("value_text").as_string(), internal::NonFiniteText(value)) << text;
    // Right after "value", where the sinks put it.
    EXPECT_NE(text.find("\"value\": null,\n\"value_text\": "), std::string::npos) << text;
    Sample out;
    ASSERT_TRUE(FromJson(text, out).ok());
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(out.value));
    } else {
      EXPECT_EQ(out.value, value);
    }
  }
  // null alone is a value that was not finite.
  Sample out;
  ASSERT_TRUE(FromJson(R"({"metric":"m","value":null})", out).ok());
  EXPECT_TRUE(std::isnan(out.value));
}

TEST(JsonCodecTest, RunRecordRoundTripsWithNonFiniteValues) {
  RunRecord in = MakeRecord();
  in.results.push_back(MakeSample(kNaN));
  in.machine.cpu.max_mhz = kInf;
  const std::string text = ToJson(in, /*pretty=*/true);
  const json::value tree = Parsed(text);
  EXPECT_TRUE(tree.at("machine").at("cpu").at("max_mhz").is_null());
  EXPECT_EQ(tree.at("results").at(1).at("value_text").as_string(), "-Infinity");
  EXPECT_EQ(tree.at("results").at(2).at("value_text").as_string(), "NaN");
  EXPECT_EQ(tree.at("labels").at("owner").as_string(), "perf-team");
  RunRecord out;
  ASSERT_TRUE(FromJson(text, out).ok());
  EXPECT_EQ(out.run_id, in.run_id);
  EXPECT_TRUE(out.warmup);
  EXPECT_EQ(out.results.at(0).value, 0.1 + 0.2);
  EXPECT_EQ(out.results.at(1).value, -kInf);
  EXPECT_TRUE(std::isnan(out.results.at(2).value));
  EXPECT_TRUE(std::isnan(out.machine.cpu.max_mhz)) << "null reads back as NaN";
  EXPECT_EQ(out.machine.memory_bytes, in.machine.memory_bytes);
  EXPECT_EQ(out.exit.usage.max_rss_bytes, in.exit.usage.max_rss_bytes);

  in.machine.cpu.max_mhz = 2000;
  const RunRecord finite = RoundTrip(in);
  EXPECT_EQ(finite.machine.ssh.port, 2222);
  EXPECT_EQ(finite.machine.accelerators.at(0).model, "H100");
}

TEST(JsonCodecTest, TheSinksRecordLineIsTheSameShapeOnOneLine) {
  const RunRecord in = MakeRecord();
  const std::string line = internal::RunRecordJson(in, /*with_type=*/true);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.rfind(R"({"type":"run","run_id":"0123abcd",)", 0), 0u) << line;
  EXPECT_NE(line.find(R"("value":null,"value_text":"-Infinity","unit")"), std::string::npos);
  json::value tree = Parsed(line);
  tree.as_object().erase("type");
  EXPECT_EQ(tree, Parsed(ToJson(in)));
}

TEST(JsonCodecTest, MachineInfoRoundTrips) {
  const MachineInfo out = RoundTrip(MakeMachine());
  EXPECT_EQ(out.cpu.flags, (std::vector<std::string>{"avx2", "sve"}));
  EXPECT_EQ(out.cpu.caches.at(0).size_bytes, 32u << 20);
  EXPECT_EQ(out.zone, "us-east-1a");
}

TEST(JsonCodecTest, SampleBatchRoundTripsWithAValueTextColumn) {
  SampleBatch in;
  in.labels = {{"run", "x"}};
  const auto idx = in.AddSeries({"m", "1", {{"cpu", "1"}}});
  in.Append(idx, 1, 2, 3.25);
  in.Append(idx, 4, 5, kNaN);
  in.Append(idx, 6, 7, kInf);
  const std::string text = ToJson(in);
  const json::value tree = Parsed(text);
  EXPECT_EQ(tree.at("value"), json::parse("[3.25,null,null]"));
  EXPECT_EQ(tree.at("value_text"), json::parse(R"([null,"NaN","Infinity"])"));
  SampleBatch out;
  ASSERT_TRUE(FromJson(text, out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out.value[0], 3.25);
  EXPECT_TRUE(std::isnan(out.value[1]));
  EXPECT_EQ(out.value[2], kInf);
  EXPECT_EQ(out.series.at(0).labels.at("cpu"), "1");
  EXPECT_EQ(out.timestamp_ns, in.timestamp_ns);

  SampleBatch finite;
  finite.AddSeries({"m", "1", {}});
  finite.Append(0, 1, 2, 0.5);
  EXPECT_FALSE(Parsed(ToJson(finite)).as_object().contains("value_text"));
  RoundTrip(finite);

  EXPECT_EQ(FromJson(R"({"value":[1.0,2.0],"timestamp_ns":[1]})", out).code(),
            StatusCode::kInvalidArgument);
}

TEST(JsonCodecTest, ContainerSpecRoundTripsWithItsMapsAsKeyValueArrays) {
  ContainerSpec in;
  in.name = "bench";
  in.image = "alpine:3";
  in.command = {"sh", "-c", "echo \"hi\"\n"};
  in.env = {{"A", "1"}, {"B", ""}};
  in.mounts.push_back({"tmpfs", "", "/scratch", false, 1 << 20});
  in.devices.push_back({"/dev/nvidia0", "", "rw"});
  in.device_requests.push_back({"nvidia", -1, {"0"}, {{"gpu", "compute"}}, {{"k", "v"}}});
  in.cpus = 1.5;
  in.labels = {{"bitfusion.run", "r"}};
  in.health_check.command = {"true"};
  const std::string text = ToJson(in);
  const json::value tree = Parsed(text);
  EXPECT_EQ(tree.at("env"), json::parse(R"([{"key":"A","value":"1"},{"key":"B","value":""}])"));
  EXPECT_EQ(tree.at("device_requests").at(0).at("capabilities"),
            json::parse(R"([["gpu","compute"]])"));
  EXPECT_EQ(tree.at("labels"), json::parse(R"({"bitfusion.run":"r"})"));
  const ContainerSpec out = RoundTrip(in);
  EXPECT_EQ(out.env, in.env);
  EXPECT_EQ(out.device_requests.at(0).options.at("k"), "v");
  EXPECT_EQ(out.cpus, 1.5);
  EXPECT_EQ(out.health_check.retries, 3);
}

TEST(JsonCodecTest, DeviceAndEventRoundTripWithEnumsAsNumbers) {
  Device device;
  device.id = "0000:17:00.0";
  device.kind = DeviceKind::kFpga;
  device.memory_bytes = 80ull << 30;
  device.device_nodes = {"/dev/xclmgmt"};
  device.properties = {{"uuid", "u"}};
  EXPECT_EQ(Parsed(ToJson(device)).at("kind"), json::value(2));
  const Device d = RoundTrip(device);
  EXPECT_EQ(d.kind, DeviceKind::kFpga);
  EXPECT_EQ(d.properties, device.properties);

  Event event;
  event.type = EventType::kContainerDied;
  event.subject = "abc";
  event.attributes = {{"exitCode", "137"}};
  event.time_ns = -5;
  const Event e = RoundTrip(event);
  EXPECT_EQ(e.type, EventType::kContainerDied);
  EXPECT_EQ(e.attributes, event.attributes);
  EXPECT_EQ(e.time_ns, -5);
}

TEST(JsonCodecTest, StringsAreValidUtf8AndEscaped) {
  Sample in = MakeSample(1);
  in.metric = "bad\xff\xfe utf8 \"quoted\" \x01 nul\0!"s;
  const std::string text = ToJson(in);
  const json::value tree = Parsed(text);
  EXPECT_EQ(tree.at("metric").as_string(),
            "bad\xEF\xBF\xBD\xEF\xBF\xBD utf8 \"quoted\" \x01 nul\0!"s);
}

TEST(JsonCodecTest, MissingMembersKeepTheirDefaults) {
  RunRecord out;
  ASSERT_TRUE(FromJson(R"({"run_id":"r","machine":{"cpu":{"cores":8}},"results":[{}]})", out).ok());
  EXPECT_EQ(out.run_id, "r");
  EXPECT_EQ(out.machine.cpu.cores, 8);
  EXPECT_EQ(out.machine.ssh.port, 22);
  EXPECT_EQ(out.status, kRunOk);
  ASSERT_EQ(out.results.size(), 1u);
  EXPECT_EQ(out.results[0].value, 0.0);
}

// The error says where and what, and nothing is half-read into the output.
void ExpectError(std::string_view text, std::string_view where, std::string_view what) {
  RunRecord out;
  out.run_id = "untouched";
  const Status status = FromJson(text, out);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << text;
  EXPECT_NE(status.message().find(where), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(what), std::string::npos) << status.message();
  EXPECT_EQ(out.run_id, "untouched");
}

TEST(JsonCodecTest, UnknownFieldsAndWrongTypesNameTheField) {
  ExpectError(R"({"run_id":"r","bogus":1})", "bogus: unknown field", "RunRecord");
  ExpectError(R"({"machine":{"cpu":{"speed":1}}})", "machine.cpu.speed: unknown field", "CpuInfo");
  ExpectError(R"({"results":[{"value":1},{"value":"fast"}]})",
              "results[1].value: expected a number", "got a string");
  ExpectError(R"({"results":[{"value":null,"value_text":"lots"}]})", "results[0].value_text",
              "\"lots\"");
  ExpectError(R"({"repetition":1.5})", "repetition: expected an integer", "fraction");
  ExpectError(R"({"repetition":99999999999})", "repetition: integer 99999999999 is out of range",
              "2147483647");
  ExpectError(R"({"machine":{"memory_bytes":-1}})", "machine.memory_bytes", "out of range");
  ExpectError(R"({"labels":{"a":1}})", "labels.a: expected a string", "integer");
  ExpectError(R"({"labels":[]})", "labels: expected an object", "array");
  ExpectError(R"({"command":["a",2]})", "command[1]: expected a string", "integer");
  ExpectError(R"({"warmup":"yes"})", "warmup: expected true or false", "string");
  ExpectError(R"([1])", "expected an object (RunRecord)", "array");
  ExpectError(R"({"run_id": 5)", "malformed JSON", "");
  ExpectError(R"({"run_id":"r"} x)", "malformed JSON", "");

  ContainerSpec spec;
  const Status status = FromJson(R"({"env":[{"key":"A","val":"1"}]})", spec);
  EXPECT_NE(status.message().find("env[0].val: unknown field"), std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace bitfusion
