// The HTML report's page, from a hand-made input: self-contained, escaped, deterministic, and
// small however many samples a run took.
#include "experiment/html_report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace bitfusion::internal {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::int64_t kT0 = 1'700'000'000 * kSecond;
const char* const kEvilName = "<b>&\"x\"";
const char* const kEvilEscaped = "&lt;b&gt;&amp;&quot;x&quot;";

std::size_t Count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

MachineInfo Machine(const std::string& hostname, const std::string& cpu) {
  MachineInfo m;
  m.id = hostname;
  m.provider = "local";
  m.hostname = hostname;
  m.cpu.model_name = cpu;
  m.cpu.architecture = "x86_64";
  m.cpu.sockets = 1;
  m.cpu.cores = 8;
  m.cpu.threads = 16;
  m.memory_bytes = 32ULL << 30;
  m.kernel = "6.1.0-18-amd64";
  m.os = "Debian GNU/Linux 12 (bookworm)";
  return m;
}

StoredSeries Series(const RunRecord& r, const std::string& metric, Labels extra, std::int64_t start,
                    std::int64_t end, std::size_t n, double (*value)(std::size_t)) {
  StoredSeries s;
  s.run_id = r.run_id;
  s.metric = metric;
  s.unit = "1";
  s.labels = r.labels;
  s.labels.insert(extra.begin(), extra.end());
  for (std::size_t i = 0; i < n; ++i) {
    s.timestamp_ns.push_back(start + static_cast<std::int64_t>((end - start) * i / n));
    s.value.push_back(value(i));
  }
  return s;
}

/// Two benchmarks (one named to need escaping) on two machines, a warm-up and four measured runs
/// each, host series with a gap of NaNs, a failed run, and one comparison row per verdict.
ReportInput Fixture() {
  ReportInput in;
  in.title = "nightly <check>";
  in.plan = "nightly";
  in.plan_run_id = "0123456789abcdef0123456789abcdef";
  in.source = "sqlite:///var/lib/bitfusion/results.db";
  const MachineInfo machines[] = {Machine("alpha", "AMD EPYC 9654"),
                                  Machine("beta", "Intel Xeon 8480+")};
  std::int64_t t = kT0;
  int id = 0;
  for (const std::string& bench : {std::string("matmul"), std::string(kEvilName)}) {
    for (const MachineInfo& m : machines) {
      std::int64_t tm = t;  // the machines run side by side
      for (int rep = -1; rep < 4; ++rep) {
        ReportRun run;
        RunRecord& r = run.record;
        r.run_id = "run" + std::to_string(id++);
        r.plan = in.plan;
        r.plan_run_id = in.plan_run_id;
        r.benchmark = bench;
        r.warmup = rep < 0;
        r.repetition = rep < 0 ? 0 : rep;
        r.machine = m;
        r.labels = {{"run_id", r.run_id},
                    {"benchmark", bench},
                    {"repetition", std::to_string(r.repetition)},
                    {"warmup", r.warmup ? "true" : "false"},
                    {"machine", m.hostname}};
        const std::int64_t duration = 2 * kSecond;
        r.exit = {0, 0, false, false, tm, tm + duration, duration, {}};
        r.overhead = {15'000'000, 200, 1, 10'000'000};
        // The last measured run of alpha is far off: an outlier.
        const double speed = (m.hostname == "alpha" ? 100.0 : 80.0) + rep +
                             (rep == 3 && m.hostname == "alpha" ? 60.0 : 0.0);
        r.results.push_back({"wall_time", 2.0 + 0.01 * rep, "s", {}, tm + duration, 0});
        r.results.push_back({"speed", speed, "ops/s", {}, tm + duration, 0});
        if (bench == kEvilName && m.hostname == "beta" && rep == 2) {
          r.status = kRunFailed;
          r.error = "exit code 3: <stderr> & \"quotes\"";
          r.exit.exit_code = 3;
        }
        for (int cpu = 0; cpu < 10; ++cpu) {
          run.series.push_back(
              Series(r, "cpu.user", {{"cpu", std::to_string(cpu)}}, tm, tm + duration, 200,
                     [](std::size_t i) { return i >= 50 && i < 60 ? NAN : std::sin(i * 0.1); }));
        }
        run.series.push_back(Series(r, "mem.used", {}, tm, tm + duration, 200,
                                    [](std::size_t i) { return 1e9 + 1e6 * i; }));
        in.runs.push_back(std::move(run));
        tm += duration + kSecond / 2;
      }
    }
    t += 6 * (2 * kSecond + kSecond / 2);
  }
  std::vector<RunRecord> records;
  for (const auto& run : in.runs) records.push_back(run.record);
  in.summary = SummarizeRuns(records);

  in.baseline_source = "sqlite:///var/lib/bitfusion/baseline.db@feedfacefeedface";
  const char* verdicts[] = {"slower", "faster", "no change", ""};
  const double changes[] = {0.12, -0.08, 0.004, NAN};
  for (int i = 0; i < 4; ++i) {
    MetricComparison c;
    c.benchmark = i < 2 ? "matmul" : kEvilName;
    c.metric = i % 2 ? "wall_time" : "speed";
    c.unit = i % 2 ? "s" : "ops/s";
    c.baseline.count = 4;
    c.candidate.count = 4;
    c.comparison.baseline_median = i == 3 ? 0 : 100;
    c.comparison.candidate_median = 100 * (1 + changes[i]);
    c.comparison.change = changes[i];
    c.comparison.change_ci_low = i == 3 ? NAN : changes[i] - 0.02;
    c.comparison.change_ci_high = i == 3 ? NAN : changes[i] + 0.03;
    c.comparison.test.p_value = i == 3 ? NAN : 0.01 * (i + 1);
    c.verdict = verdicts[i];
    if (i == 3) c.note = "the baseline median is 0 <so no ratio>";
    in.comparison.push_back(c);
  }
  return in;
}

