// Human and machine summaries of a plan's results.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "bitfusion/experiment.h"
#include "experiment/number_format.h"
#include "experiment/statistics_json.h"

namespace bitfusion {

using internal::FormatNumber;
using internal::FormatPercent;
using internal::StatisticsJson;

std::string FormatSummaryTable(const PlanResult& result) {
  const std::vector<std::string> header = {"benchmark", "metric", "unit",   "runs",    "median",
                                           "95% CI",    "mean",   "stddev", "rsd",     "min",
                                           "p5",        "p95",    "max",    "outliers"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : result.summary) {
    const Statistics& st = m.stats;
    std::string ci = "-";
    if (st.count >= 2 && std::isfinite(st.median_ci_low)) {
      ci = FormatNumber(st.median_ci_low) + ".." + FormatNumber(st.median_ci_high);
    }
    std::set<std::size_t> outliers(st.mad_outliers.begin(), st.mad_outliers.end());
    outliers.insert(st.tukey_outliers.begin(), st.tukey_outliers.end());
    if (st.count == 0) {  // no successful run: nothing to show but that
      rows.push_back(
          {m.benchmark, m.metric, m.unit, "0", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    rows.push_back({m.benchmark, m.metric, m.unit, std::to_string(st.count),
                    FormatNumber(st.median), ci, FormatNumber(st.mean), FormatNumber(st.stddev),
                    st.count >= 2 ? FormatPercent(st.rsd, false) : "-", FormatNumber(st.min),
                    FormatNumber(st.p5), FormatNumber(st.p95), FormatNumber(st.max),
                    std::to_string(outliers.size())});
  }
  std::ostringstream out;
  std::vector<bool> left(header.size(), false);
  left[0] = left[1] = left[2] = true;
  out << internal::FormatTextTable(header, rows, left);
  // Nothing is dropped: outliers stay in every statistic above, and are named here.
  for (const auto& m : result.summary) {
    for (const auto& w : m.stats.warnings) {
      out << "warning: " << m.benchmark << " " << m.metric << ": " << w << "\n";
    }
  }
  for (const auto& [benchmark, why] : result.repetitions_stopped) {
    out << "repetitions: " << benchmark << ": " << why << "\n";
  }
  return out.str();
}

std::string FormatSummaryJson(const PlanResult& result) {
  boost::json::object out;
  out["plan"] = result.plan;
  out["plan_run_id"] = result.plan_run_id;
  out["interrupted"] = result.interrupted;
  out["failed_runs"] = result.failed_runs;
  boost::json::array summary;
  for (const auto& m : result.summary) {
    boost::json::object row = {{"benchmark", m.benchmark},
                               {"metric", m.metric},
                               {"unit", m.unit},
                               {"runs", m.stats.count}};
    for (auto& field : StatisticsJson(m.stats)) row.emplace(field.key(), std::move(field.value()));
    summary.push_back(std::move(row));
  }
  out["summary"] = std::move(summary);
  boost::json::object stopped;
  for (const auto& [benchmark, why] : result.repetitions_stopped) stopped[benchmark] = why;
  out["repetitions_stopped"] = std::move(stopped);
  boost::json::array runs;
  for (const auto& r : result.runs) {
    runs.push_back({{"run_id", r.run_id},
                    {"benchmark", r.benchmark},
                    {"repetition", r.repetition},
                    {"warmup", r.warmup},
                    {"status", r.status},
                    {"error", r.error},
                    {"wall_time_ns", r.exit.wall_time_ns},
                    {"observer_cpu_ns", r.overhead.cpu_ns},
                    {"samples", r.overhead.samples},
                    {"samples_dropped", r.overhead.samples_dropped}});
    const auto machine = r.labels.find("machine");
    if (machine != r.labels.end()) runs.back().as_object()["machine"] = machine->second;
  }
  out["runs"] = std::move(runs);
  // Where the runs ran (plans with machine groups): each machine and what its preflight found.
  boost::json::object machines;
  for (const auto& [name, m] : result.machines) {
    boost::json::object o = {{"id", m.id},
                             {"provider", m.provider},
                             {"type", m.type},
                             {"address", m.address.empty() ? m.ssh.host : m.address},
                             {"hostname", m.hostname},
                             {"zone", m.zone}};
    if (const auto f = result.preflight.find(name); f != result.preflight.end()) {
      const MachinePreflight& p = f->second;
      boost::json::array drivers;
      for (const auto& d : p.accelerator_drivers) drivers.push_back(boost::json::string(d));
      o["preflight"] = {{"ok", p.error.empty()},
                        {"error", p.error},
                        {"kernel", p.kernel},
                        {"engine", p.engine},
                        {"engine_version", p.engine_version},
                        {"storage_driver", p.storage_driver},
                        {"data_root", p.data_root},
                        {"free_inodes", p.free_inodes},
                        {"free_bytes", p.free_bytes},
                        {"accelerator_drivers", std::move(drivers)},
                        {"setup_steps", p.setup_steps},
                        {"setup_s", p.setup_s}};
    }
    machines[name] = std::move(o);
  }
  out["machines"] = std::move(machines);
  boost::json::array machine_errors;
  for (const auto& e : result.machine_errors) machine_errors.push_back(boost::json::string(e));
  out["machine_errors"] = std::move(machine_errors);
  boost::json::array errors;
  for (const auto& e : result.sink_errors) errors.push_back(boost::json::string(e));
  out["sink_errors"] = std::move(errors);
  boost::json::array sinks;
  for (const auto& sink : result.sinks) {
    boost::json::object o;
    o["uri"] = sink.uri;
    o["stored"] = sink.stored;
    o["samples_written"] = sink.counters.samples_written;
    o["runs_written"] = sink.counters.runs_written;
    o["samples_pending"] = sink.counters.samples_pending;
    o["runs_pending"] = sink.counters.runs_pending;
    o["samples_dropped"] = sink.counters.samples_dropped;
    if (!sink.spool.empty()) o["spool"] = sink.spool;
    sinks.push_back(std::move(o));
  }
  out["sinks"] = std::move(sinks);
  // Only plans with remote docker machines have this.
  if (!result.images.empty()) {
    boost::json::array images;
    for (const auto& d : result.images) {
      images.push_back({{"machine", d.machine},
                        {"image", d.image},
                        {"id", d.id},
                        {"method", d.method},
                        {"bytes", d.bytes},
                        {"seconds", d.seconds}});
    }
    out["images"] = std::move(images);
  }
  return boost::json::serialize(out);
}

std::string FormatProgressJson(const RunProgress& p) {
  boost::json::object o;
  o["event"] = p.started ? "run_started" : "run_finished";
  o["machine"] = p.machine;
  o["benchmark"] = p.benchmark;
  o["benchmark_index"] = p.benchmark_index;
  o["benchmarks"] = p.benchmarks;
  o["warmup"] = p.warmup;
  o["run"] = p.run;
  o["planned"] = p.warmup ? p.warmups : p.planned;
  if (p.target_rsd > 0) o["target_rsd"] = p.target_rsd;
  o["metric"] = p.metric;
  if (std::isfinite(p.last)) o["last"] = p.last;
  if (std::isfinite(p.rsd)) o["rsd"] = p.rsd;
  if (p.eta_ns >= 0) o["eta_s"] = static_cast<double>(p.eta_ns) / 1e9;
  if (p.record != nullptr) {
    o["run_id"] = p.record->run_id;
    o["status"] = p.record->status;
    if (!p.record->error.empty()) o["error"] = p.record->error;
  }
  if (!p.stopped.empty()) o["stopped"] = p.stopped;
  return boost::json::serialize(o);
}

}  // namespace bitfusion
