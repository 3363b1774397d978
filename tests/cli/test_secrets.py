"""No secret reaches any output (issue 13): every command runs with credentials in its URIs and in
its environment, and everything it wrote -- stdout, stderr, the records it stored, the files and
file names it left (spools, reports) -- is searched for them."""
import json
import socket
from pathlib import Path

import pytest

from cli_helpers import run, write_spec

# Each secret is distinct, so a finding names the path it took.
SECRETS = {
    "es": "es-Secret-1f3a", "influx": "influx-Secret-2b4c", "pg": "pg-Secret-3c5d",
    "at": "at@Secret-4d6e", "slash": "sl/ash-Secret-5e7f", "env_es": "envES-Secret-6f80",
    "aws": "awsSecretKey7a91bc", "pgenv": "pgenv-Secret-8b02", "stderr": "stderr-Secret-9c13",
    "token": "aws-Session-Token-ad24",
    "os": "os-Secret-be35", "os_app": "osApp-Secret-cf46", "sl": "sl-ApiKey-d057",
    "slurm": "slurm-Jwt-e168", "registry": "registry-Secret-f279", "es_key": "esKey-Secret-0a8b",
    "rackspace": "rax-ApiKey-1b9c",
}
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE000000001",
    "AWS_SECRET_ACCESS_KEY": SECRETS["aws"],
    "AWS_SESSION_TOKEN": SECRETS["token"],
    "PGPASSWORD": SECRETS["pgenv"],
    "BITFUSION_ES_PASSWORD": SECRETS["env_es"],
    "OS_USERNAME": "demo", "OS_PROJECT_NAME": "demo", "OS_PASSWORD": SECRETS["os"],
    "OS_APPLICATION_CREDENTIAL_SECRET": SECRETS["os_app"],
    "RACKSPACE_USERNAME": "raxuser", "RACKSPACE_API_KEY": SECRETS["rackspace"],
    "SL_USERNAME": "sluser", "SL_API_KEY": SECRETS["sl"],
    "SLURM_JWT": SECRETS["slurm"],
    "BITFUSION_REGISTRY_USERNAME": "bench", "BITFUSION_REGISTRY_PASSWORD": SECRETS["registry"],
    "BITFUSION_ES_API_KEY": SECRETS["es_key"],
}


