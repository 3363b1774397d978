// Splits an output stream into lines for Container::Logs: without the newline, and a line longer
// than the runner's limit in pieces of that size, whether its newline comes with it or later
// (a slow reader gets both in one read). Shared by the process and Docker runners.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bitfusion {

class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max) : max_(max) {}

  /// Calls on_line(std::string_view) for every complete line or full piece in `data`; keeps the
  /// rest (at most `max` bytes) for the next call.
  template <class F>
  void Feed(std::string_view data, F&& on_line) {
    while (!data.empty()) {
      const auto nl = data.find('\n');
      const bool ends = nl != std::string_view::npos;
      partial_.append(ends ? data.substr(0, nl) : data);
      data.remove_prefix(ends ? nl + 1 : data.size());
      std::string_view pending(partial_);
      while (pending.size() > max_) {
        on_line(pending.substr(0, max_));
        pending.remove_prefix(max_);
      }
      if (ends) {
        on_line(pending);
        partial_.clear();
      } else {
        partial_.erase(0, partial_.size() - pending.size());
      }
    }
  }

  /// The last line when the stream ended without a newline.
  template <class F>
  void Finish(F&& on_line) {
    if (!partial_.empty()) on_line(std::string_view(partial_));
    partial_.clear();
  }

 private:
  std::size_t max_;
  std::string partial_;
};

}  // namespace bitfusion
