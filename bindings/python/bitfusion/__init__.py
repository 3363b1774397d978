"""bitfusion: heterogeneous hardware and container benchmarking, from Python.

The five interfaces, each made from a URI:

    provisioner_from_uri("aws://us-east-1")     machines up and down (Provisioner)
    container_runner_from_uri("docker://")      containers, logs, exec, events (ContainerRunner)
    device_allocator_from_uri("local://")       GPU/FPGA discovery and leases (DeviceAllocator)
    result_sink_from_uri("sqlite://r.db")       where samples and runs go (ResultSink)
    MetricStream(["host"], interval=0.01)       sampling on a thread of its own

Data types (ContainerSpec, MachineRequest, DeviceRequest, RunRecord, Sample, ...) take keyword
arguments, print readably, and a plain dict of their fields is accepted wherever one is
expected. Handles that hold something (Container, DeviceLease, Machines, MetricStream,
Subscription, ResultSink) are context managers that release it on exit, also when the block
raises. Blocking calls release the GIL. Every error is a subclass of bitfusion.Error named after
its status code (NotFoundError, UnavailableError, ...), with the library's message.

Plans and results: run_plan(), compare(), report(), inventory(). Events: EventBus, Reactor and
runner.events(). Your own sink: derive from ResultSink and implement write_samples(batches) and
write_run(record).
"""
import os as _os

from ._bitfusion import *  # noqa: F401,F403
from ._bitfusion import _run_plan

__all__ = [name for name in dir() if not name.startswith("_")]


def _bundled_program_dirs():
    """Where the bundled benchmark programs (bf-matmul, bf-stream, bitfusion-probe) are: inside
    the package once installed with pip, beside the build tree's module, or in the libexec
    directory of a CMake install prefix."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    candidates = [
        _os.path.join(here, "libexec"),
        _os.path.normpath(_os.path.join(here, "..", "..", "bin")),  # build tree: build/python
        _os.path.normpath(_os.path.join(here, "..", "..", "..", "..", "libexec", "bitfusion")),
    ]
    return [d for d in candidates if _os.path.isdir(d)]


def run_plan(spec, sinks=(), program_dirs=(), on_run=None, on_event=None):
    """Runs a plan file as `bitfusion run --json` does and returns its summary, runs and sink
    outcomes as a dict.

    sinks: URIs and/or ResultSink objects (your own Python sinks too). URIs replace the plan's
    sinks; ResultSink objects are written besides and left open (flushed) for you.
    program_dirs: extra directories searched for the plan's programs before the bundled ones.
    on_run(record): called after every run with its RunRecord.
    on_event(event): every event of the plan's runs (containers, device leases, sinks).
    Ctrl-C stops the running benchmark, stores what was measured, marks the run interrupted,
    then raises KeyboardInterrupt.
    """
    dirs = [str(d) for d in program_dirs] + _bundled_program_dirs()
    return _run_plan(str(spec), list(sinks), dirs, on_run, on_event)
