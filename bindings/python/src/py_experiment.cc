// Plans, inventory, comparisons and reports from Python: what the `bitfusion` command does, as
// functions returning the same data as its --json output.
#include <pybind11/functional.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <thread>

#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {
namespace {

py::object JsonToPython(const std::string& json) {
  return py::module_::import("json").attr("loads")(json);
}

std::vector<MachineInfo> Inventory(const std::string& provisioner_uri) {
  py::gil_scoped_release release;
  auto provisioner = Unwrap(ProvisionerFromUri(provisioner_uri));
  return Unwrap(provisioner->List());
}

// Runs the plan on a thread of its own while this one waits in short slices, so that Ctrl-C
// reaches Python: the plan is then cancelled as the command's Ctrl-C cancels it (the running
// benchmark stopped, what was measured stored, its record marked interrupted), and
// KeyboardInterrupt is raised once it has wound down.
py::object RunPlan(const std::string& spec_path, const std::vector<py::object>& sinks,
                   const std::vector<std::string>& program_dirs, std::optional<py::function> on_run,
                   std::optional<py::function> on_event) {
  ExperimentOptions options;
  std::vector<py::object> keep_alive;
  for (const py::object& sink : sinks) {
    if (py::isinstance<py::str>(sink)) {
      options.sinks.push_back(sink.cast<std::string>());
    } else if (py::isinstance<ResultSink>(sink)) {
      options.sink_objects.push_back(sink.cast<std::shared_ptr<ResultSink>>());
      keep_alive.push_back(sink);
    } else {
      throw py::type_error("sinks must be URIs or bitfusion.ResultSink objects, not " +
                           std::string(py::str(py::type::of(sink).attr("__name__"))));
    }
  }
  options.program_dirs = program_dirs;
  if (on_run) {
    Callback cb(*on_run, "bitfusion run_plan on_run callback");
    options.on_run = [cb](const RunRecord& r) { cb(r); };
  }
  if (on_event) {
    Callback cb(*on_event, "bitfusion run_plan on_event callback");
    options.on_event = [cb](const Event& e) { cb(e); };
  }
  std::atomic<bool> cancel{false};
  options.cancel = &cancel;

  Result<std::string> summary = InternalError("not run");
  std::atomic<bool> done{false};
  {
    py::gil_scoped_release release;
    std::thread worker([&] {
      summary = [&]() -> Result<std::string> {
        BITFUSION_ASSIGN_OR_RETURN(auto plan, LoadPlan(spec_path));
        BITFUSION_ASSIGN_OR_RETURN(auto result, bitfusion::RunPlan(plan, options));
        return FormatSummaryJson(result);
      }();
      done = true;
    });
    bool interrupted = false;
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      py::gil_scoped_acquire gil;
      if (!interrupted && PyErr_CheckSignals() != 0) {
        // Keep the KeyboardInterrupt pending in this thread until the plan has wound down.
        interrupted = true;
        cancel = true;
      }
    }
    worker.join();
    if (interrupted) {
      py::gil_scoped_acquire gil;
      throw py::error_already_set();
    }
  }
  return JsonToPython(Unwrap(std::move(summary)));
}

CompareOptions CompareOptionsFrom(double threshold, double alpha,
                                  const std::map<std::string, std::string>& better) {
  CompareOptions options;
  if (!(threshold >= 0 && threshold < 1)) {
    Raise(InvalidArgumentError("threshold must be a fraction in [0, 1), e.g. 0.01"));
  }
  if (!(alpha > 0 && alpha < 1)) Raise(InvalidArgumentError("alpha must be in (0, 1), e.g. 0.05"));
  options.threshold = threshold;
  options.alpha = alpha;
  for (const auto& [metric, way] : better) {
    if (way != "lower" && way != "higher") {
      Raise(InvalidArgumentError("better[\"" + metric +
                                 "\"] must be \"lower\" or \"higher\", "
                                 "not \"" +
                                 way + "\""));
    }
    options.better[metric] = way == "lower" ? Better::kLower : Better::kHigher;
  }
  return options;
}

