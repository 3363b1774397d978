// The HTML report's page: a header, the summary table, strip plots of the repetitions (one strip
// per machine), the metric streams as time series over the runs' phases, the comparison with a
// baseline (those three in report_plots.cc), the machines' fingerprints, the observers'
// overhead and the runs that failed.
//
// Everything is written into one string: inline CSS and SVG, no script, no URL. The same input
// gives the same bytes (no clock, no randomness, ordered containers only).
#include "experiment/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bitfusion/statistics.h"
#include "experiment/number_format.h"
#include "experiment/repetitions.h"
#include "experiment/report_format.h"
#include "experiment/report_plots.h"

namespace bitfusion::internal {
namespace {

using namespace report;  // NOLINT: the page is written with the report's own vocabulary

const char* kStyle = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2330;background:#fff;margin:0;padding:16px 24px 48px}
h1{font-size:24px;margin:0 0 8px}
h2{font-size:19px;margin:32px 0 8px;padding-bottom:4px;border-bottom:2px solid #d8dee8}
h3{font-size:16px;margin:20px 0 6px}
h4{font-size:14px;margin:14px 0 2px;font-weight:600}
nav a{margin-right:14px;color:#2a5885}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dl.meta dt{color:#5b6575}
dl.meta dd{margin:0;word-break:break-all}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #e3e7ee;text-align:left;vertical-align:top}
th{background:#f1f3f7;font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.warn{color:#8a5a00;font-size:12px;padding-top:0}
tr:has(+tr.warnrow) td{border-bottom:none}
tr.warmup td{color:#7a818c}
.v-slower{color:#a61b1b;background:#fde7e7;font-weight:600}
.v-faster{color:#17632b;background:#e3f4e7;font-weight:600}
.v-same{color:#59606b;background:#eef0f3}
.v-na{color:#59606b;font-style:italic}
.note{color:#5b6575;font-size:12px}
.plot{margin:4px 0 14px}
svg{display:block;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;overflow:visible}
svg .bg{fill:#f5f7fb}
svg .frame{fill:none;stroke:#8795a8;stroke-width:1}
svg .grid{stroke:#e0e5ec;stroke-width:1}
svg .axis text,svg text.lab{fill:#4a5260}
svg .tick{stroke:#8795a8}
svg .band-m{fill:#dde9f7}
svg .band-w{fill:#e1e1e1}
svg .band-f{fill:#f6d5d5}
svg .band-lab{fill:#3a4150;font-size:10px;paint-order:stroke;stroke:#f5f7fb;stroke-width:3px;stroke-linejoin:round}
svg polyline{fill:none;stroke-width:1.5;stroke-linejoin:round;stroke-linecap:round}
svg .ci{fill:#c9dcf0}
svg .med{stroke:#1d2330;stroke-width:2}
svg .dot{fill:#1f77b4;stroke:#f5f7fb;stroke-width:.8}
svg .dot.out{fill:#d62728}
svg .dot.warm{fill:none;stroke:#8a8f98;stroke-width:1.2}
svg .zero{stroke:#1d2330;stroke-width:1;stroke-dasharray:3 3}
svg .fr-slower{fill:#c0392b;stroke:#c0392b}
svg .fr-faster{fill:#23893f;stroke:#23893f}
svg .fr-same{fill:#7d848e;stroke:#7d848e}
svg .fr-na{fill:#b0b5bc;stroke:#b0b5bc}
.legend{font-size:12px;color:#3a4150;margin:2px 0 0 70px}
.legend span.sw{display:inline-block;width:14px;height:3px;vertical-align:middle;margin:0 4px 0 10px}
.legend span.sw:first-child{margin-left:0}
.machine{font-size:12px;font-weight:600;color:#3a4150;margin:6px 0 0 70px}
details>summary{cursor:pointer;font-size:16px;font-weight:600;margin:18px 0 4px}
pre{white-space:pre-wrap;margin:0;font-size:12px}
)";

void Header(std::string& out, const ReportInput& in) {
  std::size_t warmups = 0, failed = 0, samples = 0, series = 0;
  for (const auto& r : in.runs) {
    if (r.record.warmup) ++warmups;
    if (r.record.status != kRunOk) ++failed;
    series += r.series.size();
    for (const auto& s : r.series) samples += s.value.size();
  }
  out += "<h1>" + Esc(in.title.empty() ? in.plan : in.title) + "</h1>\n<dl class=\"meta\">";
  auto row = [&](const char* k, const std::string& v) {
    out += "<dt>" + std::string(k) + "</dt><dd>" + v + "</dd>";
  };
  row("plan", Esc(in.plan));
  row("plan run", "<code>" + Esc(in.plan_run_id) + "</code>");
  row("results", Esc(in.source));
  if (!in.baseline_source.empty()) row("baseline", Esc(in.baseline_source));
  row("generated from", std::to_string(in.runs.size()) + " runs (" + std::to_string(warmups) +
                            " warm-up, " + std::to_string(failed) + " not ok), " +
                            std::to_string(samples) + " samples in " + std::to_string(series) +
                            " series");
  out +=
      "</dl>\n<nav><a href=\"#summary\">Summary</a><a href=\"#distributions\">Distributions</a>"
      "<a href=\"#timeseries\">Time series</a>";
  if (!in.comparison.empty()) out += "<a href=\"#baseline\">Baseline</a>";
  out += "<a href=\"#machines\">Machines</a><a href=\"#runs\">Runs</a></nav>\n";
}

std::string Warnings(const std::vector<std::string>& warnings) {
  std::string out;
  for (const auto& w : warnings) {
    if (!out.empty()) out += "<br>";
    out += "&#9888; " + Esc(w);
  }
  return out;
}

std::size_t OutlierCount(const Statistics& s) {
  std::set<std::size_t> all(s.mad_outliers.begin(), s.mad_outliers.end());
  all.insert(s.tukey_outliers.begin(), s.tukey_outliers.end());
  return all.size();
}

void SummaryTable(std::string& out, const ReportInput& in) {
  out += "<h2 id=\"summary\">Summary</h2>\n";
  if (in.summary.empty()) {
    out += "<p class=\"note\">No measured, successful run reported a metric.</p>\n";
    return;
  }
  out +=
      "<table><thead><tr><th>benchmark</th><th>metric</th><th>unit</th><th>runs</th>"
      "<th>median</th><th>95&#8239;% CI of the median</th><th>mean</th><th>stddev</th>"
      "<th>RSD</th><th>min</th><th>p5</th><th>p95</th><th>max</th>"
      "<th title=\"by the modified z-score (MAD) or Tukey&#39;s fences\">outliers</th>"
      "</tr></thead><tbody>\n";
  for (const auto& m : in.summary) {
    const Statistics& s = m.stats;
    const bool any = s.count > 0;
    auto cell = [&](double v) { return "<td class=\"n\">" + (any ? Num(v) : "&ndash;") + "</td>"; };
    out += "<tr><td>" + Esc(m.benchmark) + "</td><td>" + Esc(m.metric) + "</td><td>" + Esc(m.unit) +
           "</td><td class=\"n\">" + std::to_string(s.count);
    if (s.nonfinite > 0) out += " (+" + std::to_string(s.nonfinite) + " non-finite)";
    out += "</td>" + cell(s.median);
    if (any && std::isfinite(s.median_ci_low) && std::isfinite(s.median_ci_high)) {
      out += "<td class=\"n\">[" + Num(s.median_ci_low) + ", " + Num(s.median_ci_high) + "]</td>";
    } else {
      out += "<td class=\"n\">&ndash;</td>";
    }
    out += cell(s.mean) + cell(s.stddev);
    out +=
        "<td class=\"n\">" + (any ? FormatPercent(s.rsd, false) : std::string("&ndash;")) + "</td>";
    out += cell(s.min) + cell(s.p5) + cell(s.p95) + cell(s.max);
    out += "<td class=\"n\" title=\"MAD " + std::to_string(s.mad_outliers.size()) + ", Tukey " +
           std::to_string(s.tukey_outliers.size()) + "\">" + std::to_string(OutlierCount(s)) +
           "</td></tr>\n";
    // Warnings right under their row, across the table.
    if (!s.warnings.empty()) {
      out += "<tr class=\"warnrow\"><td></td><td colspan=\"13\" class=\"warn\">" +
             Warnings(s.warnings) + "</td></tr>\n";
    }
  }
  out += "</tbody></table>\n";
}

// ----- Machines, runs ------------------------------------------------------------------------

void Machines(std::string& out, const ReportInput& in) {
  out += "<h2 id=\"machines\">Machines</h2>\n";
  std::vector<std::string> keys;
  std::map<std::string, std::pair<const RunRecord*, std::size_t>> machines;
  std::map<std::string, std::set<std::string>> groups;
  for (const auto& r : in.runs) {
    const std::string key = Fingerprint(r.record.machine);
    auto [it, added] = machines.try_emplace(key, &r.record, 0);
    if (added) keys.push_back(key);
    ++it->second.second;
    groups[key].insert(MachineGroup(r.record));
  }
  if (keys.empty()) {
    out += "<p class=\"note\">No runs.</p>\n";
    return;
  }
  out += "<table><thead><tr><th></th>";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    out += "<th>machine " + std::to_string(i + 1) + "</th>";
  }
  out += "</tr></thead><tbody>\n";
  // A row no machine has a value for is left out.
  auto row = [&](const char* name, auto&& cell) {
    std::string cells;
    bool any = false;
    for (const auto& k : keys) {
      const std::string c = cell(machines[k].first->machine, k);
      any |= !c.empty();
      cells += "<td>" + c + "</td>";
    }
    if (any) out += std::string("<tr><th>") + name + "</th>" + cells + "</tr>\n";
  };
  using M = const MachineInfo&;
  using K = const std::string&;
  row("hostname", [](M m, K) { return Esc(m.hostname); });
  row("machine group", [&](M m, K k) {
    std::string s;
    for (const auto& g : groups[k]) s += (s.empty() ? "" : ", ") + Esc(g);
    return s == Esc(m.hostname) ? std::string() : s;
  });
  row("provider / type", [](M m, K) {
    std::string s = m.provider;
    if (!m.type.empty()) s += (s.empty() ? "" : " / ") + m.type;
    if (!m.id.empty() && m.id != m.hostname) s += (s.empty() ? "" : " ") + ("(" + m.id + ")");
    return Esc(s);
  });
  row("CPU", [](M m, K) {
    std::string s = m.cpu.model_name;
    if (!m.cpu.architecture.empty()) s += (s.empty() ? "" : ", ") + m.cpu.architecture;
    std::string out = Esc(s);
    if (m.cpu.max_mhz > 0) out += Fmt(", %.0f MHz", m.cpu.max_mhz);
    return out;
  });
  row("sockets / cores / threads", [](M m, K) {
    return std::to_string(m.cpu.sockets) + " / " + std::to_string(m.cpu.cores) + " / " +
           std::to_string(m.cpu.threads) +
           (m.cpu.numa_nodes > 0 ? ", " + std::to_string(m.cpu.numa_nodes) + " NUMA nodes"
                                 : std::string());
  });
  row("memory", [](M m, K) { return Bytes(m.memory_bytes); });
  row("kernel", [](M m, K) { return Esc(m.kernel); });
  row("OS", [](M m, K) { return Esc(m.os); });
  row("accelerators", [](M m, K) {
    const std::string a = Accelerators(m);
    return a.empty() ? std::string("none") : Esc(a);
  });
  row("runs", [&](M, K k) { return std::to_string(machines[k].second); });
  out += "</tbody></table>\n";
}

void Runs(std::string& out, const ReportInput& in) {
  out += "<h2 id=\"runs\">Runs and observer overhead</h2>\n";
  if (in.runs.empty()) {
    out += "<p class=\"note\">No runs.</p>\n";
    return;
  }
  std::set<std::string> groups;
  for (const auto& r : in.runs) groups.insert(MachineGroup(r.record));
  const bool several = groups.size() > 1;
  std::int64_t cpu = 0, wall = 0, samples = 0, dropped = 0;
  out += "<table><thead><tr><th>run</th><th>benchmark</th><th></th>";
  if (several) out += "<th>machine</th>";
  out +=
      "<th>status</th><th>wall time</th><th>observer CPU</th><th>of wall</th><th>samples</th>"
      "<th>dropped</th><th>interval</th></tr></thead><tbody>\n";
  for (const auto& r : in.runs) {
    const RunRecord& rec = r.record;
    const ObserverOverhead& o = rec.overhead;
    cpu += o.cpu_ns;
    wall += rec.exit.wall_time_ns;
    samples += o.samples;
    dropped += o.samples_dropped;
    out += std::string("<tr") + (rec.warmup ? " class=\"warmup\"" : "") + "><td><code>" +
           Esc(rec.run_id.substr(0, 8)) + "</code></td><td>" + Esc(rec.benchmark) + "</td><td>" +
           Esc(RunName(rec)) + "</td>";
    if (several) out += "<td>" + Esc(MachineGroup(rec)) + "</td>";
    out += "<td" + std::string(rec.status == kRunOk ? "" : " class=\"v-slower\"") + ">" +
           Esc(rec.status) + "</td><td class=\"n\">" + Seconds(rec.exit.wall_time_ns) +
           "</td><td class=\"n\">" + Fmt("%.1f ms", static_cast<double>(o.cpu_ns) / 1e6) +
           "</td><td class=\"n\">" +
           (rec.exit.wall_time_ns > 0
                ? FormatPercent(
                      static_cast<double>(o.cpu_ns) / static_cast<double>(rec.exit.wall_time_ns),
                      false)
                : std::string("&ndash;")) +
           "</td><td class=\"n\">" + std::to_string(o.samples) + "</td><td class=\"n\">" +
           std::to_string(o.samples_dropped) + "</td><td class=\"n\">" +
           (o.interval_ns > 0 ? Fmt("%g ms", static_cast<double>(o.interval_ns) / 1e6)
                              : std::string("&ndash;")) +
           "</td></tr>\n";
  }
  out += "</tbody><tfoot><tr><th colspan=\"" + std::to_string(several ? 6 : 5) +
         "\">all runs</th><td class=\"n\">" + Fmt("%.1f ms", static_cast<double>(cpu) / 1e6) +
         "</td><td class=\"n\">" +
         (wall > 0 ? FormatPercent(static_cast<double>(cpu) / static_cast<double>(wall), false)
                   : std::string("&ndash;")) +
         "</td><td class=\"n\">" + std::to_string(samples) + "</td><td class=\"n\">" +
         std::to_string(dropped) + "</td><td></td></tr></tfoot></table>\n";

  bool any_failed = false;
  for (const auto& r : in.runs) any_failed |= r.record.status != kRunOk;
  if (!any_failed) return;
  out +=
      "<h3 id=\"failed\">Runs that did not succeed</h3>\n<table><thead><tr><th>run</th>"
      "<th>benchmark</th><th></th><th>status</th><th>exit</th><th>error</th></tr></thead>"
      "<tbody>\n";
  for (const auto& r : in.runs) {
    const RunRecord& rec = r.record;
    if (rec.status == kRunOk) continue;
    std::string exit;
    if (rec.exit.signal != 0) {
      exit = "signal " + std::to_string(rec.exit.signal);
    } else if (rec.exit.exit_code >= 0) {
      exit = "code " + std::to_string(rec.exit.exit_code);
    }
    if (rec.exit.timed_out) exit += (exit.empty() ? "" : ", ") + std::string("timed out");
    if (rec.exit.oom_killed) exit += (exit.empty() ? "" : ", ") + std::string("OOM-killed");
    out += "<tr><td><code>" + Esc(rec.run_id.substr(0, 8)) + "</code></td><td>" +
           Esc(rec.benchmark) + "</td><td>" + Esc(RunName(rec)) + "</td><td class=\"v-slower\">" +
           Esc(rec.status) + "</td><td>" + Esc(exit) + "</td><td><pre>" + Esc(rec.error) +
           "</pre></td></tr>\n";
  }
  out += "</tbody></table>\n";
}

}  // namespace

std::string RenderHtmlReport(const ReportInput& input, int plot_width) {
  const int width = std::clamp(plot_width, 100, 10000);
  std::string out;
  out.reserve(64 * 1024);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      Esc(input.title.empty() ? input.plan : input.title) + " &middot; bitfusion report</title>" +
      "<style>" + kStyle + "</style></head>\n<body>\n";
  Header(out, input);
  SummaryTable(out, input);
  Distributions(out, input, width);
  TimeSeries(out, input, width);
  Baseline(out, input, width);
  Machines(out, input);
  Runs(out, input);
  out += "</body></html>\n";
  return out;
}

}  // namespace bitfusion::internal