/// The points of every polyline, in order.
std::vector<std::vector<std::pair<double, double>>> Polylines(const std::string& html) {
  std::vector<std::vector<std::pair<double, double>>> out;
  for (std::size_t at = html.find("<polyline"); at != std::string::npos;
       at = html.find("<polyline", at + 1)) {
    const std::size_t end = html.find('>', at);
    const std::size_t begin = html.find(" points=\"", at);
    if (begin == std::string::npos || begin > end) continue;
    std::istringstream points(html.substr(begin + 9, html.find('"', begin + 9) - begin - 9));
    std::vector<std::pair<double, double>> line;
    std::string point;
    while (points >> point) {
      const std::size_t comma = point.find(',');
      EXPECT_NE(comma, std::string::npos) << point;
      if (comma == std::string::npos) continue;
      line.emplace_back(std::stod(point.substr(0, comma)), std::stod(point.substr(comma + 1)));
    }
    out.push_back(std::move(line));
  }
  return out;
}

/// The values of every attribute (name="value").
std::vector<std::string> AttributeValues(const std::string& html) {
  std::vector<std::string> out;
  for (std::size_t at = html.find("=\""); at != std::string::npos;) {
    const std::size_t end = html.find('"', at + 2);
    if (end == std::string::npos) break;
    out.push_back(html.substr(at + 2, end - at - 2));
    at = html.find("=\"", end + 1);
  }
  return out;
}

/// "12.34" (two decimals or more), alone or in a list of coordinates.
bool HasLongNumber(const std::string& value) {
  std::size_t decimals = 0;
  bool after_point = false;
  for (char c : value) {
    if (c == '.') {
      after_point = true;
      decimals = 0;
    } else if (c >= '0' && c <= '9') {
      if (after_point && ++decimals >= 2) return true;
    } else {
      after_point = false;
    }
  }
  return false;
}

std::size_t PointCount(const std::string& html) {
  std::size_t n = 0;
  for (const auto& line : Polylines(html)) n += line.size();
  return n;
}

/// One run of `n` samples of "big" over ten seconds.
ReportInput BigRun(std::size_t n, double (*value)(std::size_t)) {
  ReportInput in;
  in.title = "big";
  in.plan = "big";
  ReportRun run;
  run.record.run_id = "r";
  run.record.benchmark = "b";
  run.record.machine.hostname = "h";
  run.record.exit.start_ns = kT0;
  run.record.exit.end_ns = kT0 + 10 * kSecond;
  run.record.exit.wall_time_ns = 10 * kSecond;
  run.series.push_back(Series(run.record, "big", {}, kT0, kT0 + 10 * kSecond, n, value));
  in.runs.push_back(std::move(run));
  return in;
}

