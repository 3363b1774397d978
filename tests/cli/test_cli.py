"""End-to-end tests of the `bitfusion` command, run by CTest with Debian's python3-pytest.

BITFUSION_BIN points at the built command; BITFUSION_SPECS at examples/specs.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import BIN, SPECS, run, run_in_terminal, write_spec


@pytest.mark.parametrize("command",
                         ["run", "inventory", "metrics", "reap", "import", "compare", "report"])
def test_every_subcommand_has_help(command):
    proc = run(command, "--help", check=0)
    assert f"usage: bitfusion {command}" in proc.stdout
    assert "--help" in proc.stdout


def test_top_level_help_and_unknown_command():
    assert "run SPEC" in run("--help", check=0).stdout
    proc = run("frobnicate", check=2)
    assert 'unknown command "frobnicate"' in proc.stderr


def test_inventory_json_agrees_with_proc_and_nproc():
    machine = json.loads(run("inventory", "--json", check=0).stdout)
    nproc = int(subprocess.run(["nproc", "--all"], capture_output=True, text=True).stdout)
    assert machine["cpu"]["threads"] == nproc
    assert machine["cpu"]["threads"] == os.cpu_count()
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = {line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")}
    if models:
        assert machine["cpu"]["model_name"] in models
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    assert meminfo[0] == "MemTotal:"
    assert machine["memory_bytes"] == int(meminfo[1]) * 1024
    assert machine["kernel"] == os.uname().release
    assert machine["hostname"] == os.uname().nodename
    assert 1 <= machine["cpu"]["sockets"] <= machine["cpu"]["cores"] <= machine["cpu"]["threads"]


def test_inventory_text():
    out = run("inventory", check=0).stdout
    for key in ("hostname", "cpu", "topology", "memory", "accelerators"):
        assert key in out


def test_quickstart_stores_runs_machine_and_samples(tmp_path):
    proc = run("run", str(SPECS / "quickstart.json"), cwd=tmp_path, check=0)
    for row in ("matmul.gflops", "stream.triad", "wall_time"):
        assert row in proc.stdout
    assert "[matmul run 5] ok" in proc.stderr
    db = sqlite3.connect(tmp_path / "bitfusion-results.db")
    runs = db.execute("SELECT run_id, status, warmup, start_ns, end_ns, machine_id FROM runs").fetchall()
    assert len(runs) == 12  # 2 benchmarks x (1 warm-up + 5 runs)
    assert all(r[1] == "ok" for r in runs)
    assert sum(1 for r in runs if r[2]) == 2
    machines = db.execute("SELECT machine_id, fingerprint FROM machines").fetchall()
    assert len(machines) == 1
    assert json.loads(machines[0][1])["cpu"]["threads"] == os.cpu_count()
    assert {r[5] for r in runs} == {machines[0][0]}
    results = {row[0] for row in db.execute("SELECT DISTINCT metric FROM results")}
    assert {"matmul.gflops", "stream.triad", "wall_time"} <= results
    # About one host sample per 10 ms of each run.
    for run_id, _, _, start_ns, end_ns, _ in runs:
        ticks = db.execute(
            "SELECT COUNT(DISTINCT s.timestamp_ns) FROM samples s JOIN series r ON s.series_id = r.series_id "
            "WHERE r.labels LIKE ?", (f'%"run_id":"{run_id}"%',)).fetchone()[0]
        expected = (end_ns - start_ns) / 10e6
        assert ticks >= max(1, 0.5 * expected), (run_id, ticks, expected)
        assert ticks <= expected + 3, (run_id, ticks, expected)


def test_run_json_summary(tmp_path):
    spec = write_spec(tmp_path / "s.json", {
        "benchmarks": [{"name": "echo", "command": ["sh", "-c", "echo 'BITFUSION_RESULT answer 42'"],
                        "repetitions": 2, "warmup": 0}]})
    out = json.loads(run("run", str(spec), "--json", "--sink", "null://", check=0).stdout)
    rows = {r["metric"]: r for r in out["summary"]}
    assert rows["answer"]["median"] == 42
    assert rows["answer"]["runs"] == 2
    assert len(out["runs"]) == 2 and out["failed_runs"] == 0


def test_malformed_spec_names_file_and_line(tmp_path):
    spec = tmp_path / "broken.json"
    spec.write_text('{\n  "benchmarks": [\n    {"program": "bf-stream",}\n  ]\n}\n')
    proc = run("run", str(spec), check=2)
    assert f"{spec}: line 3" in proc.stderr


def test_bad_field_names_the_field(tmp_path):
    spec = write_spec(tmp_path / "s.json", {"benchmarks": [{"program": "bf-stream", "repetitions": -1}]})
    assert "benchmarks[0].repetitions" in run("run", str(spec), check=2).stderr


def test_unknown_sink_scheme_lists_known_ones(tmp_path):
    spec = write_spec(tmp_path / "s.json", {"benchmarks": [{"command": ["true"]}]})
    proc = run("run", str(spec), "--sink", "mongodb://db/x", check=2)
    assert 'unknown scheme "mongodb"' in proc.stderr
    for scheme in ("sqlite", "jsonl", "csv", "null"):
        assert scheme in proc.stderr


def test_unwritable_sink_fails_before_the_run(tmp_path):
    marker = tmp_path / "ran"
    spec = write_spec(tmp_path / "s.json", {"benchmarks": [{"command": ["touch", str(marker)]}]})
    proc = run("run", str(spec), "--sink", "sqlite:///nonexistent/dir/r.db", check=2)
    assert "/nonexistent/dir/r.db" in proc.stderr
    assert not marker.exists()


def test_ctrl_c_stops_flushes_and_marks_interrupted(tmp_path):
    spec = write_spec(tmp_path / "s.json", {
        "metrics": {"sources": ["host"], "interval": "10ms"},
        "sinks": ["sqlite://r.db"],
        "benchmarks": [{"name": "long", "command": ["sleep", "60"], "repetitions": 3, "warmup": 0}]})
    proc = subprocess.Popen([BIN, "run", str(spec)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("bitfusion run did not stop after SIGINT")
    assert proc.returncode == 130, err
    assert "interrupted" in err
    db = sqlite3.connect(tmp_path / "r.db")
    runs = db.execute("SELECT status, end_ns - start_ns FROM runs").fetchall()
    assert len(runs) == 1 and runs[0][0] == "interrupted"
    samples = db.execute("SELECT COUNT(DISTINCT timestamp_ns) FROM samples").fetchone()[0]
    assert samples >= 50, "about 1.5 s at 10 ms were measured and must be stored"


def test_metrics_streams_jsonl_at_the_interval():
    proc = run("metrics", "--source", "host", "--interval", "10ms", "--duration", "1s", check=0)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines, proc.stderr
    stamps = {line["timestamp_ns"] for line in lines}
    assert 50 <= len(stamps) <= 102, len(stamps)
    metrics = {line["metric"] for line in lines}
    assert {"cpu.user", "mem.available"} <= metrics
    assert "samples" in proc.stderr


def test_metrics_to_a_pipe_ends_when_its_reader_stops_reading():
    # `bitfusion metrics | head -1`: once head has its line and leaves, sampling stops. The
    # duration is an hour, so a run that ignores the reader (or blocks on the full pipe, as the
    # sink once did) is ended by the timeout and fails the test.
    metrics = subprocess.Popen([BIN, "metrics", "--source", "host", "--interval", "10ms",
                                "--duration", "1h"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        first = metrics.stdout.readline()
        metrics.stdout.close()
        _, err = metrics.communicate(timeout=60)
    finally:
        metrics.kill()
    assert json.loads(first)["type"] == "sample"
    assert metrics.returncode == 0, err
    assert b"unsent" not in err, err
    # The reader leaving is how such a run ends, not a fault: no warning about the pipe.
    assert b"Broken pipe" not in err and b"warning: metric stream" not in err, err


def test_metrics_of_a_process(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        proc = run("metrics", "--source", f"process:{sleeper.pid}", "--interval", "20ms",
                   "--duration", "300ms", "--sink", f"jsonl://{tmp_path}/p.jsonl", check=0)
    finally:
        sleeper.kill()
        sleeper.wait()
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert lines, proc.stderr
    assert all(line["metadata"].get("pid") == str(sleeper.pid) for line in lines)


def test_metrics_on_a_terminal_shows_a_live_view_instead_of_jsonl():
    code, out = run_in_terminal("metrics", "--source", "host", "--interval", "10ms",
                                "--duration", "2500ms", rows=30, columns=120)
    assert code == 0, out
    frames = out.split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 3, out  # redrawn each second, then a final frame
    last = frames[-1]
    assert "METRIC" in last and "observer" in last
    lines = [line for line in last.splitlines() if line.strip()]
    # Header, column titles, 27 series, a "more" line: cut to the terminal's 30 rows.
    assert any("more series" in line for line in lines), last
    assert all(len(line) <= 120 for line in lines if "bitfusion metrics:" not in line)
    assert "cpu.user" in last and "s/s" in last  # a counter shown as a rate
    assert '"metric"' not in out  # no JSON lines on the terminal


def test_metrics_live_view_can_be_forced_and_refused():
    proc = run("metrics", "--live", "always", "--duration", "300ms", check=0)
    assert "\x1b[H\x1b[2J" in proc.stdout and "METRIC" in proc.stdout
    proc = run("metrics", "--live", "sometimes", check=2)
    assert "--live must be auto, always or never" in proc.stderr


def test_metrics_bad_duration():
    proc = run("metrics", "--duration", "forever", check=2)
    assert "--duration" in proc.stderr


NO_ENGINE = {"DOCKER_HOST": "unix:///tmp/bf-no-engine-here.sock"}


def test_reap_help_names_its_options():
    out = run("reap", "--help", check=0).stdout
    for option in ("--runner", "--all-expired", "--run-id", "--dry-run"):
        assert option in out


def test_docker_quickstart_without_an_engine_points_at_the_process_quickstart(tmp_path):
    proc = run("run", str(SPECS / "quickstart-docker.json"), cwd=tmp_path, env=NO_ENGINE, check=1)
    assert "/tmp/bf-no-engine-here.sock" in proc.stderr
    assert "is dockerd running?" in proc.stderr
    assert "process://" in proc.stderr and "quickstart.json" in proc.stderr


def test_reap_without_an_engine_names_the_socket():
    proc = run("reap", env=NO_ENGINE, check=1)
    assert "/tmp/bf-no-engine-here.sock" in proc.stderr


def test_reap_rejects_an_unknown_runner_scheme():
    proc = run("reap", "--runner", "nosuch://", check=2)
    assert "docker" in proc.stderr  # the known schemes are listed


def test_import_gbench_json_of_a_real_benchmark_program(tmp_path):
    """One of bitfusion's own benchmark programs writes real Google Benchmark JSON; importing it
    stores every number exactly, once, with the run and its machine."""
    program = Path(BIN).parent / "sink_benchmark"
    if not program.exists():
        pytest.fail(f"{program} is not built; build the benchmarks (BITFUSION_BUILD_BENCHMARKS)")
    out = tmp_path / "gbench.json"
    subprocess.run([str(program), "--benchmark_filter=BM_CsvEncode", "--benchmark_min_time=0.01",
                    "--benchmark_repetitions=2", f"--benchmark_out={out}",
                    "--benchmark_out_format=json"], check=True, capture_output=True, timeout=120)
    gbench = json.loads(out.read_text())
    db = tmp_path / "r.db"
    lines = tmp_path / "r.jsonl"
    proc = run("import", "gbench", str(out), "--sink", f"sqlite://{db}", "--sink",
               f"jsonl://{lines}", "--label", "team=perf", check=0)
    assert "imported" in proc.stdout
    samples = [json.loads(x) for x in lines.read_text().splitlines()]
    runs = [s for s in samples if s["type"] == "run"]
    samples = [s for s in samples if s["type"] == "sample"]
    assert len(runs) == 1 and runs[0]["benchmark"] == "sink_benchmark"
    by_key = {(s["metadata"]["benchmark"], s["metadata"].get("repetition_index"), s["metric"]): s
              for s in samples}
    entries = gbench["benchmarks"]
    assert len(entries) == 2 + 4  # two repetitions, mean/median/stddev/cv
    for e in entries:
        key = (e["name"], str(e["repetition_index"]) if "repetition_index" in e else None)
        assert by_key[key + ("gbench.real_time",)]["value"] == e["real_time"]
        assert by_key[key + ("gbench.cpu_time",)]["value"] == e["cpu_time"]
        assert by_key[key + ("gbench.counter.samples/s",)]["value"] == e["samples/s"]
        assert by_key[key + ("gbench.real_time",)]["metadata"]["team"] == "perf"
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == len(samples)
    host = con.execute("SELECT hostname FROM machines").fetchone()[0]
    assert host == gbench["context"]["host_name"]
    # The same file again names the same run: it replaces itself.
    run("import", "gbench", str(out), "--sink", f"sqlite://{db}", check=0)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_import_refuses_what_it_cannot_read(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": []}')
    proc = run("import", "gbench", str(bad), "--sink", "null://", check=2)
    assert "benchmarks" in proc.stderr
    proc = run("import", "csv", str(bad), "--sink", "null://", check=2)
    assert "gbench" in proc.stderr
    assert "--sink" in run("import", "gbench", str(bad), check=2).stderr
