#include "experiment/report_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bitfusion/statistics.h"
#include "experiment/number_format.h"
#include "experiment/repetitions.h"
#include "experiment/report_format.h"

namespace bitfusion::internal::report {

// ----- Distributions -------------------------------------------------------------------------

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

namespace {

const char* VerdictClass(const std::string& verdict) {
  if (verdict == "slower") return "slower";
  if (verdict == "faster") return "faster";
  if (verdict == "no change") return "same";
  return "na";
}

}  // namespace

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

}  // namespace bitfusion::internal::report