TEST(HtmlReportTest, IsOneSelfContainedDocument) {
  const std::string html = RenderHtmlReport(Fixture());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_GT(Count(html, "<svg"), 0u);
  EXPECT_EQ(Count(html, "<svg"), Count(html, "</svg>"));
  EXPECT_EQ(Count(html, "<table"), Count(html, "</table>"));
  EXPECT_EQ(Count(html, "<details"), Count(html, "</details>"));
  EXPECT_EQ(Count(html, "<style>"), 1u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  // Every number in the SVG has at most one decimal.
  for (const std::string& value : AttributeValues(html)) {
    if (value.find_first_not_of("0123456789.,- ") == std::string::npos) {
      EXPECT_FALSE(HasLongNumber(value)) << value.substr(0, 80);
    }
  }
}

TEST(HtmlReportTest, ShowsEverySection) {
  const std::string html = RenderHtmlReport(Fixture());
  for (const char* section :
       {"id=\"summary\"", "id=\"distributions\"", "id=\"timeseries\"", "id=\"baseline\"",
        "id=\"machines\"", "id=\"runs\"", "id=\"failed\""}) {
    EXPECT_NE(html.find(section), std::string::npos) << section;
  }
  // The header: plan, plan run, source, counts (20 runs, 4 warm-ups, 1 failed; 20 x 11 series
  // of 200 samples).
  EXPECT_NE(html.find("0123456789abcdef0123456789abcdef"), std::string::npos);
  EXPECT_NE(html.find("sqlite:///var/lib/bitfusion/results.db"), std::string::npos);
  EXPECT_NE(html.find("20 runs (4 warm-up, 1 not ok), 44000 samples in 220 series"),
            std::string::npos);
  // Both machines, side by side in the distributions and the fingerprints.
  EXPECT_NE(html.find("AMD EPYC 9654"), std::string::npos);
  EXPECT_NE(html.find("Intel Xeon 8480+"), std::string::npos);
  EXPECT_NE(html.find(">alpha</text>"), std::string::npos);
  EXPECT_NE(html.find(">beta</text>"), std::string::npos);
  // Outliers and warm-ups are drawn apart from the other repetitions.
  EXPECT_NE(html.find("class=\"dot out\""), std::string::npos);
  EXPECT_NE(html.find("class=\"dot warm\""), std::string::npos);
  // Run bands: warm-up, measured, failed.
  EXPECT_NE(html.find("class=\"band-w\""), std::string::npos);
  EXPECT_NE(html.find("class=\"band-m\""), std::string::npos);
  EXPECT_NE(html.find("class=\"band-f\""), std::string::npos);
  // Ten CPUs: eight lines drawn, the rest counted.
  EXPECT_NE(html.find("and 2 more series not drawn"), std::string::npos);
  // Each verdict has its colour; no verdict reads n/a, with its note.
  EXPECT_NE(html.find("class=\"v-slower\">slower<"), std::string::npos);
  EXPECT_NE(html.find("class=\"v-faster\">faster<"), std::string::npos);
  EXPECT_NE(html.find("class=\"v-same\">no change<"), std::string::npos);
  EXPECT_NE(html.find("class=\"v-na\">n/a<"), std::string::npos);
  EXPECT_NE(html.find("the baseline median is 0 &lt;so no ratio&gt;"), std::string::npos);
  EXPECT_NE(html.find("class=\"zero\""), std::string::npos);
  EXPECT_NE(html.find("+12.0%"), std::string::npos);
  // Observer overhead: 15 ms of CPU a run.
  EXPECT_NE(html.find("15.0 ms"), std::string::npos);
  EXPECT_NE(html.find("300.0 ms"), std::string::npos);
}

TEST(HtmlReportTest, SummaryRowsCarryTheirWarnings) {
  ReportInput in = Fixture();
  ASSERT_FALSE(in.summary.empty());
  in.summary[0].stats.warnings = {"the first run is an outlier <check warm-up>"};
  const std::string html = RenderHtmlReport(in);
  const std::size_t row = html.find("<td>matmul</td><td>wall_time</td>");
  const std::size_t warning =
      html.find("&#9888; the first run is an outlier &lt;check warm-up&gt;");
  ASSERT_NE(row, std::string::npos);
  ASSERT_NE(warning, std::string::npos);
  EXPECT_LT(row, warning);
  // Right under its row: no other row in between.
  EXPECT_EQ(html.substr(row, warning - row).find("<td>matmul</td>"), 0u);
  EXPECT_EQ(Count(html.substr(row, warning - row), "<tr>"), 0u);
}

TEST(HtmlReportTest, EscapesTextAndAttributes) {
  const std::string html = RenderHtmlReport(Fixture());
  EXPECT_EQ(html.find(kEvilName), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find(kEvilEscaped), std::string::npos);
  EXPECT_EQ(html.find("<check>"), std::string::npos);
  EXPECT_NE(html.find("nightly &lt;check&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<stderr>"), std::string::npos);
  EXPECT_NE(html.find("exit code 3: &lt;stderr&gt; &amp; &quot;quotes&quot;"), std::string::npos);
  // No stray quote ends an attribute early: every attribute is name="..." with no raw '<' inside.
  for (const std::string& value : AttributeValues(html)) {
    EXPECT_EQ(value.find('<'), std::string::npos) << value;
  }
}

TEST(HtmlReportTest, IsDeterministic) {
  const ReportInput in = Fixture();
  const std::string a = RenderHtmlReport(in);
  const std::string b = RenderHtmlReport(in);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, RenderHtmlReport(Fixture()));
}

