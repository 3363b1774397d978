"""Fixtures for the Python SDK's tests: a dockerd of the tests' own (its socket, data root and
exec root under /tmp, stopped by PID) with a busybox image imported from this host's static
busybox. Without root or dockerd the tests that need it skip; under CI=true they fail.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

import bitfusion

BUSYBOX = "/bin/busybox"
IMAGE = "bftest/busybox:1"


def unavailable(why):
    if os.environ.get("CI") == "true":
        pytest.fail(why + " (CI=true: a test that cannot reach its service is a failure)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def dockerd():
    if os.geteuid() != 0:
        unavailable("dockerd needs root")
    if shutil.which("dockerd") is None:
        unavailable("dockerd is not installed (apt-get install docker.io)")
    if not os.access(BUSYBOX, os.X_OK):
        unavailable(BUSYBOX + " is missing (apt-get install busybox-static)")
    root = f"/tmp/bfpy-{os.getpid()}"
    exec_root = f"/tmp/bfpx-{os.getpid()}"
    os.makedirs(root + "/data", exist_ok=True)
    sock = root + "/d.sock"
    log = open(root + "/dockerd.log", "w")
    proc = subprocess.Popen(
        ["dockerd", "--host", "unix://" + sock, "--data-root", root + "/data", "--exec-root",
         exec_root, "--pidfile", root + "/d.pid", "--bridge=none", "--iptables=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = "docker://" + sock
    try:
        runner = None
        for _ in range(600):
            try:
                runner = bitfusion.container_runner_from_uri(uri)
                runner.capabilities()
                break
            except bitfusion.Error:
                runner = None
                time.sleep(0.05)
        if runner is None:
            with open(root + "/dockerd.log") as f:
                pytest.fail("dockerd did not come up; its log ends:\n" + f.read()[-3000:])
        rootfs = root + "/rootfs"
        for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy(BUSYBOX, rootfs + "/bin/busybox")
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout
        for applet in applets.split():
            if applet != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        with open(rootfs + "/etc/passwd", "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        runner.import_image(rootfs, IMAGE, changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]'],
                            timeout=120)
        yield {"uri": uri, "image": IMAGE}
    finally:
        try:
            runner = bitfusion.container_runner_from_uri(uri)
            for c in runner.list_containers():
                runner.open_container(c.id).kill()
        except bitfusion.Error:
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["umount", "-l", exec_root + "/netns/default"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
