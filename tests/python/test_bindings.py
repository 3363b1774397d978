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
