"""The Python SDK: the five interfaces, data types, events and reactors, Python sinks and
zero-copy samples, against the real library and (for containers) a dockerd the tests start."""
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import bitfusion

ROOT = Path(__file__).resolve().parents[2]
SYSFS = ROOT / "tests" / "fixtures" / "sysfs"


# ---- data types ------------------------------------------------------------------------------

def test_records_take_keywords_and_dicts_and_print_readably():
    spec = bitfusion.ContainerSpec(image="busybox", command=["true"],
                                   mounts=[{"source": "/tmp", "target": "/x", "read_only": True}])
    assert spec.mounts[0].target == "/x" and spec.mounts[0].read_only
    assert spec == bitfusion.ContainerSpec(spec.to_dict())
    assert repr(spec) == ("ContainerSpec(image='busybox', command=['true'], mounts=[Mount("
                          "source='/tmp', target='/x', read_only=True)])")
    assert spec["image"] == "busybox" and "health_check" in spec.keys()
    assert json.loads(json.dumps(spec.to_dict()))["mounts"][0]["source"] == "/tmp"
    with pytest.raises(TypeError, match='ContainerSpec has no field "imag"; its fields are: name'):
        bitfusion.ContainerSpec(imag="busybox")
    with pytest.raises(TypeError, match=r"ContainerSpec.cpus: cannot take 'two' \(str\)"):
        bitfusion.ContainerSpec(cpus="two")
    request = bitfusion.DeviceRequest(kind="fpga", count=2)
    assert request.kind == bitfusion.DeviceKind.fpga and str(request.kind) == "fpga"
    with pytest.raises(ValueError, match='device kind must be "any", "gpu"'):
        bitfusion.DeviceRequest(kind="tpu")
    event = bitfusion.Event(type="container.died", subject="abc", attributes={"exitCode": "3"})
    assert event.type == bitfusion.EventType.container_died
    assert bitfusion.event_attribute(event, "exitCode") == "3"
    request = bitfusion.MachineRequest(requirements={"min_vcpus": 8}, ttl_s=600)
    assert request.requirements.min_vcpus == 8 and request.count == 1


def test_every_status_code_is_its_own_exception_class_with_the_message():
    with pytest.raises(bitfusion.InvalidArgumentError, match="unknown scheme"):
        bitfusion.result_sink_from_uri("mongo://x")
    with pytest.raises(bitfusion.NotFoundError, match="/nonexistent/plan.json"):
        bitfusion.run_plan("/nonexistent/plan.json")
    assert issubclass(bitfusion.UnavailableError, bitfusion.Error)


# ---- samples without copies ------------------------------------------------------------------

def test_sample_batch_columns_are_zero_copy_and_keep_the_batch_alive():
    batch = bitfusion.SampleBatch({"run": "r1"})
    cpu = batch.add_series({"metric": "cpu", "unit": "1", "labels": {"cpu": "0"}})
    for i in range(1000):
        batch.append(cpu, 1_700_000_000_000_000_000 + i, i, i * 0.5)
    values = memoryview(batch.values)
    assert values.format == "d" and values.readonly and values.shape == (1000,)
    assert memoryview(batch.timestamps).format in ("l", "q")
    assert memoryview(batch.series_index).format == "I"
    again = memoryview(batch.values)
    # Two views of the column share one buffer: nothing was copied.
    assert values.obj is not again.obj
    del batch
    gc.collect()
    assert values[999] == 499.5 and values.tolist()[:3] == [0.0, 0.5, 1.0]
    try:
        import numpy
    except ImportError:
        return  # numpy is never required
    batch = bitfusion.SampleBatch()
    s = batch.add_series({"metric": "m", "unit": "s"})
    batch.append(s, 1, 2, 3.0)
    a, b = numpy.asarray(batch.values), numpy.asarray(batch.values)
    assert numpy.shares_memory(a, b) and a[0] == 3.0


# ---- Python sinks ----------------------------------------------------------------------------

class CollectingSink(bitfusion.ResultSink):
    def __init__(self, uri="python://collect?batch_samples=100&max_delay=50ms", fail=0):
        super().__init__(uri)
        self.samples = []
        self.runs = []
        self.fail = fail
        self.calls = 0

    def write_samples(self, batches):
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("store is down")
        for b in batches:
            assert isinstance(b, bitfusion.SampleBatch)
            self.samples.extend(zip(b.timestamps.tolist(), b.values.tolist()))

    def write_run(self, record):
        self.runs.append(record)


def test_a_python_sink_gets_a_metric_streams_batches_like_the_jsonl_sink(tmp_path):
    sink = CollectingSink()
    jsonl = tmp_path / "m.jsonl"
    with bitfusion.MetricStream(["host"], interval=0.01, sinks=[sink, f"jsonl://{jsonl}"]):
        time.sleep(0.3)
    # The stream flushed the Python sink (it stays open, it is the caller's) and closed jsonl.
    lines = jsonl.read_text().splitlines()
    assert len(sink.samples) == len(lines) > 100
    assert sink.counters().samples_written == len(lines)
    sink.close()
    with pytest.raises(bitfusion.FailedPreconditionError, match="is closed"):
        sink.write([bitfusion.Sample(metric="m", value=1)])


