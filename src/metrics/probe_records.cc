#include "metrics/probe_records.h"

#include <cstring>
#include <utility>

#include "bitfusion/log.h"

namespace bitfusion::internal {
namespace {

namespace wire = probe_wire;

std::string ExitText(const wire::End& end) {
  if (!end.has_exit) return "the probe was stopped";
  if (end.signal != 0) {
    return "the probed command was killed by signal " + std::to_string(end.signal);
  }
  return "the probed command exited with code " + std::to_string(end.exit_code);
}

}  // namespace

void ProbeRecords::End(const std::string& reason) {
  if (ended_) return;
  ended_ = true;
  end_reason_ = reason;
}

std::vector<std::pair<probe_wire::Pong, std::int64_t>> ProbeRecords::TakePongs() {
  return std::exchange(pongs_, {});
}

bool ProbeRecords::Handle(const unsigned char* data, std::size_t size, std::size_t& used) {
  const std::string& name = options_.name;
  std::string error;
  while (true) {
    wire::Record record;
    std::size_t consumed = 0;
    const wire::Next next = wire::NextRecord(data + used, size - used, record, consumed, error);
    if (next == wire::Next::kNeedMore) return true;
    if (next == wire::Next::kError) break;
    used += consumed;
    if (!hello_ && record.type != wire::RecordType::kHello) {
      error = "the first record is not HELLO (type " +
              std::to_string(static_cast<int>(record.type)) +
              "): the peer is not a bitfusion-probe";
      break;
    }
    switch (record.type) {
      case wire::RecordType::kHello: {
        wire::Hello hello;
        if (!wire::ParseHello(record, hello, error)) goto corrupt;
        if (hello_) {
          error = "a second HELLO record";
          goto corrupt;
        }
        hello_ = true;
        LogAt(LogLevel::kDebug, "probe ", name, " connected: pid ", hello.probe_pid, " in ",
              hello.hostname, ", cgroup ", hello.cgroup, ", every ",
              FormatDuration(std::chrono::nanoseconds(hello.interval_ns)));
        break;
      }
      case wire::RecordType::kDeclare: {
        wire::Declare d;
        if (!wire::ParseDeclare(record, d, error)) goto corrupt;
        if (d.index >= wire::kMaxSeries) {
          error = "more than " + std::to_string(wire::kMaxSeries) + " series declared";
          goto corrupt;
        }
        if (d.index != declared_) {
          error = "DECLARE of series " + std::to_string(d.index) + " where series " +
                  std::to_string(declared_) + " was due (series are declared in order)";
          goto corrupt;
        }
        Series s;
        s.metric = d.metric;
        s.unit = d.unit;
        s.counter = d.counter;
        declared_bytes_ += d.metric.size() + d.unit.size();
        for (std::size_t i = 0; i < d.label_count; ++i) {
          const std::string_view key = d.labels[i].key;
          if (key != "cpu" && key != "pid" && key != "comm") {
            error = "label \"" + std::string(key.substr(0, 64)) +
                    "\" is not one a probe sends (cpu, pid, comm)";
            goto corrupt;
          }
          declared_bytes_ += key.size() + d.labels[i].value.size();
          s.labels[std::string(key)] = std::string(d.labels[i].value);
        }
        if (declared_bytes_ > options_.max_label_bytes) {
          error =
              "series names and labels over " + std::to_string(options_.max_label_bytes) + " bytes";
          goto corrupt;
        }
        new_series_.push_back(std::move(s));
        ++declared_;
        break;
      }
      case wire::RecordType::kTick: {
        wire::Tick t;
        if (!wire::ParseTick(record, t, error)) goto corrupt;
        probe_cpu_ns_.store(t.probe_cpu_ns, std::memory_order_relaxed);
        ticks_.fetch_add(1, std::memory_order_relaxed);
        if (!have_tick_) {
          have_tick_ = true;
          probe_wall_minus_mono_ns_ = t.wall_ns - t.mono_ns;
        }
        if (pending_value_.size() + t.count > options_.max_pending_samples) {
          dropped_.fetch_add(t.count, std::memory_order_relaxed);
          if (!drop_warned_) {
            drop_warned_ = true;
            LogAt(LogLevel::kWarning, "probe ", name, ": ", options_.max_pending_samples,
                  " samples wait to be collected; later ones are dropped (counted) until the "
                  "metric stream collects them");
          }
          break;
        }
        for (std::uint32_t i = 0; i < t.count; ++i) {
          std::uint32_t series = 0;
          double value = 0;
          wire::TickValueAt(record, i, series, value);
          if (series >= declared_) {
            error = "TICK refers to series " + std::to_string(series) + " but only " +
                    std::to_string(declared_) + " were declared";
            goto corrupt;
          }
          pending_index_.push_back(series);
          pending_wall_.push_back(t.wall_ns);
          pending_mono_.push_back(t.mono_ns);
          pending_value_.push_back(value);
        }
        break;
      }
      case wire::RecordType::kEnd: {
        wire::End end;
        if (!wire::ParseEnd(record, end, error)) goto corrupt;
        probe_cpu_ns_.store(end.probe_cpu_ns, std::memory_order_relaxed);
        End("probe " + name + " ended: " + ExitText(end));
        clean_end_ = true;
        return true;
      }
      case wire::RecordType::kPong: {
        wire::Pong pong;
        if (!options_.accept_pongs) {
          error = "a PONG record, but no PING was sent";
          goto corrupt;
        }
        if (!wire::ParsePong(record, pong, error)) goto corrupt;
        pongs_.emplace_back(pong, receive_wall_ns_);
        break;
      }
      case wire::RecordType::kPing:
        error = "a PING record, which only the host sends";
        goto corrupt;
    }
  }
corrupt:
  if (error_.empty()) error_ = "probe " + name + " sent a corrupt stream: " + error;
  End("probe " + name + " ended after a corrupt stream");
  return false;
}

Status ProbeRecords::Collect(SampleBatch& batch) {
  for (Series& s : new_series_) {
    for (const auto& [k, v] : options_.labels) s.labels[k] = v;
    to_batch_.push_back(batch.AddSeries(std::move(s)));
  }
  new_series_.clear();
  const std::size_t n = pending_value_.size();
  if (n > 0) {
    const std::size_t at = batch.size();
    batch.series_index.resize(at + n);
    batch.timestamp_ns.resize(at + n);
    batch.monotonic_ns.resize(at + n);
    batch.value.resize(at + n);
    for (std::size_t i = 0; i < n; ++i) batch.series_index[at + i] = to_batch_[pending_index_[i]];
    if (shift_.wall_ns == 0 && shift_.mono_ns == 0) {
      std::memcpy(batch.timestamp_ns.data() + at, pending_wall_.data(), n * sizeof(std::int64_t));
      std::memcpy(batch.monotonic_ns.data() + at, pending_mono_.data(), n * sizeof(std::int64_t));
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        batch.timestamp_ns[at + i] = pending_wall_[i] + shift_.wall_ns;
        batch.monotonic_ns[at + i] = pending_mono_[i] + shift_.mono_ns;
      }
    }
    std::memcpy(batch.value.data() + at, pending_value_.data(), n * sizeof(double));
    pending_index_.clear();
    pending_wall_.clear();
    pending_mono_.clear();
    pending_value_.clear();
    return Status::OK();  // an end waits for the next call, so these samples are kept
  }
  if (!error_.empty() && !error_reported_) {
    error_reported_ = true;
    return IOError(error_);
  }
  if (ended_) return NotFoundError(end_reason_);
  return Status::OK();
}

}  // namespace bitfusion::internal
