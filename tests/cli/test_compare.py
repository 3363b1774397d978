"""End-to-end tests of `bitfusion compare` and adaptive repetitions: real plans run by the
built command, then compared. BITFUSION_BIN points at the built command."""
import json
import sqlite3
from pathlib import Path

import pytest

from cli_helpers import run, run_in_terminal


def sleeper_plan(path: Path, seconds: float, repetitions=6, name="sleeper") -> Path:
    # Sleeping is what the CPU-starved CI machine times best: the wall time is the sleep plus a
    # fork and exec, and the tests running beside it do not stretch a sleep. A second-long sleep
    # keeps the fork and exec's jitter (a few ms on a loaded machine) well under the 1 % noise
    # threshold, so the same benchmark twice is "no change" however busy the machine is.
    path.write_text(json.dumps({
        "name": "cmp", "runner": "process://", "metrics": {"sources": ["null"]},
        "benchmarks": [{"name": name, "command": ["sleep", str(seconds)],
                        "repetitions": repetitions, "warmup": 1}]}))
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One store with a baseline plan run and a second identical one; another with the same
    benchmark made 10 % slower on purpose."""
    d = tmp_path_factory.mktemp("cmp")
    base = d / "base.db"
    slow = d / "slow.jsonl"
    run("run", str(sleeper_plan(d / "a.json", 1.0)), "--sink", f"sqlite://{base}", "--quiet",
        check=0)
    run("run", str(sleeper_plan(d / "b.json", 1.0)), "--sink", f"sqlite://{base}", "--quiet",
        check=0)
    run("run", str(sleeper_plan(d / "c.json", 1.1)), "--sink", f"jsonl://{slow}", "--quiet",
        check=0)
    ids = [r[0] for r in sqlite3.connect(base).execute(
        "SELECT plan_run_id FROM runs GROUP BY plan_run_id ORDER BY min(start_ns)")]
    assert len(ids) == 2
    return {"dir": d, "base": base, "slow": slow, "first": ids[0], "second": ids[1]}


def test_ten_percent_slower_is_reported_slower(stores):
    proc = run("compare", f"{stores['base']}@{stores['first']}", f"jsonl://{stores['slow']}",
               "--json")
    assert proc.returncode == 1, f"a regression fails the command\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["regression"] is True
    (wall,) = [m for m in result["metrics"] if m["metric"] == "wall_time"]
    assert wall["benchmark"] == "sleeper"
    assert wall["better"] == "lower"
    assert wall["verdict"] == "slower", wall
    assert wall["p_value"] < 0.05
    assert 0.05 < wall["change"] < 0.15
    low, high = wall["change_ci"]
    assert low <= wall["change"] <= high
    assert wall["baseline"]["count"] == 6 and wall["candidate"]["count"] == 6, "warm-ups left out"

    table = run("compare", f"{stores['base']}@{stores['first']}", str(stores["slow"])).stdout
    assert "slower" in table and "sleeper" in table and "significantly worse" in table


def test_the_same_benchmark_twice_is_no_change(stores):
    proc = run("compare", f"sqlite://{stores['base']}@{stores['first']}",
               f"sqlite://{stores['base']}@{stores['second']}", "--json", check=0)
    (wall,) = [m for m in json.loads(proc.stdout)["metrics"] if m["metric"] == "wall_time"]
    assert wall["verdict"] == "no change", wall
    # Without @, a store means its latest plan run: the second.
    proc = run("compare", f"{stores['base']}@{stores['first']}", str(stores["base"]), "--json",
               check=0)
    assert json.loads(proc.stdout)["candidate"].endswith("@" + stores["second"])


def test_faster_is_not_a_failure(stores):
    proc = run("compare", str(stores["slow"]), f"{stores['base']}@{stores['first']}", "--json",
               check=0)
    (wall,) = [m for m in json.loads(proc.stdout)["metrics"] if m["metric"] == "wall_time"]
    assert wall["verdict"] == "faster"


def test_bad_input_gets_clear_errors(stores, tmp_path):
    proc = run("compare", str(tmp_path / "nope.db"), str(stores["base"]), check=2)
    assert "nope.db" in proc.stderr and "no such file" in proc.stderr
    proc = run("compare", f"{stores['base']}@0123abcd", str(stores["base"]), check=2)
    assert "no plan run 0123abcd" in proc.stderr
    assert stores["second"] in proc.stderr, "names the plan runs the store has"
    proc = run("compare", str(stores["base"]), check=2)
    assert "usage: bitfusion compare" in proc.stderr
    proc = run("compare", str(stores["base"]), str(stores["base"]), "--threshold", "lots",
               check=2)
    assert "--threshold lots" in proc.stderr
    proc = run("compare", str(stores["base"]), str(stores["base"]), "--better", "x=sideways",
               check=2)
    assert "METRIC=lower" in proc.stderr
    # No common benchmark.
    other = tmp_path / "other.db"
    run("run", str(sleeper_plan(tmp_path / "o.json", 0.01, 2, name="other")), "--sink",
        f"sqlite://{other}", "--quiet", check=0)
    proc = run("compare", str(stores["base"]), str(other), check=2)
    assert "share no benchmark" in proc.stderr
    # A single repetition: the change without a verdict, and why.
    single = tmp_path / "single.jsonl"
    run("run", str(sleeper_plan(tmp_path / "s.json", 0.01, 1)), "--sink", f"jsonl://{single}",
        "--quiet", check=0)
    proc = run("compare", str(stores["base"]), str(single), "--json", check=0)
    (wall,) = [m for m in json.loads(proc.stdout)["metrics"] if m["metric"] == "wall_time"]
    assert wall["verdict"] is None and "no test is possible" in wall["note"]
    assert wall["change"] < -0.5
    # Not a results file.
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    proc = run("compare", str(junk), str(stores["base"]), check=2)
    assert "junk.txt:1" in proc.stderr


def test_imported_google_benchmark_repetitions_are_compared(tmp_path):
    def gbench(path, base_ns):
        entries = []
        for rep in range(6):
            entries.append({"name": "BM_Copy/64", "run_name": "BM_Copy/64", "run_type": "iteration",
                            "repetitions": 6, "repetition_index": rep, "threads": 1,
                            "iterations": 1000, "real_time": base_ns + rep, "cpu_time": base_ns + rep,
                            "time_unit": "ns"})
        entries.append({"name": "BM_Copy/64_mean", "run_name": "BM_Copy/64", "run_type": "aggregate",
                        "aggregate_name": "mean", "repetitions": 6, "threads": 1, "iterations": 6,
                        "real_time": base_ns, "cpu_time": base_ns, "time_unit": "ns"})
        path.write_text(json.dumps({"context": {"date": "2026-12-01T10:00:00+00:00",
                                                "host_name": "h", "executable": "./copy_bench",
                                                "num_cpus": 2},
                                    "benchmarks": entries}))
        return path
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    run("import", "gbench", str(gbench(tmp_path / "a.json", 100)), "--sink", f"jsonl://{a}",
        check=0)
    run("import", "gbench", str(gbench(tmp_path / "b.json", 150)), "--sink", f"jsonl://{b}",
        check=0)
    proc = run("compare", str(a), str(b), "--json", check=1)
    metrics = {m["metric"]: m for m in json.loads(proc.stdout)["metrics"]}
    assert set(metrics) == {"gbench.real_time", "gbench.cpu_time"}
    assert metrics["gbench.real_time"]["benchmark"] == "copy_bench:BM_Copy/64"
    assert metrics["gbench.real_time"]["baseline"]["count"] == 6, "aggregates are not repetitions"
    assert metrics["gbench.real_time"]["verdict"] == "slower"


def test_adaptive_repetitions_stop_and_say_why(tmp_path):
    plan = tmp_path / "adaptive.json"
    plan.write_text(json.dumps({
        "name": "adaptive", "runner": "process://", "metrics": {"sources": ["null"]},
        "benchmarks": [{"name": "steady", "command": ["sh", "-c", "echo BITFUSION_RESULT score 5"],
                        "warmup": 0,
                        "repetitions": {"min": 3, "max": 10, "target_rsd": "2.5%",
                                        "metric": "score"}}]}))
    db = tmp_path / "a.db"
    proc = run("run", str(plan), "--sink", f"sqlite://{db}", "--json", check=0)
    summary = json.loads(proc.stdout)
    assert len(summary["runs"]) == 3
    assert "after 3 runs" in summary["repetitions_stopped"]["steady"]
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "run_finished"]
    assert [e["run"] for e in finished] == [1, 2, 3]
    assert finished[-1]["stopped"] and finished[-1]["target_rsd"] == 0.025
    assert finished[-1]["rsd"] == 0
    labels = [json.loads(r[0]) for r in sqlite3.connect(db).execute(
        "SELECT labels FROM runs ORDER BY start_ns")]
    assert labels[-1]["repetitions_stop"] == "target_rsd"
    assert "repetitions_stop" not in labels[0]
    # Plain lines when stderr is not a terminal: each run with its RSD once there are two.
    proc = run("run", str(plan), "--sink", "null://", check=0)
    assert "[steady run 3] ok" in proc.stderr and "RSD 0.00 %" in proc.stderr
    assert "[steady] stopped: RSD 0.00 % < 2.50 % after 3 runs" in proc.stderr


def test_live_progress_on_a_terminal(tmp_path):
    plan = tmp_path / "live.json"
    plan.write_text(json.dumps({
        "name": "live", "runner": "process://", "metrics": {"sources": ["null"]},
        "benchmarks": [{"name": "nap", "command": ["sleep", "0.2"], "warmup": 1,
                        "repetitions": 3}]}))
    code, out = run_in_terminal("run", str(plan), "--sink", "null://", rows=30, columns=160)
    assert code == 0, out
    # One status line redrawn in place, then the benchmark's closing line and the summary.
    assert "\r\x1b[K[1/1] nap on " in out
    assert "warm-up 1/1 running" in out
    assert "run 3/3 running" in out and "ETA" in out
    assert "nap on " in out and ": 3 runs" in out and "RSD" in out
    assert "median" in out and "95% CI" in out