def test_a_failing_python_sink_is_retried_from_its_spool_and_loses_nothing(tmp_path):
    events = []
    sink = CollectingSink(f"python://flaky?spool={tmp_path}/spool&batch_samples=10"
                          "&retry_initial=5ms&retry_max=20ms&flush_timeout=30s", fail=3)
    sink.set_event_callback(lambda e: events.append(str(e.type)))
    batch = bitfusion.SampleBatch()
    s = batch.add_series({"metric": "m", "unit": "1"})
    for i in range(25):
        batch.append(s, 1000 + i, i, float(i))
    sink.write(batch)
    sink.write(bitfusion.RunRecord(run_id="r1", benchmark="b"))
    sink.close()
    assert sorted(sink.samples) == [(1000 + i, float(i)) for i in range(25)]
    assert [r.run_id for r in sink.runs] == ["r1"]
    counters = sink.counters()
    assert counters.retries >= 3 and counters.samples_spooled == 25
    assert counters.samples_pending == 0 and counters.runs_pending == 0
    assert events == ["sink.degraded", "sink.recovered"]


def test_a_python_sink_with_a_missing_hook_says_which(tmp_path):
    class NoHooks(bitfusion.ResultSink):
        pass

    sink = NoHooks("python://nohooks")
    sink.write([bitfusion.Sample(metric="m", value=1, timestamp_ns=5)])
    with pytest.raises(bitfusion.UnavailableError, match=r"has no method write_samples"):
        sink.flush()
    with pytest.raises(bitfusion.InvalidArgumentError, match="bogus"):
        bitfusion.ResultSink("python://x?bogus=1")


# ---- plans -----------------------------------------------------------------------------------

def test_run_plan_finds_the_bundled_programs_and_feeds_a_python_sink(tmp_path, monkeypatch):
    # The README's example, from a directory outside the tree.
    monkeypatch.chdir(tmp_path)
    spec = json.loads((ROOT / "examples" / "specs" / "quickstart.json").read_text())
    for b in spec["benchmarks"]:
        b["repetitions"], b["warmup"] = 2, 0
    (tmp_path / "plan.json").write_text(json.dumps(spec))
    sink = CollectingSink()
    seen = []
    out = bitfusion.run_plan("plan.json", sinks=[f"sqlite://{tmp_path}/r.db", sink],
                             on_run=lambda r: seen.append((r.benchmark, r.status)))
    assert seen == [("matmul", "ok")] * 2 + [("stream", "ok")] * 2
    assert [r.benchmark for r in sink.runs] == ["matmul", "matmul", "stream", "stream"]
    assert len(sink.samples) > 0
    assert [s["stored"] for s in out["sinks"]] == [True, True]
    sink.close()


