#include "experiment/report_format.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "experiment/number_format.h"

namespace bitfusion::internal::report {

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
  return FormatBytes(b);
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

// ---------------------------------------------------------------------------------------------
// Axes.

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

}  // namespace bitfusion::internal::report
