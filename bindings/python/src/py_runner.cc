// ContainerRunner and Container from Python. Every blocking call releases the GIL; waits are cut
// into short slices so that Ctrl-C (KeyboardInterrupt) ends them, and a `with` block then
// removes the container.
#include <pybind11/functional.h>

#include <csignal>

#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {

BackendContext ContextFrom(const std::string& run_id, const Labels& labels,
                           const std::optional<py::function>& on_event) {
  BackendContext context;
  context.run_id = run_id;
  context.labels = labels;
  if (on_event) {
    Callback callback(*on_event, "bitfusion on_event callback");
    context.on_event = [callback](const Event& event) { callback(event); };
  }
  return context;
}

namespace {

/// A Container handle. Closing (or leaving the `with` block, or the handle being collected)
/// kills what still runs and removes it, unless keep() was called.
class PyContainer {
 public:
  explicit PyContainer(std::unique_ptr<Container> container) : c_(std::move(container)) {
    id_ = c_->id();
  }
  ~PyContainer() {
    py::gil_scoped_release release;
    c_.reset();
  }

  const std::string& id() const { return id_; }
  Container& get() {
    if (!c_) Raise(FailedPreconditionError("container " + id_ + " was closed (removed)"));
    return *c_;
  }

  void Close() {
    std::unique_ptr<Container> gone = std::move(c_);
    py::gil_scoped_release release;
    gone.reset();
  }

 private:
  std::unique_ptr<Container> c_;
  std::string id_;
};

template <class T, class F>
T Blocking(F&& f) {
  Result<T> result = [&] {
    py::gil_scoped_release release;
    return f();
  }();
  return Unwrap(std::move(result));
}

void BlockingStatus(const std::function<Status()>& f) {
  Status status;
  {
    py::gil_scoped_release release;
    status = f();
  }
  Check(status);
}

}  // namespace