TEST(HtmlReportTest, NonFiniteValuesBreakTheLine) {
  // 1000 samples with NaN in the middle and at the end: two pieces of line.
  const std::string html = RenderHtmlReport(BigRun(1000, [](std::size_t i) {
    return (i >= 400 && i < 420) || i == 999 ? NAN : static_cast<double>(i % 7);
  }));
  const auto lines = Polylines(html);
  ASSERT_EQ(lines.size(), 2u);
  // The gap is where the NaNs were: from 40 % to 42 % of the plot's width.
  const double left = 70, width = 960;
  EXPECT_NEAR(lines[0].back().first, left + 0.40 * width, 1.5);
  EXPECT_NEAR(lines[1].front().first, left + 0.42 * width, 1.5);
  EXPECT_EQ(html.find("nan"), std::string::npos);
  EXPECT_EQ(html.find("inf"), std::string::npos);
}

TEST(HtmlReportTest, AMillionSamplesAreDrawnAtMostTwicePerPixel) {
  // A flat line with one spike: the spike must survive the downsampling.
  ReportInput in =
      BigRun(1'000'000, [](std::size_t i) { return i == 654'321 ? 5.0 : 1.0 + (i % 3) * 0.1; });
  const auto start = std::chrono::steady_clock::now();
  const std::string html = RenderHtmlReport(in, 960);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const std::size_t points = PointCount(html);
  EXPECT_LE(points, 2u * 960);
  EXPECT_GE(points, 960u);
  double top = 1e9;
  for (const auto& line : Polylines(html)) {
    for (const auto& p : line) top = std::min(top, p.second);
  }
  EXPECT_LT(top, 20);  // the spike, near the top of the plot area
  EXPECT_LT(html.size(), 200u * 1024) << "bytes";
  EXPECT_LT(ms, 2000);
  RecordProperty("bytes", static_cast<int>(html.size()));
  RecordProperty("render_ms", static_cast<int>(ms));
  std::printf("1M samples: %zu bytes, %zu points, %.1f ms\n", html.size(), points, ms);

  // The width is also the number of buckets.
  EXPECT_LE(PointCount(RenderHtmlReport(in, 300)), 2u * 300);
}

TEST(HtmlReportTest, UnsortedTimestampsAreDrawnInTimeOrder) {
  // Rising values stored newest first, about a hundred to a pixel.
  ReportInput in = BigRun(100'000, [](std::size_t i) { return static_cast<double>(i); });
  auto& s = in.runs[0].series[0];
  std::reverse(s.timestamp_ns.begin(), s.timestamp_ns.end());
  std::reverse(s.value.begin(), s.value.end());
  const auto lines = Polylines(RenderHtmlReport(in));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_GT(lines[0].size(), 960u);
  EXPECT_LE(lines[0].size(), 2u * 960);
  for (std::size_t i = 1; i < lines[0].size(); ++i) {
    EXPECT_LE(lines[0][i - 1].first, lines[0][i].first) << i;
    EXPECT_GE(lines[0][i - 1].second, lines[0][i].second) << i;  // rising values, falling y
  }
}

TEST(HtmlReportTest, TheWholeFixtureStaysSmall) {
  const std::string html = RenderHtmlReport(Fixture());
  // 20 runs x 11 series x 200 samples, at most 8 lines a panel: about 430 kB.
  EXPECT_LT(html.size(), 1024u * 1024);
}

TEST(HtmlReportTest, EmptyInputStillRenders) {
  const std::string html = RenderHtmlReport(ReportInput{});
  EXPECT_EQ(Count(html, "<svg"), Count(html, "</svg>"));
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_EQ(html.find("id=\"baseline\""), std::string::npos);
}

}  // namespace
}  // namespace bitfusion::internal
