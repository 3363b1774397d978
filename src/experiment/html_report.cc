// The HTML report's page: a header, the summary table, strip plots of the repetitions (one strip
// per machine), the metric streams as time series over the runs' phases, the comparison with a
// baseline, the machines' fingerprints, the observers' overhead and the runs that failed.
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

namespace bitfusion::internal {
namespace {

// ---------------------------------------------------------------------------------------------
// Text.

/// Escapes for HTML text and for attribute values in double or single quotes.
std::string Esc(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters other than tab, CR and LF are not allowed in HTML text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += "\xEF\xBF\xBD";  // U+FFFD
        } else {
          out += c;
        }
    }
  }
  return out;
}

/// printf into a std::string.
__attribute__((format(printf, 1, 2))) std::string Fmt(const char* format, ...) {
  char buf[256];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return {};
  if (static_cast<std::size_t>(n) < sizeof buf)
    return std::string(buf, static_cast<std::size_t>(n));
  std::string out(static_cast<std::size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(out.data(), out.size(), format, args);
  va_end(args);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

/// A coordinate: one decimal keeps the SVG small and is finer than a CSS pixel.
std::string C(double v) {
  if (!std::isfinite(v)) v = 0;
  std::string s = Fmt("%.1f", v);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  if (s == "-0") s = "0";
  return s;
}

/// A table number; an en dash when there is none.
std::string Num(double v) { return std::isfinite(v) ? FormatNumber(v) : "&ndash;"; }

/// An axis tick: short, with an SI prefix from 10 000 on ("12k", "1.5G").
std::string Tick(double v) {
  const double a = std::fabs(v);
  if (a < 1e-12) return "0";
  static const char* const kPrefix[] = {"k", "M", "G", "T", "P", "E"};
  if (a >= 1e4 && a < 1e21) {
    int p = static_cast<int>(std::floor(std::log10(a) / 3));
    return Fmt("%.4g", v / std::pow(1000.0, p)) + kPrefix[p - 1];
  }
  return Fmt("%.4g", v);
}

std::string Bytes(std::uint64_t b) {
  if (b == 0) return "&ndash;";
  const double gib = static_cast<double>(b) / (1024.0 * 1024 * 1024);
  if (gib >= 1) return Fmt("%.1f GiB", gib);
  return Fmt("%.0f MiB", static_cast<double>(b) / (1024.0 * 1024));
}

std::string Seconds(std::int64_t ns) { return FormatNumber(static_cast<double>(ns) / 1e9) + " s"; }

/// At most `max` bytes of `s`, cut between UTF-8 characters, with an ellipsis when cut.
std::string Shorten(const std::string& s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max - 1;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "\xE2\x80\xA6";  // U+2026
}

std::string LabelText(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ' ';
    out += k + "=" + v;
  }
  return out;
}

/// Orders "cpu=2" before "cpu=10": digit runs compare as numbers.
bool NaturalLess(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = a[i] >= '0' && a[i] <= '9';
    const bool db = b[j] >= '0' && b[j] <= '9';
    if (da && db) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && a[ie] >= '0' && a[ie] <= '9') ++ie;
      while (je < b.size() && b[je] >= '0' && b[je] <= '9') ++je;
      std::string_view na(a.data() + i, ie - i), nb(b.data() + j, je - j);
      while (na.size() > 1 && na[0] == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb[0] == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;
}
struct NaturalOrder {
  bool operator()(const std::string& a, const std::string& b) const { return NaturalLess(a, b); }
};

// ---------------------------------------------------------------------------------------------
// Axes.

struct Scale {
  double lo = 0, hi = 1;  // data
  double p0 = 0, p1 = 1;  // pixels
  double operator()(double v) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

/// Widens [lo, hi] so that it is never empty, then pads it by `pad` of its width on each side.
std::pair<double, double> Padded(double lo, double hi, double pad) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) return {0, 1};
  if (hi - lo <= std::max(std::fabs(lo), std::fabs(hi)) * 1e-12) {
    const double d = std::max(std::fabs(lo) * 0.05, 1e-9);
    if (lo == 0 && hi == 0) return {-1, 1};
    return {lo - d, hi + d};
  }
  const double w = hi - lo;
  return {lo - w * pad, hi + w * pad};
}

