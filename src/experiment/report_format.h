// How the HTML report writes values, names and SVG axes: HTML escaping, numbers for tables and
// ticks, run and machine names, linear scales with round ticks, and the axes, background and
// frame every plot area has. Shared by the page (html_report.cc) and its plots (report_plots.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bitfusion/machine.h"
#include "bitfusion/run_record.h"

namespace bitfusion::internal::report {

/// Escapes for HTML text and for attribute values in double or single quotes.
std::string Esc(std::string_view s);
/// printf into a std::string.
__attribute__((format(printf, 1, 2))) std::string Fmt(const char* format, ...);
/// A coordinate: one decimal keeps the SVG small and is finer than a CSS pixel.
std::string C(double v);
/// A table number; an en dash when there is none.
std::string Num(double v);
/// An axis tick: short, with an SI prefix from 10 000 on ("12k", "1.5G").
std::string Tick(double v);
std::string Bytes(std::uint64_t b);
std::string Seconds(std::int64_t ns);
/// At most `max` bytes of `s`, cut between UTF-8 characters, with an ellipsis when cut.
std::string Shorten(const std::string& s, std::size_t max);
std::string LabelText(const Labels& labels);
/// Orders "cpu=2" before "cpu=10": digit runs compare as numbers.
bool NaturalLess(const std::string& a, const std::string& b);
struct NaturalOrder {
  bool operator()(const std::string& a, const std::string& b) const { return NaturalLess(a, b); }
};

/// What puts a run's strip side by side with others: its machine group, else its host.
std::string MachineGroup(const RunRecord& r);
std::string Accelerators(const MachineInfo& m);
/// The fields that tell two machines apart.
std::string Fingerprint(const MachineInfo& m);
std::string RunName(const RunRecord& r);

struct Scale {
  double lo = 0, hi = 1;  // data
  double p0 = 0, p1 = 1;  // pixels
  double operator()(double v) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

/// Widens [lo, hi] so that it is never empty, then pads it by `pad` of its width on each side.
std::pair<double, double> Padded(double lo, double hi, double pad);
/// Round values ("1, 2, 5 times a power of ten") inside [lo, hi], about `target` of them.
std::vector<double> NiceTicks(double lo, double hi, int target);

inline constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                           "#9467bd", "#8c564b", "#e377c2", "#17becf"};
inline constexpr int kMaxLines = 8;
inline constexpr int kLeft = 70;  // room for the y axis' labels
inline constexpr int kRight = 16;

/// An x axis along the bottom of a plot area, ticks and labels included.
void XAxis(std::string& out, const Scale& x, double y_bottom, double y_top,
           const std::string& title);
void YAxis(std::string& out, const Scale& y, double x_left, double x_right);
/// The plot area's background, drawn first.
std::string Background(double x0, double y0, double w, double h);
/// The plot area's frame, drawn last over everything in it, crisp (its colour is exact on screen).
std::string Border(double x0, double y0, double w, double h);

}  // namespace bitfusion::internal::report
