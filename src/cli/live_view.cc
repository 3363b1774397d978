#include "cli/live_view.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string_view>

namespace bitfusion::cli {
namespace {

std::string JoinLabels(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

// Compact, fixed-width rendering of a value: engineering prefixes for big and small numbers.
std::string Format(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  const double a = std::fabs(v);
  char buffer[32];
  if (a != 0 && (a >= 1e6 || a < 1e-3)) {
    static constexpr std::string_view kBig = "kMGTPE";
    static constexpr std::string_view kSmall = "munp";
    int exp = static_cast<int>(std::floor(std::log10(a) / 3));
    if (exp > 0) exp = std::min<int>(exp, kBig.size());
    if (exp < 0) exp = std::max<int>(exp, -static_cast<int>(kSmall.size()));
    const double scaled = v / std::pow(1000.0, exp);
    const char prefix = exp > 0 ? kBig[exp - 1] : kSmall[-exp - 1];
    std::snprintf(buffer, sizeof buffer, "%.3f%c", scaled, prefix);
  } else if (a == std::floor(a) && a < 1e6) {
    std::snprintf(buffer, sizeof buffer, "%.0f", v);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3f", v);
  }
  return buffer;
}

}  // namespace

LiveView::LiveView(std::FILE* out, int rows, int columns)
    : out_(out), rows_(rows), columns_(columns) {}

void LiveView::OnBatch(const SampleBatch& batch) {
  // The newest sample of each series in this batch; earlier ones only feed the rate.
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    std::string labels = JoinLabels(s.labels);
    std::string key = s.metric + '\0' + labels;
    auto [it, inserted] = table_.try_emplace(std::move(key));
    Row& row = it->second;
    if (inserted) {
      row.metric = s.metric;
      row.labels = std::move(labels);
      row.unit = s.unit;
      row.counter = s.counter;
      row.base = batch.value[i];
      row.base_mono_ns = batch.monotonic_ns[i];
    } else if (batch.monotonic_ns[i] <= row.mono_ns) {
      continue;
    }
    row.value = batch.value[i];
    row.mono_ns = batch.monotonic_ns[i];
  }
}

void LiveView::Render(const StreamOverhead& o, double elapsed_s, bool final_frame) {
  int rows = rows_, columns = columns_;
  if (rows <= 0 || columns <= 0) {
    winsize ws{};
    if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
      rows = ws.ws_row;
      columns = ws.ws_col;
    } else {
      rows = 24;
      columns = 80;
    }
  }

  const double cpu_ns = static_cast<double>(o.sampler_cpu_ns + o.delivery_cpu_ns + o.source_cpu_ns);
  const double core_pct = elapsed_s > 0 ? cpu_ns / (elapsed_s * 1e9) * 100 : 0;
  std::string frame = "\x1b[H\x1b[2J";  // home, clear
  char header[256];
  std::snprintf(header, sizeof header,
                "bitfusion metrics  %.1f s  %lld ticks (%lld missed)  %lld samples  %lld dropped"
                "  observer %.3f%% of a core\n",
                elapsed_s, static_cast<long long>(o.ticks), static_cast<long long>(o.ticks_missed),
                static_cast<long long>(o.samples), static_cast<long long>(o.samples_dropped),
                core_pct);
  frame += header;

  std::lock_guard lock(mu_);
  std::size_t metric_width = 6, label_width = 6;
  for (const auto& [key, row] : table_) {
    metric_width = std::max(metric_width, row.metric.size());
    label_width = std::max(label_width, row.labels.size());
  }
  label_width = std::min<std::size_t>(label_width, 40);
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-*s  %14s  %s\n", static_cast<int>(metric_width),
                "METRIC", static_cast<int>(label_width), "LABELS", "VALUE", "UNIT");
  frame += line;

  // Two header lines; one for the "more" line when cut.
  const std::size_t room = rows > 3 ? static_cast<std::size_t>(rows - 3) : 1;
  std::size_t shown = 0;
  for (auto& [key, row] : table_) {
    if (shown == room && table_.size() > room + 1) break;
    std::string unit = row.unit;
    // A counter shows its rate since the previous frame; "-" after one reading or a reset (a
    // restarted container).
    double shown_value = row.value;
    bool known = true;
    if (row.counter) {
      unit += "/s";
      known = row.mono_ns > row.base_mono_ns && row.value >= row.base;
      if (known) {
        shown_value =
            (row.value - row.base) / (static_cast<double>(row.mono_ns - row.base_mono_ns) / 1e9);
      }
      row.base = row.value;
      row.base_mono_ns = row.mono_ns;
    }
    const std::string text = known ? Format(shown_value) : std::string(1, '-');
    std::string labels = row.labels;
    if (labels.size() > label_width) {
      labels.resize(label_width - 1);
      labels += '~';
    }
    int n = std::snprintf(line, sizeof line, "%-*s  %-*s  %14s  %s", static_cast<int>(metric_width),
                          row.metric.c_str(), static_cast<int>(label_width), labels.c_str(),
                          text.c_str(), unit.c_str());
    if (n > columns) line[std::max(columns, 0)] = '\0';
    frame += line;
    frame += '\n';
    ++shown;
  }
  if (shown < table_.size()) {
    std::snprintf(line, sizeof line, "... %zu more series (a taller terminal, or --sink)\n",
                  table_.size() - shown);
    frame += line;
  }
  if (final_frame) frame += "\n";
  std::fwrite(frame.data(), 1, frame.size(), out_);
  std::fflush(out_);
}

}  // namespace bitfusion::cli