/// Round values ("1, 2, 5 times a power of ten") inside [lo, hi], about `target` of them.
std::vector<double> NiceTicks(double lo, double hi, int target) {
  std::vector<double> out;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return out;
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (int i = 0; i < 50; ++i) {
    const double v = first + i * step;
    if (v > hi + step * 1e-9) break;
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Machines.

/// What puts a run's strip side by side with others: its machine group, else its host.
std::string MachineGroup(const RunRecord& r) {
  if (auto it = r.labels.find("machine_group"); it != r.labels.end() && !it->second.empty()) {
    return it->second;
  }
  if (!r.machine.hostname.empty()) return r.machine.hostname;
  if (!r.machine.id.empty()) return r.machine.id;
  return "unknown machine";
}

std::string Accelerators(const MachineInfo& m) {
  std::string out;
  for (const auto& a : m.accelerators) {
    if (!out.empty()) out += "; ";
    std::string name = a.vendor;
    if (!a.model.empty()) name += (name.empty() ? "" : " ") + a.model;
    if (name.empty()) name = a.vendor_id + ":" + a.device_id;
    out += (a.kind.empty() ? "" : a.kind + " ") + name;
    if (a.count > 1) out += " \xC3\x97" + std::to_string(a.count);  // U+00D7
    if (!a.pci_address.empty()) out += " (" + a.pci_address + ")";
  }
  return out;
}

/// The fields that tell two machines apart.
std::string Fingerprint(const MachineInfo& m) {
  std::string key = m.hostname + '\n' + m.type + '\n' + m.cpu.model_name + '\n' +
                    m.cpu.architecture + '\n' + std::to_string(m.cpu.sockets) + '/' +
                    std::to_string(m.cpu.cores) + '/' + std::to_string(m.cpu.threads) + '\n' +
                    std::to_string(m.memory_bytes) + '\n' + m.kernel + '\n' + m.os + '\n';
  for (const auto& a : m.accelerators) {
    key += a.kind + ',' + a.vendor + ',' + a.model + ',' + a.vendor_id + ',' + a.device_id + ',' +
           a.pci_address + ',' + std::to_string(a.count) + ';';
  }
  return key;
}

std::string RunName(const RunRecord& r) {
  if (r.warmup) return "warm-up " + std::to_string(r.repetition + 1);
  return "run " + std::to_string(r.repetition + 1);
}

// ---------------------------------------------------------------------------------------------
// Page parts.

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};
constexpr int kMaxLines = 8;
constexpr int kLeft = 70;  // room for the y axis' labels
constexpr int kRight = 16;

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

/// An x axis along the bottom of a plot area, ticks and labels included.
void XAxis(std::string& out, const Scale& x, double y_bottom, double y_top,
           const std::string& title) {
  out += "<g class=\"axis\">";
  for (double t : NiceTicks(x.lo, x.hi, 8)) {
    const std::string px = C(x(t));
    out += "<line class=\"grid\" x1=\"" + px + "\" x2=\"" + px + "\" y1=\"" + C(y_top) +
           "\" y2=\"" + C(y_bottom) + "\"/>";
    out += "<line class=\"tick\" x1=\"" + px + "\" x2=\"" + px + "\" y1=\"" + C(y_bottom) +
           "\" y2=\"" + C(y_bottom + 4) + "\"/>";
    out += "<text x=\"" + px + "\" y=\"" + C(y_bottom + 15) + "\" text-anchor=\"middle\">" +
           Esc(Tick(t)) + "</text>";
  }
  if (!title.empty()) {
    out += "<text x=\"" + C(x.p1) + "\" y=\"" + C(y_bottom + 28) + "\" text-anchor=\"end\">" +
           Esc(title) + "</text>";
  }
  out += "</g>";
}

void YAxis(std::string& out, const Scale& y, double x_left, double x_right) {
  out += "<g class=\"axis\">";
  for (double t : NiceTicks(y.lo, y.hi, 4)) {
    const std::string py = C(y(t));
    out += "<line class=\"grid\" x1=\"" + C(x_left) + "\" x2=\"" + C(x_right) + "\" y1=\"" + py +
           "\" y2=\"" + py + "\"/>";
    out += "<text x=\"" + C(x_left - 5) + "\" y=\"" + C(y(t) + 4) + "\" text-anchor=\"end\">" +
           Esc(Tick(t)) + "</text>";
  }
  out += "</g>";
}

/// The plot area's background, drawn first.
std::string Background(double x0, double y0, double w, double h) {
  return "<rect class=\"bg\" x=\"" + C(x0) + "\" y=\"" + C(y0) + "\" width=\"" + C(w) +
         "\" height=\"" + C(h) + "\"/>";
}

/// The plot area's frame, drawn last over everything in it, crisp (its colour is exact on screen).
std::string Border(double x0, double y0, double w, double h) {
  return "<rect class=\"frame\" shape-rendering=\"crispEdges\" x=\"" + C(x0 + 0.5) + "\" y=\"" +
         C(y0 + 0.5) + "\" width=\"" + C(w) + "\" height=\"" + C(h) + "\"/>";
}

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

// ----- Distributions -------------------------------------------------------------------------

struct Dot {
  double value;
  std::string title;
  bool outlier = false;
  bool warmup = false;
};

struct Strip {
  std::string group;
  std::vector<Dot> dots;
  double median = NAN, ci_low = NAN, ci_high = NAN;
  std::size_t nonfinite = 0;
};

void Distributions(std::string& out, const ReportInput& in, int width) {
  out += "<h2 id=\"distributions\">Distributions</h2>\n";
  if (in.summary.empty()) {
    out += "<p class=\"note\">Nothing to show.</p>\n";
    return;
  }
  // Runs per machine group, in the order the groups first ran.
  std::vector<std::string> groups;
  std::map<std::string, std::vector<RunRecord>> measured, warm;
  for (const auto& r : in.runs) {
    const std::string g = MachineGroup(r.record);
    if (!measured.count(g) && !warm.count(g)) groups.push_back(g);
    if (r.record.status != kRunOk) {
      measured[g];
      continue;
    }
    if (r.record.warmup) {
      RunRecord copy = r.record;
      copy.warmup = false;  // so that CollectRepetitions takes it
      warm[g].push_back(std::move(copy));
    } else {
      measured[g].push_back(r.record);
    }
  }
  const bool several = groups.size() > 1;
  std::map<std::string, Repetitions> measured_values, warm_values;
  for (const auto& g : groups) {
    measured_values[g] = CollectRepetitions(measured[g]);
    warm_values[g] = CollectRepetitions(warm[g]);
  }
  out += "<p class=\"note\">Each dot is one repetition";
  if (several) out += ", one strip per machine";
  out +=
      "; red dots are outliers, hollow grey circles warm-up runs (not in the statistics), the "
      "dark line is the median and the blue band its 95&#8239;% interval.</p>\n";

  const double row_h = 34;
  const double label_w = 150;
  for (const auto& m : in.summary) {
    const RepetitionKey key{m.benchmark, m.metric};
    std::vector<Strip> strips;
    for (const auto& g : groups) {
      auto mit = measured_values[g].values.find(key);
      auto wit = warm_values[g].values.find(key);
      const bool has_m = mit != measured_values[g].values.end();
      const bool has_w = wit != warm_values[g].values.end();
      if (!has_m && !has_w) continue;
      Strip strip;
      strip.group = g;
      if (has_m) {
        const std::vector<double>& v = mit->second.values;
        // One machine: the summary is this strip's statistics (same values, same order).
        Statistics stats =
            (!several && v.size() == m.stats.count + m.stats.nonfinite) ? m.stats : Summarize(v);
        std::set<std::size_t> outliers(stats.mad_outliers.begin(), stats.mad_outliers.end());
        outliers.insert(stats.tukey_outliers.begin(), stats.tukey_outliers.end());
        for (std::size_t i = 0; i < v.size(); ++i) {
          if (!std::isfinite(v[i])) {
            ++strip.nonfinite;
            continue;
          }
          strip.dots.push_back({v[i],
                                "repetition " + std::to_string(i + 1) + ": " + FormatNumber(v[i]) +
                                    " " + m.unit + (outliers.count(i) ? " (outlier)" : ""),
                                outliers.count(i) > 0, false});
        }
        if (stats.count > 0) {
          strip.median = stats.median;
          strip.ci_low = stats.median_ci_low;
          strip.ci_high = stats.median_ci_high;
        }
      }
      if (has_w) {
        const std::vector<double>& v = wit->second.values;
        for (std::size_t i = 0; i < v.size(); ++i) {
          if (!std::isfinite(v[i])) continue;
          strip.dots.push_back(
              {v[i], "warm-up " + std::to_string(i + 1) + ": " + FormatNumber(v[i]) + " " + m.unit,
               false, true});
        }
      }
      strips.push_back(std::move(strip));
    }
    out += "<div class=\"plot\"><h4>" + Esc(m.benchmark) + " &middot; " + Esc(m.metric) +
           (m.unit.empty() ? "" : " (" + Esc(m.unit) + ")") + "</h4>\n";
    if (strips.empty()) {
      out += "<p class=\"note\">No values.</p></div>\n";
      continue;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& s : strips) {
      for (const auto& d : s.dots) lo = std::min(lo, d.value), hi = std::max(hi, d.value);
      for (double v : {s.ci_low, s.ci_high, s.median}) {
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      }
    }
    auto [xlo, xhi] = Padded(lo, hi, 0.05);
    if (!std::isfinite(lo)) xlo = 0, xhi = 1;
    const double plot_w = std::max(100, width - static_cast<int>(label_w) + kLeft);
    const double x0 = label_w, top = 4;
    const double h = row_h * static_cast<double>(strips.size());
    const Scale x{xlo, xhi, x0, x0 + plot_w};
    out += "<svg width=\"" + C(x0 + plot_w + kRight) + "\" height=\"" + C(top + h + 34) +
           "\" role=\"img\">";
    out += Background(x0, top, plot_w, h);
    XAxis(out, x, top + h, top, m.unit);
    for (std::size_t i = 0; i < strips.size(); ++i) {
      const Strip& s = strips[i];
      const double y0 = top + row_h * static_cast<double>(i);
      const double yc = y0 + row_h / 2;
      if (i > 0) {
        out += "<line class=\"grid\" x1=\"" + C(x0) + "\" x2=\"" + C(x0 + plot_w) + "\" y1=\"" +
               C(y0) + "\" y2=\"" + C(y0) + "\"/>";
      }
      const std::string label = Shorten(s.group, 22);
      out += "<text class=\"lab\" x=\"" + C(x0 - 6) + "\" y=\"" + C(yc + 4) +
             "\" text-anchor=\"end\"><title>" + Esc(s.group) + "</title>" + Esc(label) + "</text>";
      if (std::isfinite(s.ci_low) && std::isfinite(s.ci_high)) {
        out += "<rect class=\"ci\" x=\"" + C(x(s.ci_low)) + "\" y=\"" + C(y0 + 3) + "\" width=\"" +
               C(std::max(1.0, x(s.ci_high) - x(s.ci_low))) + "\" height=\"" + C(row_h - 6) +
               "\"><title>95% CI of the median: [" + Esc(FormatNumber(s.ci_low)) + ", " +
               Esc(FormatNumber(s.ci_high)) + "]</title></rect>";
      }
      if (std::isfinite(s.median)) {
        out += "<line class=\"med\" x1=\"" + C(x(s.median)) + "\" x2=\"" + C(x(s.median)) +
               "\" y1=\"" + C(y0 + 3) + "\" y2=\"" + C(y0 + row_h - 3) + "\"><title>median " +
               Esc(FormatNumber(s.median)) + "</title></line>";
      }
      // Deterministic jitter (golden-ratio sequence) keeps equal values apart.
      for (std::size_t k = 0; k < s.dots.size(); ++k) {
        const Dot& d = s.dots[k];
        const double j = std::fmod(static_cast<double>(k) * 0.6180339887498949, 1.0) - 0.5;
        out += std::string("<circle class=\"dot") + (d.outlier ? " out" : "") +
               (d.warmup ? " warm" : "") + "\" cx=\"" + C(x(d.value)) + "\" cy=\"" +
               C(yc + j * (row_h - 14)) + "\" r=\"4\"><title>" + Esc(d.title) + "</title></circle>";
      }
      if (s.nonfinite > 0) {
        out += "<text class=\"lab\" x=\"" + C(x0 + plot_w - 4) + "\" y=\"" + C(y0 + 12) +
               "\" text-anchor=\"end\">" + std::to_string(s.nonfinite) + " non-finite</text>";
      }
    }
    out += Border(x0, top, plot_w, h) + "</svg></div>\n";
  }
}

// ----- Time series ---------------------------------------------------------------------------

struct Pt {
  std::int64_t t;
  double v;
};

/// Draws one run's series at pixel resolution: per bucket (plot_width of them over [t0, t1]) the
/// minimum and the maximum, in the order they were taken. A non-finite value breaks the line.
/// Appends the pieces of line to `lines`.
void Downsample(const StoredSeries& s, std::int64_t t0, std::int64_t t1, int buckets,
                std::vector<std::vector<Pt>>& lines) {
  const std::size_t n = std::min(s.timestamp_ns.size(), s.value.size());
  if (n == 0) return;
  std::vector<std::size_t> order;
  const bool sorted = std::is_sorted(s.timestamp_ns.begin(), s.timestamp_ns.begin() + n);
  if (!sorted) {
    order.resize(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return s.timestamp_ns[a] < s.timestamp_ns[b];
    });
  }
  const double span = static_cast<double>(std::max<std::int64_t>(1, t1 - t0));
  std::vector<Pt> current;
  auto close = [&] {
    if (current.size() == 1) current.push_back(current.front());  // a dot (round caps)
    if (!current.empty()) lines.push_back(std::move(current));
    current.clear();
  };
  auto at = [&](std::size_t k) { return sorted ? k : order[k]; };  // k-th in time order
  // The open bucket: its lowest and highest value, by position in time order.
  long bucket = -1;
  bool has = false, gap_before = false, gap_after = false;
  std::size_t kmin = 0, kmax = 0;
  auto flush = [&] {
    if (gap_before) close();
    if (has) {
      const std::size_t a = at(std::min(kmin, kmax)), b = at(std::max(kmin, kmax));
      current.push_back({s.timestamp_ns[a], s.value[a]});
      if (b != a) current.push_back({s.timestamp_ns[b], s.value[b]});
    }
    if (gap_after) close();
    has = gap_before = gap_after = false;
  };
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = at(k);
    const double f = static_cast<double>(s.timestamp_ns[i] - t0) / span * buckets;
    const long b = std::clamp(static_cast<long>(std::floor(f)), 0L, static_cast<long>(buckets) - 1);
    if (b != bucket) {
      flush();
      bucket = b;
    }
    const double v = s.value[i];
    if (!std::isfinite(v)) {
      (has ? gap_after : gap_before) = true;
      continue;
    }
    // At equal values the earlier sample stays.
    if (!has) {
      kmin = kmax = k;
      has = true;
    } else {
      if (v < s.value[at(kmin)]) kmin = k;
      if (v > s.value[at(kmax)]) kmax = k;
    }
  }
  flush();
  close();
}

