"""A store that is down (issue 13): the plan goes on, samples wait in the spool and the next run
sends them, a healthy sink beside it is unaffected, each warning is printed once, and the
password in the sink's URI appears nowhere."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cli_helpers import run, write_spec

ES_FAKE = Path(__file__).parents[1] / "fakes" / "es_fake.py"
PASSWORD = "Pa55-w0rd-never-shown"


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def five_runs(tmp_path):
    return write_spec(tmp_path / "plan.json", {
        "name": "outage", "runner": "process://",
        "metrics": {"sources": ["host"], "interval": "10ms"},
        "benchmarks": [{"name": "t", "command": ["true"], "repetitions": 5}]})


def everything_written(tmp_path, proc):
    """stdout, stderr and every file under tmp_path (names and contents)."""
    texts = [proc.stdout, proc.stderr]
    for path in tmp_path.rglob("*"):
        texts.append(str(path))
        if path.is_file():
            texts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(texts)


def test_a_store_that_is_down_does_not_stall_the_plan_and_the_next_run_sends(tmp_path):
    spool = tmp_path / "spool"
    port = closed_port()
    sink = f"es://elastic:{PASSWORD}@127.0.0.1:{port}/bench?spool={spool}"
    proc = run("run", str(five_runs(tmp_path)), "--sink", sink, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # nothing reached the store: not a success
    assert PASSWORD not in everything_written(tmp_path, proc)
    # Every run happened, and their records and samples wait in the spool.
    assert proc.stderr.count("] ok ") == 6, proc.stderr
    assert "results stored in es://" not in proc.stdout
    line = next(l for l in proc.stdout.splitlines() if l.startswith("results NOT yet stored in"))
    assert f"es://elastic:***@127.0.0.1:{port}/bench" in line
    assert "6 run records wait in spool " + str(spool) in line, line
    assert "the next run with this sink sends them" in line
    assert list(spool.iterdir()), "segments in the spool"
    # One warning per cause, however many runs met it; the repeats are counted at the end.
    assert proc.stderr.count(" degraded: cannot connect to Elasticsearch") == 1, proc.stderr
    assert proc.stderr.count("warning: metric stream: writing to sink") == 1, proc.stderr
    assert proc.stderr.count("warning: host metrics: no CPU frequency") <= 1, proc.stderr
    assert "metric stream: writing to sink es://elastic:***@" in proc.stderr
    assert 'the warning "metric stream: writing to sink' in proc.stderr
    assert "recurred 5 more times" in proc.stderr

    # The store comes back: the next run with this sink sends what the spool held first.
    port_file = tmp_path / "es.port"
    es = subprocess.Popen([sys.executable, str(ES_FAKE), "--port", "0", "--port-file",
                           str(port_file), "--user", f"elastic:{PASSWORD}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and es.poll() is None, "es_fake.py did not start"
            time.sleep(0.05)
        port = int(port_file.read_text())
        sink = f"es://elastic:{PASSWORD}@127.0.0.1:{port}/bench?spool={spool}"
        again = run("run", str(five_runs(tmp_path)), "--sink", sink, "--json", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert PASSWORD not in everything_written(tmp_path, again)
        summary = json.loads(again.stdout)
        (outcome,) = summary["sinks"]
        assert outcome["stored"] is True, outcome
        assert outcome["runs_written"] == 6 + 6, "the spooled runs first, then this plan's"
        assert outcome["samples_pending"] == 0 and outcome["runs_pending"] == 0
        assert [p.name for p in spool.iterdir()] == ["lock"], "the spool holds no segment"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/bench*/_count")
        token = __import__("base64").b64encode(f"elastic:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
        with urllib.request.urlopen(request) as response:
            stored = json.load(response)["count"]
        assert stored >= 12, f"{stored} documents: 12 run records and the samples"
    finally:
        es.terminate()
        es.wait(timeout=10)


def test_a_healthy_sink_beside_a_broken_one_stores_everything(tmp_path):
    records = tmp_path / "r.jsonl"
    broken = f"es://u:{PASSWORD}@127.0.0.1:{closed_port()}/x?spool={tmp_path / 'spool'}"
    proc = run("run", str(five_runs(tmp_path)), "--sink", f"jsonl://{records}", "--sink", broken,
               cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert f"results stored in jsonl://{records}" in proc.stdout
    assert "results NOT yet stored in es://u:***@" in proc.stdout
    runs = [json.loads(l) for l in records.read_text().splitlines()
            if json.loads(l).get("type") == "run"]
    assert len(runs) == 6 and all(r["status"] == "ok" for r in runs)
    assert PASSWORD not in everything_written(tmp_path, proc)
