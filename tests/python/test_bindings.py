"""The Python module against the real library (built tree on PYTHONPATH)."""
import json
import os

import pytest

import bitfusion


def test_version():
    assert bitfusion.version().count(".") == 2


def test_inventory_matches_this_host():
    machines = bitfusion.inventory()
    assert len(machines) == 1
    assert machines[0]["cpu"]["threads"] == os.cpu_count()
    assert machines[0]["hostname"] == os.uname().nodename


def test_status_codes_are_exception_classes():
    with pytest.raises(bitfusion.InvalidArgumentError, match="unknown scheme"):
        bitfusion.inventory("gce://zone")
    assert issubclass(bitfusion.NotFoundError, bitfusion.Error)
    with pytest.raises(bitfusion.NotFoundError, match="/nonexistent/plan.json"):
        bitfusion.run_plan("/nonexistent/plan.json")


def test_run_plan(tmp_path):
    spec = tmp_path / "plan.json"
    spec.write_text(json.dumps({"benchmarks": [
        {"name": "echo", "command": ["sh", "-c", "echo 'BITFUSION_RESULT answer 42'"],
         "repetitions": 2, "warmup": 0}]}))
    out = bitfusion.run_plan(str(spec), sinks=[f"jsonl://{tmp_path}/r.jsonl"])
    rows = {row["metric"]: row for row in out["summary"]}
    assert rows["answer"]["median"] == 42
    assert len(out["runs"]) == 2
    assert (tmp_path / "r.jsonl").read_text().count('"type":"run"') == 2


def test_metric_stream_delivers_to_subscribers_and_sinks(tmp_path):
    got = []
    stream = bitfusion.MetricStream(["host"], interval=0.01, sinks=[f"jsonl://{tmp_path}/m.jsonl"],
                                    labels={"job": "py"})
    stream.subscribe(got.extend)
    with stream:
        import time
        time.sleep(0.3)
    overhead = stream.overhead()
    assert overhead["ticks"] >= 10
    assert overhead["samples"] == len(got) > 0
    assert overhead["sampler_cpu_ns"] > 0
    metrics = {s["metric"] for s in got}
    assert {"cpu.user", "mem.available"} <= metrics
    assert all(s["labels"]["job"] == "py" for s in got)
    stamps = sorted({s["monotonic_ns"] for s in got})
    assert len(stamps) == overhead["ticks"]
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == len(got)
    stream.stop()  # idempotent


def test_metric_stream_rates_and_callback_errors(monkeypatch):
    calls = []
    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    def callback(samples):
        calls.append(samples)
        raise RuntimeError("subscriber bug")

    stream = bitfusion.MetricStream(["host"], interval=0.01, rates=True, delivery_interval=0)
    stream.subscribe(callback)
    stream.start()
    import time
    time.sleep(0.2)
    stream.stop()
    assert len(calls) > 1  # an exception in one callback does not stop delivery
    units = {s["metric"]: s["unit"] for batch in calls for s in batch}
    assert units["cpu.user"] == "s/s" and units["mem.available"] == "bytes"  # counters as rates
    assert len(unraisable) == len(calls)  # each one reported the way Python reports such errors
    assert "subscriber bug" in str(unraisable[0].exc_value)


def test_metric_stream_bad_input():
    with pytest.raises(bitfusion.InvalidArgumentError, match="unknown scheme"):
        bitfusion.MetricStream(["nosuch:1"])
    with pytest.raises(bitfusion.InvalidArgumentError, match="at least one source"):
        bitfusion.MetricStream([])
    with pytest.raises(bitfusion.InvalidArgumentError, match="interval"):
        bitfusion.MetricStream(["host"], interval=0)
    with pytest.raises(bitfusion.InvalidArgumentError, match="overflow"):
        bitfusion.MetricStream(["host"], overflow="sometimes")


def _results(tmp_path, name, script, repetitions=6):
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"name": "py", "metrics": {"sources": ["null"]}, "benchmarks": [
        {"name": "score", "command": ["sh", "-c", script], "repetitions": repetitions,
         "warmup": 0}]}))
    store = tmp_path / f"{name}.jsonl"
    bitfusion.run_plan(str(spec), sinks=[f"jsonl://{store}"])
    return store


def test_compare_and_report_return_what_the_commands_print(tmp_path):
    # A counter file makes each run's throughput differ a little: 100, 101, ... ops/s.
    counter = tmp_path / "n"
    base = _results(tmp_path, "base", f"echo >> {counter}; "
                    f"echo BITFUSION_RESULT rate $((100 + $(wc -l < {counter}))) ops/s")
    slow = _results(tmp_path, "slow", f"echo >> {counter}; "
                    f"echo BITFUSION_RESULT rate $((50 + $(wc -l < {counter}))) ops/s")
    result = bitfusion.compare(str(base), str(slow))
    (rate,) = [m for m in result["metrics"] if m["metric"] == "rate"]
    assert rate["verdict"] == "slower" and rate["better"] == "higher"
    assert rate["p_value"] < 0.05
    assert result["regression"] is True
    low, high = rate["change_ci"]
    assert low <= rate["change"] <= high < 0

    page = bitfusion.report(str(slow), output=str(tmp_path / "r.html"), baseline=str(base))
    assert (tmp_path / "r.html").read_text() == page["html"]
    assert "<svg" in page["html"] and "<script" not in page["html"]
    rows = {row["metric"]: row for row in page["summary"]}
    assert rows["rate"]["count"] == 6 and rows["rate"]["median"] > 50
    assert rows["rate"]["median_ci"][0] <= rows["rate"]["median"] <= rows["rate"]["median_ci"][1]
    assert page["comparison"]["regression"] is True

    with pytest.raises(bitfusion.NotFoundError, match="no plan run nope"):
        bitfusion.compare(f"{base}@nope", str(slow))
    with pytest.raises(bitfusion.InvalidArgumentError, match="better"):
        bitfusion.compare(str(base), str(slow), better={"rate": "sideways"})