/// One metric of one benchmark: per machine group, per label set (the run's own labels left
/// out), that line's series, one per run.
struct LinePlot {
  std::string unit;
  std::map<std::string, std::map<std::string, std::vector<const StoredSeries*>, NaturalOrder>>
      groups;
};

/// The lines one panel draws, downsampled.
struct Panel {
  std::string group;
  std::vector<std::string> names;
  std::vector<std::vector<std::vector<Pt>>> lines;  // per line, its pieces
  std::size_t not_drawn = 0;
};

/// A run's span on the wall clock; end from the wall time when the end is missing.
std::pair<std::int64_t, std::int64_t> RunSpan(const RunRecord& r) {
  const std::int64_t start = r.exit.start_ns;
  const std::int64_t end = r.exit.end_ns > start
                               ? r.exit.end_ns
                               : start + std::max<std::int64_t>(0, r.exit.wall_time_ns);
  return {start, end};
}

void TimeSeries(std::string& out, const ReportInput& in, int width) {
  out += "<h2 id=\"timeseries\">Time series</h2>\n";
  // The plan's clock starts at its first run (or its first sample, when no run has a start).
  std::int64_t plan_t0 = std::numeric_limits<std::int64_t>::max();
  std::int64_t first_sample = std::numeric_limits<std::int64_t>::max();
  for (const auto& r : in.runs) {
    if (r.record.exit.start_ns > 0) plan_t0 = std::min(plan_t0, r.record.exit.start_ns);
  }
  std::vector<std::string> groups;  // in the order they first ran
  for (const auto& r : in.runs) {
    const std::string g = MachineGroup(r.record);
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  const bool several = groups.size() > 1;

  // Benchmarks in run order; per benchmark, metric -> plot, its runs and their time span.
  std::vector<std::string> benchmarks;
  std::map<std::string, std::map<std::string, LinePlot>> plots;
  std::map<std::string, std::vector<const RunRecord*>> bench_runs;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> bench_span;
  // Labels every sample of a run carries: not what tells one line from another.
  static const std::set<std::string> kRunKeys = {"run_id",    "plan",         "plan_run_id",
                                                 "benchmark", "repetition",   "warmup",
                                                 "machine",   "machine_group"};
  for (const auto& r : in.runs) {
    const std::string& b = r.record.benchmark;
    if (!bench_runs.count(b)) benchmarks.push_back(b);
    bench_runs[b].push_back(&r.record);
    auto& span = bench_span
                     .try_emplace(b, std::numeric_limits<std::int64_t>::max(),
                                  std::numeric_limits<std::int64_t>::min())
                     .first->second;
    const auto [start, end] = RunSpan(r.record);
    if (start > 0) {
      span.first = std::min(span.first, start);
      span.second = std::max(span.second, end);
    }
    const std::string group = MachineGroup(r.record);
    for (const auto& s : r.series) {
      const std::size_t n = std::min(s.timestamp_ns.size(), s.value.size());
      if (n == 0) continue;
      const auto [lo, hi] = std::minmax_element(s.timestamp_ns.begin(), s.timestamp_ns.begin() + n);
      span.first = std::min(span.first, *lo);
      span.second = std::max(span.second, *hi);
      first_sample = std::min(first_sample, *lo);
      Labels own;
      for (const auto& [k, v] : s.labels) {
        if (kRunKeys.count(k) || r.record.labels.count(k)) continue;
        own.emplace(k, v);
      }
      LinePlot& plot = plots[b][s.metric];
      if (plot.unit.empty()) plot.unit = s.unit;
      plot.groups[group][LabelText(own)].push_back(&s);
    }
  }
  if (plots.empty()) {
    out += "<p class=\"note\">No metric stream samples were stored for these runs.</p>\n";
    return;
  }
  if (plan_t0 == std::numeric_limits<std::int64_t>::max()) plan_t0 = first_sample;
  out += "<p class=\"note\">x: seconds since the plan&#39;s first run started";
  if (several) out += "; one panel per machine, on the same axes";
  out +=
      ". Bands are the runs (grey: warm-up, blue: measured, red: not ok). Lines are drawn at "
      "the minimum and the maximum of each pixel; gaps are non-finite values. Cumulative "
      "counters (CPU seconds, bytes since boot) are drawn as their rate per second.</p>\n";

  const double plot_h = 150, top = 4;
  const double w = width;
  for (const auto& b : benchmarks) {
    auto pit = plots.find(b);
    if (pit == plots.end()) continue;
    const std::int64_t t0 = bench_span[b].first;
    const std::int64_t t1 = std::max(bench_span[b].second, t0 + 1);
    const Scale x{static_cast<double>(t0 - plan_t0) / 1e9, static_cast<double>(t1 - plan_t0) / 1e9,
                  kLeft, kLeft + w};
    auto xt = [&](std::int64_t t) { return x(static_cast<double>(t - plan_t0) / 1e9); };
    out += "<details open><summary>" + Esc(b) + " <span class=\"note\">(" +
           std::to_string(pit->second.size()) + " metrics)</span></summary>\n";
    for (const auto& [metric, plot] : pit->second) {
      // Downsample what is drawn, then scale y to what it holds, the same for every machine.
      std::vector<Panel> panels;
      double lo = INFINITY, hi = -INFINITY;
      for (const auto& g : groups) {
        auto git = plot.groups.find(g);
        if (git == plot.groups.end()) continue;
        Panel panel;
        panel.group = g;
        for (const auto& [name, parts] : git->second) {
          if (static_cast<int>(panel.lines.size()) == kMaxLines) {
            ++panel.not_drawn;
            continue;
          }
          std::vector<std::vector<Pt>> pieces;
          for (const StoredSeries* s : parts) Downsample(*s, t0, t1, width, pieces);
          for (const auto& piece : pieces) {
            for (const Pt& p : piece) lo = std::min(lo, p.v), hi = std::max(hi, p.v);
          }
          panel.lines.push_back(std::move(pieces));
          panel.names.push_back(name);
        }
        panels.push_back(std::move(panel));
      }
      auto [ylo, yhi] = Padded(lo, hi, 0.05);
      if (!std::isfinite(lo)) ylo = 0, yhi = 1;
      const Scale y{ylo, yhi, top + plot_h, top};
      out += "<div class=\"plot\"><h4>" + Esc(metric) +
             (plot.unit.empty() ? "" : " (" + Esc(plot.unit) + ")") + "</h4>\n";
      for (const Panel& panel : panels) {
        if (several) out += "<div class=\"machine\">" + Esc(panel.group) + "</div>";
        out += "<svg width=\"" + C(kLeft + w + kRight) + "\" height=\"" + C(top + plot_h + 34) +
               "\" role=\"img\">";
        out += Background(kLeft, top, w, plot_h);
        // The runs' phases on this machine; their labels go on top of the lines.
        std::string labels;
        for (const RunRecord* r : bench_runs[b]) {
          const auto [start, end] = RunSpan(*r);
          if (start <= 0 || MachineGroup(*r) != panel.group) continue;
          const double bx0 = std::max<double>(kLeft, xt(start));
          const double bx1 = std::min<double>(kLeft + w, xt(end));
          const char* cls = r->status != kRunOk ? "band-f" : r->warmup ? "band-w" : "band-m";
          out += std::string("<rect class=\"") + cls + "\" x=\"" + C(bx0) + "\" y=\"" + C(top + 1) +
                 "\" width=\"" + C(std::max(0.5, bx1 - bx0)) + "\" height=\"" + C(plot_h - 1) +
                 "\"><title>" + Esc(RunName(*r) + " (" + r->status + ")") + "</title></rect>";
          if (bx1 - bx0 >= 18) {
            const std::string label = (r->warmup ? "W" : "#") + std::to_string(r->repetition + 1);
            labels += "<text class=\"band-lab\" x=\"" + C(bx0 + 3) + "\" y=\"" + C(top + 12) +
                      "\">" + Esc(label) + "</text>";
          }
        }
        YAxis(out, y, kLeft, kLeft + w);
        XAxis(out, x, top + plot_h, top, "s");
        for (std::size_t l = 0; l < panel.lines.size(); ++l) {
          for (const auto& piece : panel.lines[l]) {
            out += "<polyline stroke=\"" + std::string(kPalette[l]) + "\" points=\"";
            // A level stretch needs only its ends: points between two at the same height (as
            // written) are left out; flat and stepped series shrink to a few points.
            std::vector<std::string> ys(piece.size());
            for (std::size_t k = 0; k < piece.size(); ++k) ys[k] = C(y(piece[k].v));
            bool first = true;
            for (std::size_t k = 0; k < piece.size(); ++k) {
              if (k > 0 && k + 1 < piece.size() && ys[k] == ys[k - 1] && ys[k] == ys[k + 1]) {
                continue;
              }
              if (!first) out += ' ';
              first = false;
              out += C(xt(piece[k].t));
              out += ',';
              out += ys[k];
            }
            out += "\"/>";
          }
        }
        out += labels + Border(kLeft, top, w, plot_h) + "</svg>";
        // A legend when the lines need telling apart.
        if (panel.names.size() > 1 || (!panel.names.empty() && !panel.names.front().empty())) {
          out += "<div class=\"legend\">";
          for (std::size_t l = 0; l < panel.names.size(); ++l) {
            out += "<span class=\"sw\" style=\"background:" + std::string(kPalette[l]) +
                   "\"></span>" + Esc(panel.names[l].empty() ? metric : panel.names[l]) + " ";
          }
          if (panel.not_drawn > 0) {
            out += "<span class=\"note\">and " + std::to_string(panel.not_drawn) +
                   " more series not drawn</span>";
          }
          out += "</div>";
        }
      }
      out += "</div>\n";
    }
    out += "</details>\n";
  }
}

// ----- Baseline ------------------------------------------------------------------------------

const char* VerdictClass(const std::string& verdict) {
  if (verdict == "slower") return "slower";
  if (verdict == "faster") return "faster";
  if (verdict == "no change") return "same";
  return "na";
}

void Baseline(std::string& out, const ReportInput& in, int width) {
  if (in.comparison.empty()) return;
  out += "<h2 id=\"baseline\">Baseline</h2>\n<p class=\"note\">Against " + Esc(in.baseline_source) +
         ". Change of the median with its 95&#8239;% bootstrap interval; p from a two-sided "
         "Mann-Whitney U test.</p>\n";
  out +=
      "<table><thead><tr><th>benchmark</th><th>metric</th><th>unit</th><th>runs</th>"
      "<th>baseline median</th><th>candidate median</th><th>change</th>"
      "<th>95&#8239;% CI of the change</th><th>p</th><th>verdict</th><th>note</th></tr>"
      "</thead><tbody>\n";
  for (const auto& c : in.comparison) {
    const SampleComparison& s = c.comparison;
    const char* cls = VerdictClass(c.verdict);
    out += "<tr><td>" + Esc(c.benchmark) + "</td><td>" + Esc(c.metric) + "</td><td>" + Esc(c.unit) +
           "</td><td class=\"n\">" + std::to_string(c.baseline.count) + " / " +
           std::to_string(c.candidate.count) + "</td><td class=\"n\">" + Num(s.baseline_median) +
           "</td><td class=\"n\">" + Num(s.candidate_median) + "</td><td class=\"n\">" +
           FormatPercent(s.change) + "</td><td class=\"n\">";
    if (std::isfinite(s.change_ci_low) && std::isfinite(s.change_ci_high)) {
      out += "[" + FormatPercent(s.change_ci_low) + ", " + FormatPercent(s.change_ci_high) + "]";
    } else {
      out += "&ndash;";
    }
    out += "</td><td class=\"n\">" +
           (std::isfinite(s.test.p_value) ? Fmt("%.3g", s.test.p_value) : std::string("n/a")) +
           "</td><td class=\"v-" + cls + "\">" + Esc(c.verdict.empty() ? "n/a" : c.verdict) +
           "</td><td class=\"note\">" + Esc(c.note) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";

  // Forest plot: one row per comparison, change in percent.
  double lo = 0, hi = 0;
  for (const auto& c : in.comparison) {
    for (double v :
         {c.comparison.change, c.comparison.change_ci_low, c.comparison.change_ci_high}) {
      if (std::isfinite(v)) lo = std::min(lo, v * 100), hi = std::max(hi, v * 100);
    }
  }
  auto [xlo, xhi] = Padded(lo, hi, 0.08);
  const double label_w = 260, row_h = 22, top = 4;
  const double plot_w = std::max(200, width + kLeft - static_cast<int>(label_w));
  const double h = row_h * static_cast<double>(in.comparison.size());
  const Scale x{xlo, xhi, label_w, label_w + plot_w};
  out += "<div class=\"plot\"><h4>Change of the median (%)</h4><svg width=\"" +
         C(label_w + plot_w + kRight) + "\" height=\"" + C(top + h + 34) + "\" role=\"img\">";
  out += Background(label_w, top, plot_w, h);
  XAxis(out, x, top + h, top, "% change");
  out += "<line class=\"zero\" x1=\"" + C(x(0)) + "\" x2=\"" + C(x(0)) + "\" y1=\"" + C(top) +
         "\" y2=\"" + C(top + h) + "\"/>";
  for (std::size_t i = 0; i < in.comparison.size(); ++i) {
    const auto& c = in.comparison[i];
    const SampleComparison& s = c.comparison;
    const double yc = top + row_h * (static_cast<double>(i) + 0.5);
    const std::string name = c.benchmark + " \xC2\xB7 " + c.metric;
    out += "<text class=\"lab\" x=\"" + C(label_w - 6) + "\" y=\"" + C(yc + 4) +
           "\" text-anchor=\"end\"><title>" + Esc(name) + "</title>" + Esc(Shorten(name, 40)) +
           "</text>";
    const std::string cls = std::string("fr-") + VerdictClass(c.verdict);
    if (std::isfinite(s.change_ci_low) && std::isfinite(s.change_ci_high)) {
      const double a = x(s.change_ci_low * 100), b = x(s.change_ci_high * 100);
      out += "<rect class=\"" + cls + "\" x=\"" + C(std::min(a, b)) + "\" y=\"" + C(yc - 2.5) +
             "\" width=\"" + C(std::max(1.0, std::fabs(b - a))) + "\" height=\"5\"/>";
    }
    if (std::isfinite(s.change)) {
      out += "<circle class=\"" + cls + "\" cx=\"" + C(x(s.change * 100)) + "\" cy=\"" + C(yc) +
             "\" r=\"4.5\"><title>" + Esc(c.verdict.empty() ? "n/a" : c.verdict) + ": " +
             Esc(FormatPercent(s.change)) + "</title></circle>";
    } else {
      out += "<text class=\"lab\" x=\"" + C(label_w + 6) + "\" y=\"" + C(yc + 4) + "\">n/a</text>";
    }
  }
  out += Border(label_w, top, plot_w, h) + "</svg></div>\n";
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