# The test's own inputs, which hold secrets on purpose.
INPUTS = {"plan.json"}


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home(tmp_path):
    """A HOME and XDG_STATE_HOME of the test's own, so default spools land where we search."""
    env = dict(ENV, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"))
    (tmp_path / "home").mkdir()
    return env


def assert_no_secret(tmp_path, *procs):
    texts = []
    for proc in procs:
        texts += [proc.stdout, proc.stderr]
    for path in tmp_path.rglob("*"):
        texts.append(str(path))
        if path.is_file() and path.name not in INPUTS:
            texts.append(path.read_bytes().decode(errors="replace"))
    everything = "\n".join(texts)
    for name, secret in SECRETS.items():
        assert secret not in everything, f"secret {name} appeared"
        # Pieces of the ones with '@' and '/' too, as a parser cutting there would show them.
        for piece in secret.replace("/", "@").split("@"):
            if len(piece) >= 6:
                assert piece not in everything, f"a piece of secret {name} appeared: {piece}"


def plan(tmp_path, command):
    return write_spec(tmp_path / "plan.json", {
        "name": "secrets", "runner": "process://",
        "metrics": {"sources": ["host"], "interval": "10ms"},
        "benchmarks": [{"name": "b", "command": command, "repetitions": 2}]})


def sink_uris(port):
    return [
        f"es://elastic:{SECRETS['es']}@127.0.0.1:{port}/idx",
        f"influx://admin:{SECRETS['influx']}@127.0.0.1:{port}/db",
        f"es://elastic@127.0.0.1:{port}/from-env",  # BITFUSION_ES_PASSWORD
    ]


def test_run_with_secrets_in_sinks_environment_and_a_failing_program(tmp_path, home):
    port = closed_port()
    records = tmp_path / "r.jsonl"
    failing = ["sh", "-c", f"echo password={SECRETS['stderr']} >&2; exit 3"]
    args = ["run", str(plan(tmp_path, failing)), "--sink", f"jsonl://{records}"]
    for uri in sink_uris(port):
        args += ["--sink", uri]
    text = run(*args, cwd=tmp_path, env=home)
    as_json = run(*args, "--json", cwd=tmp_path, env=home)
    for proc in (text, as_json):
        assert proc.returncode == 1, proc.stderr
    assert_no_secret(tmp_path, text, as_json)
    # The records are there, and say what failed without the secret.
    runs = [json.loads(l) for l in records.read_text().splitlines() if '"type":"run"' in l]
    assert runs and all(r["status"] == "failed" for r in runs), runs
    assert all("password=***" in r["error"] for r in runs), runs[0]["error"]
    assert "es://elastic:***@127.0.0.1" in text.stdout
    assert json.loads(as_json.stdout)["sinks"][1]["uri"].startswith("es://elastic:***@")


def test_postgres_and_unparsable_uris_do_not_show_their_passwords(tmp_path, home):
    port = closed_port()
    spec = plan(tmp_path, ["true"])
    procs = [run("run", str(spec), "--sink", uri, cwd=tmp_path, env=home) for uri in (
        f"postgres://bench:{SECRETS['pg']}@127.0.0.1:{port}/results",
        f"postgres://bench@127.0.0.1:{port}/results",  # PGPASSWORD
        f"es://elastic:{SECRETS['at']}@127.0.0.1:{port}/idx",
        f"influx://admin:{SECRETS['slash']}@127.0.0.1:{port}/db",
    )]
    assert all(p.returncode != 0 for p in procs), [p.stderr for p in procs]
    assert "percent-encode" in procs[2].stderr and "percent-encode" in procs[3].stderr
    assert_no_secret(tmp_path, *procs)


def test_metrics_import_machines_and_reap_with_secrets(tmp_path, home):
    port = closed_port()
    es = f"es://elastic:{SECRETS['es']}@127.0.0.1:{port}/idx"
    metrics = run("metrics", "--source", "host", "--interval", "50ms", "--duration", "300ms",
                  "--sink", es, "--live", "never", cwd=tmp_path, env=home)
    gbench = tmp_path / "g.json"
    gbench.write_text(json.dumps({
        "context": {"date": "2026-12-03T10:00:00+00:00", "host_name": "h", "executable": "./b",
                    "num_cpus": 2, "mhz_per_cpu": 2000, "cpu_scaling_enabled": False,
                    "caches": [], "load_avg": [], "library_build_type": "release"},
        "benchmarks": [{"name": "BM_x", "family_index": 0, "per_family_instance_index": 0,
                        "run_name": "BM_x", "run_type": "iteration", "repetitions": 1,
                        "repetition_index": 0, "threads": 1, "iterations": 10,
                        "real_time": 1.5, "cpu_time": 1.4, "time_unit": "ns"}]}))
    imported = run("import", "gbench", str(gbench), "--sink", es, cwd=tmp_path, env=home)
    aws = f"aws://us-east-1?endpoint=http://127.0.0.1:{port}"
    machines = run("machines", "list", "--provisioner", aws, cwd=tmp_path, env=home)
    reap = run("reap", "--provisioner", aws, "--dry-run", cwd=tmp_path, env=home)
    inventory = run("inventory", "--json", cwd=tmp_path, env=home)
    assert inventory.returncode == 0, inventory.stderr
    assert machines.returncode != 0 and reap.returncode != 0
    assert "127.0.0.1" in machines.stderr, machines.stderr  # it says what it could not reach
    assert_no_secret(tmp_path, metrics, imported, machines, reap, inventory)


def test_clouds_slurm_and_a_registry_with_credentials_from_the_environment(tmp_path, home):
    """Every provider and runner that takes a credential from the environment meets a closed port:
    each fails, says what it could not reach, and shows none of them."""
    port = closed_port()
    procs = []
    for provisioner in (
            f"openstack://127.0.0.1:{port}/v3?tls=false&region=RegionOne&image=u&type=m1.small",
            f"rackspace://DFW?identity=http://127.0.0.1:{port}/v2.0&image=u&type=m1.small",
            f"softlayer://dal13?endpoint=http://127.0.0.1:{port}/rest/v3.1"):
        procs.append(run("machines", "list", "--provisioner", provisioner, cwd=tmp_path, env=home))
    slurm = write_spec(tmp_path / "plan.json", {
        "name": "secrets", "runner": f"slurm://root@127.0.0.1:{port}?partition=debug",
        "registry": f"127.0.0.1:{port}",
        "benchmarks": [{"name": "b", "command": ["true"], "repetitions": 1}]})
    procs.append(run("run", str(slurm), "--sink", f"jsonl://{tmp_path / 'r.jsonl'}",
                     cwd=tmp_path, env=home))
    procs.append(run("run", str(slurm), "--json", cwd=tmp_path, env=home))
    for proc in procs:
        assert proc.returncode != 0, proc.stdout
        assert "127.0.0.1" in proc.stderr + proc.stdout, proc.stderr
    assert_no_secret(tmp_path, *procs)