def test_ctrl_c_in_a_plan_stops_it_and_raises_keyboard_interrupt(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"name": "long", "benchmarks": [
        {"name": "sleep", "command": ["sh", "-c", f"touch {tmp_path}/started; exec sleep 30"],
         "repetitions": 3, "warmup": 0}]}))
    script = textwrap.dedent(f"""
        import bitfusion, json, sys
        try:
            bitfusion.run_plan({str(plan)!r}, sinks=["jsonl://{tmp_path}/r.jsonl"])
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    runs = tmp_path / "r.jsonl"
    for _ in range(600):  # the benchmark has started (this test's own marker, not a pgrep)
        if (tmp_path / "started").exists():
            break
        time.sleep(0.05)
    assert (tmp_path / "started").exists(), "the plan's benchmark did not start within 30 s"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert out.strip() == "interrupted"
    records = [json.loads(l) for l in runs.read_text().splitlines() if '"type":"run"' in l]
    assert [r["status"] for r in records] == ["interrupted"]


# ---- runners ---------------------------------------------------------------------------------

def test_process_wait_releases_the_gil_and_ctrl_c_kills_the_process(tmp_path):
    runner = bitfusion.container_runner_from_uri("process://")
    ticks = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    with runner.create({"command": ["sleep", "0.5"]}) as c:
        c.start()
        before = ticks[0]
        status = c.wait()
        during = ticks[0] - before
    stop.set()
    t.join()
    assert status.success and status.exit_code == 0
    assert during > 10, "another Python thread ran while wait() blocked"

    script = textwrap.dedent("""
        import bitfusion, sys
        runner = bitfusion.container_runner_from_uri("process://")
        with runner.create({"command": ["sleep", "300"]}) as c:
            c.start()
            print(c.inspect().pid, flush=True)
            c.wait()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    pid = int(proc.stdout.readline())
    assert os.path.exists(f"/proc/{pid}"), "the process runs"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "leaving the with block by Ctrl-C killed it"


def test_a_container_from_python_with_logs_exec_copy_and_removal(dockerd, tmp_path):
    runner = bitfusion.container_runner_from_uri(dockerd["uri"], run_id="py-test")
    assert runner.capabilities().engine == "docker"
    lines = []
    spec = bitfusion.ContainerSpec(image=dockerd["image"],
                                   command=["sh", "-c", "echo hello; echo oops >&2; sleep 1; exit 3"],
                                   env={"GREETING": "hi"})
    with runner.create(spec) as c:
        with c.logs(lambda stream, line: lines.append((str(stream.name), line))):
            c.start()
            r = c.exec(["sh", "-c", "echo $GREETING; ls /tmp"], timeout=30)
            assert r.exit_code == 0 and r.output.startswith("hi")
            (tmp_path / "in.txt").write_text("payload")
            c.copy_in(str(tmp_path / "in.txt"), "/tmp")
            assert c.path_exists("/tmp/in.txt")
            (tmp_path / "out").mkdir()
            c.copy_out("/tmp/in.txt", str(tmp_path / "out"))
            status = c.wait(timeout=60)
        assert c.inspect().state == "exited"
        cid = c.id
    assert status.exit_code == 3 and not status.success
    assert ("stdout", "hello") in lines and ("stderr", "oops") in lines
    assert (tmp_path / "out" / "in.txt").read_text() == "payload"
    assert cid not in [x.id for x in runner.list_containers()], "the with block removed it"


def test_a_python_reactor_reacts_to_a_die_event_and_survives_a_raising_rule(dockerd):
    runner = bitfusion.container_runner_from_uri(dockerd["uri"])
    bus = bitfusion.EventBus()
    reactor = bitfusion.Reactor(bus)
    died = []
    tails = []
    reactor.add("record-exit", lambda e: died.append((e.subject, e.attributes.get("exitCode"))),
                types=["container.died"])
    reactor.add("broken", lambda e: 1 / 0, types=[bitfusion.EventType.container_died])
    reactor.add(bitfusion.attach_log_tail_on_failure(runner, 5, lambda e, t: tails.extend(t)))
    unraisable = []
    old = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with runner.events(bus.publish):
            ids = []
            for code in (0, 7):
                with runner.create({"image": dockerd["image"],
                                    "command": ["sh", "-c", f"echo last words; exit {code}"]}) as c:
                    c.start()
                    c.wait(timeout=60)
                    ids.append(c.id)
            deadline = time.time() + 30
            while len(died) < 2 and time.time() < deadline:
                bus.flush(timeout=5)
                time.sleep(0.05)
    finally:
        sys.unraisablehook = old
    assert sorted(died) == sorted(zip(ids, ["0", "7"]))
    assert reactor.fired("record-exit") == 2 and reactor.fired("broken") == 2
    assert len(unraisable) == 2 and unraisable[0].exc_type is ZeroDivisionError
    assert [l.text for l in tails] == ["last words"]


# ---- devices and machines --------------------------------------------------------------------

def test_a_device_lease_on_a_recorded_sysfs_tree_is_released_on_exit(tmp_path):
    allocator = bitfusion.device_allocator_from_uri(f"sysfs://{SYSFS / 'dgx-a100'}",
                                                    run_id="py-lease")
    gpus = allocator.discover()
    assert len(gpus) == 8 and all(d.kind == bitfusion.DeviceKind.gpu for d in gpus)
    with allocator.acquire({"kind": "gpu", "count": 8}) as lease:
        assert len(lease.devices) == 8 and lease.held
        with pytest.raises(bitfusion.Error, match="held|busy|free"):
            allocator.acquire({"kind": "gpu", "count": 1}, timeout=0)
        caps = bitfusion.container_runner_from_uri("process://").capabilities()
        edits = allocator.edits_for(lease, caps)
        spec = edits.apply_to(bitfusion.ContainerSpec(command=["true"]))
        assert spec.env == edits.env
    assert not lease.held
    with allocator.acquire({"kind": "gpu", "count": 8}):
        pass


def test_machines_from_up_are_destroyed_when_the_block_raises():
    provisioner = bitfusion.provisioner_from_uri("null://")
    with pytest.raises(RuntimeError, match="step failed"):
        with provisioner.up({"type": "null", "count": 2, "run_id": "py-up"}) as machines:
            ids = [m.id for m in machines.machines]
            assert len(machines) == 2
            live = {m.id: m.state for m in provisioner.list()}
            assert all(live[i] == "running" for i in ids)
            raise RuntimeError("step failed")
    states = {m.id: m.state for m in provisioner.list()}
    assert all(states.get(i, "terminated") == "terminated" for i in ids)