ExitStatus WaitInterruptibly(Container& container, Deadline deadline) {
  constexpr auto kSlice = std::chrono::milliseconds(100);
  for (;;) {
    const Deadline slice = std::min(deadline, DeadlineAfter(kSlice));
    Result<ExitStatus> result = [&] {
      py::gil_scoped_release release;
      return container.Wait(slice);
    }();
    if (result) return *result;
    if (result.error().code() != StatusCode::kDeadlineExceeded || slice >= deadline) {
      Raise(result.error());
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

void RegisterRunners(py::module_& m) {
  py::class_<PyContainer, std::shared_ptr<PyContainer>>(
      m, "Container",
      "A container (or process) made by ContainerRunner.create. Use it as a context manager: "
      "leaving the block (also by an exception or Ctrl-C) kills what still runs and removes "
      "it, unless keep() was called.")
      .def_property_readonly("id", &PyContainer::id)
      .def(
          "start", [](PyContainer& c) { BlockingStatus([&] { return c.get().Start(); }); },
          "Starts it. Subscribe to logs() first to see every line.")
      .def(
          "wait",
          [](PyContainer& c, std::optional<double> timeout) {
            return WaitInterruptibly(c.get(), DeadlineIn(timeout));
          },
          py::arg("timeout") = py::none(),
          "Blocks until it exits and returns its ExitStatus; DeadlineExceededError after "
          "`timeout` seconds (it keeps running). Ctrl-C interrupts the wait.")
      .def(
          "stop",
          [](PyContainer& c, double grace) {
            BlockingStatus([&] { return c.get().Stop(Seconds(grace)); });
          },
          py::arg("grace") = 10.0, "SIGTERM, then SIGKILL after `grace` seconds.")
      .def(
          "kill",
          [](PyContainer& c, int signal) { BlockingStatus([&] { return c.get().Kill(signal); }); },
          py::arg("signal") = SIGKILL, "Sends `signal` (SIGKILL by default) to it.")
      .def(
          "logs",
          [](PyContainer& c, py::function callback) {
            Callback cb(std::move(callback), "bitfusion Container.logs callback");
            return std::make_shared<PySubscription>(c.get().Logs(
                [cb](LogStream stream, std::string_view line) { cb(stream, std::string(line)); }));
          },
          py::arg("callback"),
          "callback(stream, line) for each line of output, on a runner thread, until the "
          "returned Subscription is cancelled.")
      .def(
          "keep", [](PyContainer& c) { c.get().Keep(); },
          "Leaves the container in place when the handle is closed.")
      .def(
          "exec",
          [](PyContainer& c, const std::vector<std::string>& command,
             std::optional<double> timeout) {
            ExecSpec spec;
            spec.command = command;
            const Deadline deadline = DeadlineIn(timeout);
            return Blocking<ExecResult>([&] { return c.get().Exec(spec, deadline); });
          },
          py::arg("command"), py::arg("timeout") = py::none())
      .def(
          "exec",
          [](PyContainer& c, const ExecSpec& spec, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            return Blocking<ExecResult>([&] { return c.get().Exec(spec, deadline); });
          },
          py::arg("spec"), py::arg("timeout") = py::none(),
          "Runs a command (a list, or an ExecSpec) inside the running container; returns an "
          "ExecResult with its exit code and output.")
      .def(
          "copy_in",
          [](PyContainer& c, const std::string& host_path, const std::string& container_dir) {
            BlockingStatus([&] { return c.get().CopyIn(host_path, container_dir); });
          },
          py::arg("host_path"), py::arg("container_dir"),
          "Copies a host file or directory into `container_dir` inside it.")
      .def(
          "copy_out",
          [](PyContainer& c, const std::string& container_path, const std::string& host_dir) {
            BlockingStatus([&] { return c.get().CopyOut(container_path, host_dir); });
          },
          py::arg("container_path"), py::arg("host_dir"),
          "Copies a file or directory out of it into `host_dir`.")
      .def(
          "path_exists",
          [](PyContainer& c, const std::string& path) {
            return Blocking<bool>([&] { return c.get().PathExists(path); });
          },
          py::arg("path"), "Whether `path` exists inside it.")
      .def(
          "inspect",
          [](PyContainer& c) { return Blocking<ContainerInfo>([&] { return c.get().Inspect(); }); },
          "Its state now: a ContainerInfo (state, pid, exit code, times, labels).")
      .def(
          "stats",
          [](PyContainer& c, py::function callback, double interval) {
            Callback cb(std::move(callback), "bitfusion Container.stats callback");
            auto sub = Blocking<Subscription>([&] {
              return c.get().Stats([cb](const ContainerStats& s) { cb(s); }, Seconds(interval));
            });
            return std::make_shared<PySubscription>(std::move(sub));
          },
          py::arg("callback"), py::arg("interval") = 1.0,
          "callback(ContainerStats) about every `interval` seconds until cancelled.")
      .def("close", &PyContainer::Close, "Kills and removes it now (unless kept). Idempotent.")
      .def("__enter__", [](std::shared_ptr<PyContainer> c) { return c; })
      .def("__exit__", [](PyContainer& c, const py::args&) { c.Close(); })
      .def("__repr__", [](const PyContainer& c) { return "Container(id=\"" + c.id() + "\")"; });

  py::class_<ContainerRunner, std::shared_ptr<ContainerRunner>>(
      m, "ContainerRunner",
      "Runs things in containers: docker://, docker+tls://, docker+ssh://, process://, null://. "
      "Make one with "
      "container_runner_from_uri().")
      .def(
          "capabilities",
          [](ContainerRunner& r) {
            return Blocking<RunnerCapabilities>([&] { return r.Capabilities(); });
          },
          "What this runner can do (images, exec, copy, stats, devices, reap...).")
      .def(
          "ensure_image",
          [](ContainerRunner& r, const std::string& image, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            BlockingStatus([&] { return r.EnsureImage(image, deadline); });
          },
          py::arg("image"), py::arg("timeout") = py::none(),
          "Makes sure `image` is present (pulls it when it is not).")
      .def(
          "create",
          [](ContainerRunner& r, const ContainerSpec& spec) {
            auto c = Blocking<std::unique_ptr<Container>>([&] { return r.Create(spec); });
            return std::make_shared<PyContainer>(std::move(c));
          },
          py::arg("spec"),
          "Creates (does not start) what `spec` (a ContainerSpec or a dict of its fields) "
          "describes; returns a Container.")
      .def(
          "import_image",
          [](ContainerRunner& r, const std::string& rootfs, const std::string& tag,
             const std::vector<std::string>& changes, const Labels& labels,
             std::optional<double> timeout) {
            ImportSpec spec;
            spec.rootfs = rootfs;
            spec.tag = tag;
            spec.changes = changes;
            spec.labels = labels;
            const Deadline deadline = DeadlineIn(timeout);
            return Blocking<ImageInfo>([&] { return r.ImportImage(spec, deadline); });
          },
          py::arg("rootfs"), py::arg("tag"), py::arg("changes") = std::vector<std::string>{},
          py::arg("labels") = Labels{}, py::arg("timeout") = py::none(),
          "Makes image `tag` from a root filesystem (a tar file or a directory).")
      .def(
          "pull_image",
          [](ContainerRunner& r, const std::string& image, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            return Blocking<ImageInfo>([&] { return r.PullImage(image, {}, deadline); });
          },
          py::arg("image"), py::arg("timeout") = py::none(),
          "Pulls `image` from its registry and returns its ImageInfo.")
      .def(
          "inspect_image",
          [](ContainerRunner& r, const std::string& image) {
            return Blocking<ImageInfo>([&] { return r.InspectImage(image); });
          },
          py::arg("image"), "The ImageInfo of a local image; NotFoundError when absent.")
      .def(
          "list_images",
          [](ContainerRunner& r, const Labels& labels) {
            return Blocking<std::vector<ImageInfo>>([&] { return r.ListImages(labels); });
          },
          py::arg("labels") = Labels{}, "Local images carrying all of `labels`.")
      .def(
          "remove_image",
          [](ContainerRunner& r, const std::string& image, bool force) {
            BlockingStatus([&] { return r.RemoveImage(image, force); });
          },
          py::arg("image"), py::arg("force") = false, "Removes a local image.")
      .def(
          "list_containers",
          [](ContainerRunner& r, const Labels& labels) {
            return Blocking<std::vector<ContainerInfo>>([&] { return r.ListContainers(labels); });
          },
          py::arg("labels") = Labels{}, "Containers (any state) carrying all of `labels`.")
      .def(
          "inspect_container",
          [](ContainerRunner& r, const std::string& id) {
            return Blocking<ContainerInfo>([&] { return r.InspectContainer(id); });
          },
          py::arg("id"), "The ContainerInfo of container `id`, whoever made it.")
      .def(
          "open_container",
          [](ContainerRunner& r, const std::string& id) {
            auto c = Blocking<std::unique_ptr<Container>>([&] { return r.OpenContainer(id); });
            return std::make_shared<PyContainer>(std::move(c));
          },
          py::arg("id"),
          "A handle on an existing container, whoever made it; closing it leaves the container.")
      .def(
          "tail_logs",
          [](ContainerRunner& r, const std::string& id, std::size_t lines) {
            return Blocking<std::vector<LogLine>>([&] { return r.TailLogs(id, lines); });
          },
          py::arg("id"), py::arg("lines") = 20,
          "The last `lines` lines of container `id`'s output, as LogLines.")
      .def(
          "events",
          [](ContainerRunner& r, py::function callback) {
            Callback cb(std::move(callback), "bitfusion ContainerRunner.events callback");
            auto sub =
                Blocking<Subscription>([&] { return r.Events([cb](const Event& e) { cb(e); }); });
            return std::make_shared<PySubscription>(std::move(sub));
          },
          py::arg("callback"),
          "callback(Event) for each lifecycle event of the engine (created, started, died, "
          "destroyed, oom) until the returned Subscription is cancelled. Publish them onto an "
          "EventBus with events(bus.publish).")
      .def(
          "reap",
          [](ContainerRunner& r, const ReapPolicy& policy) {
            return Blocking<ReapReport>([&] { return r.Reap(policy); });
          },
          py::arg("policy") = ReapPolicy{},
          "Removes what runs left behind (dead creators, expired), as `policy` says.");

  m.def(
      "container_runner_from_uri",
      [](const std::string& uri, const std::string& run_id, const Labels& labels,
         std::optional<py::function> on_event) {
        auto context = ContextFrom(run_id, labels, on_event);
        return Blocking<std::shared_ptr<ContainerRunner>>(
            [&] { return ContainerRunnerFromUri(uri, context); });
      },
      py::arg("uri"), py::arg("run_id") = "", py::arg("labels") = Labels{},
      py::arg("on_event") = py::none(),
      "A ContainerRunner: \"docker://\" (DOCKER_HOST or /var/run/docker.sock), "
      "\"docker:///path/to.sock\", \"docker+tls://host:2376\", \"docker+ssh://user@host\", "
      "\"process://\", \"null://\". "
      "`run_id` and `labels` go onto everything it makes.");
}

}  // namespace bitfusion::python
