// ResultSink from Python: the URI backends (jsonl://, sqlite://, es://, ...), and sinks written in
// Python by deriving from bitfusion.ResultSink and implementing its hooks. A Python sink gets
// the base's batching, background sends, retries and (with spool=DIR) the durable spool.
#include <pybind11/functional.h>

#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {
namespace {

/// The C++ side of a Python sink: each hook calls the Python method of the same purpose, with
/// the GIL taken. An exception there is a failed send (kept and retried, see ResultSink).
class PythonSink : public ResultSink {
 public:
  PythonSink(std::string uri, ResultSinkOptions options)
      : ResultSink(std::move(uri), std::move(options)) {}
  using ResultSink::OpenSpool;

 protected:
  Status WriteSamples(const std::vector<SampleBatch>& batches) override {
    py::gil_scoped_acquire gil;
    py::function hook = py::get_override(static_cast<const ResultSink*>(this), "write_samples");
    if (!hook) return Missing("write_samples(self, batches)");
    try {
      py::list list;
      for (const SampleBatch& b : batches) list.append(std::make_shared<SampleBatch>(b));
      hook(list);
      return Status::OK();
    } catch (py::error_already_set& e) {
      return StatusFromPython(e, uri() + " write_samples");
    }
  }

  Status WriteRun(const RunRecord& record) override {
    py::gil_scoped_acquire gil;
    py::function hook = py::get_override(static_cast<const ResultSink*>(this), "write_run");
    if (!hook) return Missing("write_run(self, record)");
    try {
      hook(record);
      return Status::OK();
    } catch (py::error_already_set& e) {
      return StatusFromPython(e, uri() + " write_run");
    }
  }

  Status SyncBackend(Deadline) override { return Optional("sync"); }
  Status CloseBackend(Deadline) override { return Optional("close_backend"); }

 private:
  Status Optional(const char* name) {
    py::gil_scoped_acquire gil;
    py::function hook = py::get_override(static_cast<const ResultSink*>(this), name);
    if (!hook) return Status::OK();
    try {
      hook();
      return Status::OK();
    } catch (py::error_already_set& e) {
      return StatusFromPython(e, uri() + " " + name);
    }
  }

  Status Missing(const std::string& hook) const {
    // Also what a sink whose Python object is gone (collected without close()) answers.
    return UnavailableError("Python sink " + uri() + " has no method " + hook +
                            " (or its Python object is gone: close() a sink before dropping it)");
  }
};

/// Blocking sink calls release the GIL: the sink's own thread may be inside a Python hook.
Status Unlocked(const std::function<Status()>& f) {
  py::gil_scoped_release release;
  return f();
}

}  // namespace

void RegisterSinks(py::module_& m) {
  py::class_<ResultSink, PythonSink, std::shared_ptr<ResultSink>>(
      m, "ResultSink",
      "Where samples and run records go. result_sink_from_uri() makes the built-in ones; "
      "derive from this class to write your own: implement write_samples(self, batches) (a "
      "list of SampleBatch) and write_run(self, record) (a RunRecord), and optionally sync(self) "
      "and close_backend(self). Call super().__init__(uri) first, where the URI names the sink "
      "and carries its options: \"python://mysink?batch_samples=1000&max_delay=0.5s\"; with "
      "spool=DIR the sink is durable (what was written survives a crash and a failing store, "
      "and is retried in the background). A hook that raises is a failed send: its data stays "
      "pending and is retried. Close a sink (close(), or use it as a context manager) before "
      "dropping it.")
      .def(py::init([](const std::string& uri) {
             auto parsed = Unwrap(Uri::Parse(uri));
             Check(parsed.CheckQueryKeys(ResultSinkOptions::DurableQueryKeysWith({})));
             auto options = Unwrap(ResultSinkOptions::FromUri(parsed));
             const bool durable = parsed.Query("spool").has_value();
             auto sink = std::make_unique<PythonSink>(parsed.ToString(), options);
             if (durable) Check(sink->OpenSpool());
             return sink.release();
           }),
           py::arg("uri") = "python://sink")
      .def(
          "write",
          [](ResultSink& s, std::shared_ptr<SampleBatch> batch) {
            Check(Unlocked([&] { return s.Write(*batch); }));
          },
          py::arg("batch"), "Queues a copy of a SampleBatch.")
      .def(
          "write",
          [](ResultSink& s, const RunRecord& record) {
            Check(Unlocked([&] { return s.Write(record); }));
          },
          py::arg("record"), "Sends pending samples, then the RunRecord.")
      .def(
          "write",
          [](ResultSink& s, const std::vector<Sample>& samples) {
            SampleBatch batch;
            for (const Sample& sample : samples) {
              const auto i = batch.AddSeries({sample.metric, sample.unit, sample.metadata});
              batch.Append(i, sample.timestamp_ns, sample.monotonic_ns, sample.value);
            }
            Check(Unlocked([&] { return s.Write(batch); }));
          },
          py::arg("samples"), "Queues a list of Samples.")
      .def(
          "flush",
          [](ResultSink& s, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            Check(Unlocked([&] { return s.Flush(deadline); }));
          },
          py::arg("timeout") = py::none(),
          "Sends everything pending and makes it durable; a durable sink whose store fails "
          "waits up to `timeout` seconds (default: its flush_timeout), then says what its "
          "spool holds.")
      .def(
          "close",
          [](ResultSink& s, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            Check(Unlocked([&] { return s.Close(deadline); }));
          },
          py::arg("timeout") = py::none(), "Flush, then release the store. Idempotent.")
      .def_property_readonly("uri", &ResultSink::uri, "The URI, password redacted.")
      .def_property_readonly("spool_dir", &ResultSink::spool_dir)
      .def("counters", &ResultSink::counters,
           "SinkCounters: samples and runs written and pending, backend calls, errors, retries, "
           "spooled, replayed and dropped samples, spool bytes.")
      .def(
          "set_event_callback",
          [](ResultSink& s, py::function callback) {
            Callback cb(std::move(callback), "bitfusion ResultSink event callback");
            s.SetEventCallback([cb](const Event& e) { cb(e); });
          },
          py::arg("callback"), "callback(Event) on sink_degraded and sink_recovered.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](ResultSink& s, const py::args&) {
             Check(Unlocked([&] { return s.Close(kNoDeadline); }));
           })
      .def("__del__",
           [](ResultSink& s) {
             // While the Python object still exists, so a Python sink's hooks can run.
             const Status status = Unlocked([&] { return s.Close(kNoDeadline); });
             if (!status.ok())
               Log(LogLevel::kError, "closing sink " + s.uri() + ": " + status.ToString());
           })
      .def("__repr__", [](const ResultSink& s) { return "ResultSink(\"" + s.uri() + "\")"; });

  m.def(
      "result_sink_from_uri",
      [](const std::string& uri, const std::string& run_id, const Labels& labels,
         std::optional<py::function> on_event) {
        auto context = ContextFrom(run_id, labels, on_event);
        py::gil_scoped_release release;
        return Unwrap(ResultSinkFromUri(uri, context));
      },
      py::arg("uri"), py::arg("run_id") = "", py::arg("labels") = Labels{},
      py::arg("on_event") = py::none(),
      "A ResultSink: \"jsonl://PATH\", \"csv://PATH\", \"sqlite://PATH\", "
      "\"es://HOST:PORT/INDEX\", \"influx://HOST:PORT/DB\", \"postgres://USER@HOST/DB\", "
      "\"fanout://?sink=URI&sink=URI\", \"null://\".");
}

}  // namespace bitfusion::python
