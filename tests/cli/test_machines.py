"""`bitfusion machines ...` and `bitfusion reap --provisioner` against moto's EC2 server, which
this module starts on a free port with signature checking (INITIAL_NO_AUTH_ACTION_COUNT and an
IAM key) and instance-type and image validation on, and stops by PID.

moto lives in the image's pyenv Python 3.11 (BITFUSION_MOTO_PYTHON overrides); when it is missing
the tests skip, and under CI=true they fail.
"""
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

BIN = os.environ.get("BITFUSION_BIN", "bitfusion")
MOTO_PYTHON = os.environ.get("BITFUSION_MOTO_PYTHON", "/root/.pyenv/versions/3.11.7/bin/python3")

BOOTSTRAP = """
import json, sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="bench")
iam.put_user_policy(UserName="bench", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="bench")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    ok = os.access(MOTO_PYTHON, os.X_OK) and subprocess.run(
        [MOTO_PYTHON, "-c", "import moto.server, boto3"], capture_output=True).returncode == 0
    if not ok:
        why = f"moto is not importable by {MOTO_PYTHON} (set BITFUSION_MOTO_PYTHON)"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: a test that cannot reach its service is a failure)")
        pytest.skip(why)
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3",
           "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true", "MOTO_ENABLE_AMI_VALIDATION": "true"}
    proc = subprocess.Popen([MOTO_PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        key = subprocess.run([MOTO_PYTHON, "-c", BOOTSTRAP, url], capture_output=True, text=True,
                             check=True, timeout=60).stdout.split()
        yield {"url": url, "key": key[0], "secret": key[1],
               "uri": f"aws://us-east-1?endpoint={url}&wait_ssh=false&poll=50ms&backoff=20ms"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def aws_env(moto, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=moto["key"], AWS_SECRET_ACCESS_KEY=moto["secret"],
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    env.update(extra)
    return env


def bf(moto, *args, check=None, timeout=300, **env):
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=aws_env(moto, **env))
    if check is not None:
        assert proc.returncode == check, \
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def listed(moto, run_id=None):
    out = json.loads(bf(moto, "machines", "list", "--provisioner", moto["uri"], "--all", "--json",
                        check=0).stdout)
    return [m for m in out if run_id is None or m["run_id"] == run_id]


@pytest.mark.parametrize("sub", ["types", "up", "list", "down"])
def test_machines_subcommands_have_help(sub):
    proc = subprocess.run([BIN, "machines", sub, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and f"usage: bitfusion machines {sub}" in proc.stdout
    bad = subprocess.run([BIN, "machines", "frob"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown subcommand" in bad.stderr


def test_null_provisioner_round_trip_without_a_cloud():
    # null:// forgets between processes; one `up` exercises create, wait, keep and printing.
    proc = subprocess.run([BIN, "machines", "up", "--provisioner", "null://", "--count", "2",
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    machines = json.loads(proc.stdout)
    assert [m["state"] for m in machines] == ["running", "running"]
    assert all(int(m["expires"]) > time.time() for m in machines)


def test_types_resolve_requirements_with_explanation(moto):
    out = json.loads(bf(moto, "machines", "types", "--provisioner", moto["uri"], "--gpu", "A10G",
                        "--explain", "--json", check=0).stdout)
    assert out["chosen"]["name"] == "g5.xlarge"
    assert out["chosen"]["accelerators"][0]["model"] == "A10G"
    assert "the cheapest of" in out["summary"]
    assert any(line.startswith("t3.micro: no gpu") for line in out["explanation"])
    text = bf(moto, "machines", "types", "--provisioner", moto["uri"], "--fpga", "xilinx",
              check=0).stdout
    assert "resolves to" in text and "fpga" in text
    proc = bf(moto, "machines", "types", "--provisioner", moto["uri"], "--gpu", "quantum:2",
              check=2)
    assert "no machine type" in proc.stderr and "quantum" in proc.stderr


def test_up_list_down(moto):
    run_id = f"cli-{os.getpid()}"
    up = json.loads(bf(moto, "machines", "up", "--provisioner", moto["uri"], "--type", "t3.micro",
                       "--count", "3", "--ttl", "1h", "--tag", "team=perf", "--run-id", run_id,
                       "--json", check=0).stdout)
    assert len(up) == 3
    for m in up:
        assert m["state"] == "running" and m["id"].startswith("i-")
        assert 0 < m["created_ns"] <= m["running_ns"] <= m["ready_ns"]
        assert m["labels"]["team"] == "perf"
        assert "bitfusion.pid" not in m["labels"]  # handed over: only expiry or the run id end it
    mine = listed(moto, run_id)
    assert sorted(m["id"] for m in mine) == sorted(m["id"] for m in up)
    assert all(m["owner"] == socket.gethostname() and int(m["expires"]) > time.time() + 3000
               for m in mine)
    # A kept machine survives reap: its creator is gone but it has not expired.
    bf(moto, "reap", "--provisioner", moto["uri"], check=0)
    assert all(m["state"] == "running" for m in listed(moto, run_id))
    down = json.loads(bf(moto, "machines", "down", "--provisioner", moto["uri"], "--run-id", run_id,
                         "--json", check=0).stdout)
    assert sorted(down["destroyed"]) == sorted(m["id"] for m in up)
    assert all(m["state"] in ("shutting-down", "terminated") for m in listed(moto, run_id))


def test_bad_input_is_one_clear_error_and_creates_nothing(moto):
    before = len(listed(moto))
    proc = bf(moto, "machines", "up", "--provisioner", moto["uri"], "--type", "zz9.huge", check=2)
    assert "InvalidInstanceType" in proc.stderr
    proc = bf(moto, "machines", "up", "--provisioner", moto["uri"], "--type", "t3.micro",
              "--image", "ami-00000000", check=2)
    assert "InvalidAMIID" in proc.stderr
    proc = bf(moto, "machines", "up", "--provisioner", moto["uri"], "--gpu", "quantum", check=2)
    assert "no machine type" in proc.stderr
    proc = bf(moto, "machines", "list", "--provisioner", moto["uri"], check=1,
              AWS_SECRET_ACCESS_KEY="wrong-secret-value")
    assert "AuthFailure" in proc.stderr and "wrong-secret-value" not in proc.stderr
    proc = bf(moto, "machines", "list", "--provisioner", moto["uri"], check=1,
              AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    assert "no AWS credentials found" in proc.stderr
    proc = bf(moto, "machines", "list", "--provisioner", "aws://moon-1?endpoint=" + moto["url"],
              check=2)
    assert "not an AWS region" in proc.stderr
    assert bf(moto, "machines", "down", "--provisioner", moto["uri"], check=2).returncode == 2
    assert len(listed(moto)) == before


def test_sigkilled_up_leaves_nothing_after_reap(moto):
    """SIGKILL `machines up --count 20` at random moments; then `reap` must leave no tagged
    instance of a killed run that is not terminating."""
    rng = random.Random(int(os.environ.get("BITFUSION_CRASH_SEED", "9")))
    start = time.monotonic()
    bf(moto, "machines", "up", "--provisioner", moto["uri"], "--type", "t3.micro", "--count", "20",
       "--run-id", "crash-calibrate", check=0)
    full = time.monotonic() - start
    bf(moto, "machines", "down", "--provisioner", moto["uri"], "--run-id", "crash-calibrate",
       check=0)
    killed, finished = [], []
    trial = 0
    while len(killed) < 10 and trial < 30:
        run_id = f"crash-{os.getpid()}-{trial}"
        trial += 1
        proc = subprocess.Popen([BIN, "machines", "up", "--provisioner", moto["uri"], "--type",
                                 "t3.micro", "--count", "20", "--run-id", run_id],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=aws_env(moto))
        time.sleep(rng.uniform(0.0, full * 0.9))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.append(run_id)
        else:
            finished.append(run_id)
    assert len(killed) >= 10, f"only {len(killed)} of {trial} trials were killed in time"
    bf(moto, "reap", "--provisioner", moto["uri"], check=0)
    live = [m for m in listed(moto) if m["run_id"] in killed
            and m["state"] not in ("shutting-down", "terminated")]
    # A kill that landed after `up` handed its machines over (no creator tags) left them on
    # purpose, as a finished `up` does; every other one must be gone.
    left = [m for m in live if "bitfusion.pid" in m["labels"]]
    assert left == [], f"{len(left)} instances of killed runs survived reap"
    finished += sorted({m["run_id"] for m in live})
    for run_id in finished:
        bf(moto, "machines", "down", "--provisioner", moto["uri"], "--run-id", run_id, check=0)