py::object Compare(const std::string& baseline, const std::string& candidate, double threshold,
                   double alpha, const std::map<std::string, std::string>& better) {
  const auto options = CompareOptionsFrom(threshold, alpha, better);
  std::string json;
  {
    py::gil_scoped_release release;
    json = FormatComparisonJson(Unwrap(CompareResults(baseline, candidate, options)));
  }
  return JsonToPython(json);
}

py::object Report(const std::string& results, const std::string& output,
                  const std::string& baseline, const std::string& title, int width,
                  double threshold, double alpha,
                  const std::map<std::string, std::string>& better) {
  ReportOptions options;
  options.baseline = baseline;
  options.title = title;
  options.plot_width = width;
  options.compare = CompareOptionsFrom(threshold, alpha, better);
  std::string html;
  std::string comparison;
  {
    py::gil_scoped_release release;
    html = Unwrap(RenderReport(results, options));
    if (!baseline.empty()) {
      comparison = FormatComparisonJson(Unwrap(CompareResults(baseline, results, options.compare)));
    }
    if (!output.empty()) {
      std::ofstream out(output, std::ios::binary | std::ios::trunc);
      out << html;
      out.close();
      if (!out) Raise(ErrnoError(errno, "writing " + output));
    }
  }
  py::dict out;
  auto selection = Unwrap(SelectResults(results));
  out["results"] = selection.store->location() + "@" + selection.plan_run.plan_run_id;
  out["plan"] = selection.plan_run.plan;
  out["runs"] = selection.runs.size();
  // The summary in the same shape as run_plan()'s and `bitfusion run --json`'s.
  PlanResult summarised;
  summarised.summary = SummarizeRuns(selection.runs, options.compare.statistics);
  out["summary"] = JsonToPython(FormatSummaryJson(summarised))["summary"];
  out["comparison"] = comparison.empty() ? py::object(py::none()) : JsonToPython(comparison);
  out["html"] = html;
  if (!output.empty()) out["output"] = output;
  return out;
}

}  // namespace

void RegisterExperiment(py::module_& m) {
  m.def("version", &Version, "The library version, e.g. \"0.1.0\".");
  m.def("inventory", &Inventory, py::arg("provisioner") = "local://",
        "Fingerprints (MachineInfo) of the machines a provisioner knows; local:// is this host. "
        "Fields read as attributes or as keys: m.cpu.threads == m[\"cpu\"][\"threads\"].");
  m.def("_run_plan", &RunPlan, py::arg("spec"), py::arg("sinks"), py::arg("program_dirs"),
        py::arg("on_run"), py::arg("on_event"),
        "run_plan()'s native half; call bitfusion.run_plan, which adds the bundled programs.");
  m.def("compare", &Compare, py::arg("baseline"), py::arg("candidate"), py::arg("threshold") = 0.01,
        py::arg("alpha") = 0.05, py::arg("better") = std::map<std::string, std::string>{},
        "Compares two plan runs (\"STORE[@PLAN_RUN_ID]\": a path, sqlite://... or jsonl://...) as "
        "`bitfusion compare --json` does: per benchmark and metric the change of the median, its "
        "bootstrap interval, the Mann-Whitney U p-value and a verdict (\"faster\", \"slower\", "
        "\"no change\", or None when no test is possible). `better` maps metric names to "
        "\"lower\" or \"higher\" where the unit does not say.");
  m.def("report", &Report, py::arg("results"), py::arg("output") = "", py::arg("baseline") = "",
        py::arg("title") = "", py::arg("width") = 960, py::arg("threshold") = 0.01,
        py::arg("alpha") = 0.05, py::arg("better") = std::map<std::string, std::string>{},
        "Renders the HTML report of a plan run (as `bitfusion report`), writes it to `output` "
        "when given, and returns the same data as a dict: summary statistics per benchmark and "
        "metric, the comparison with `baseline` (or None), and the page as `html`.");
}

}  // namespace bitfusion::python
