"""`pip install --no-build-isolation .` on a clean copy of the tree, into a fresh virtual
environment, then the package used from outside the tree; and the wheel built the same way.

The copy holds what git tracks plus untracked files git does not ignore (what a clone of this
working tree would have). The build reuses ccache entries of the tree's own build: the copy is
the ccache base directory and the build type is the tree's (RelWithDebInfo), so only a cold cache
makes this test slow.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROGRAMS = ["bf-matmul", "bf-stream", "bf-matmul-static", "bf-stream-static", "bitfusion-probe"]


def run(command, **kwargs):
    out = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


def clean_copy(dest):
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True)
    if listing.returncode != 0:
        pytest.fail("the install test copies the tree with `git ls-files`; run it in a checkout")
    for name in listing.stdout.decode().split("\0"):
        if not name or not (ROOT / name).is_file():
            continue  # deleted in the working tree, or a submodule
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("pip")
    src = clean_copy(base / "src")
    venv = base / "venv"
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)])
    python = str(venv / "bin" / "python")
    env = dict(os.environ, CCACHE_BASEDIR=str(src), CCACHE_NOHASHDIR="1",
               BITFUSION_BUILD_TYPE="RelWithDebInfo",
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 1))
    env.pop("PYTHONPATH", None)
    run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "."], cwd=src,
        env=env, timeout=1700)
    run([python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
         "-w", str(base / "dist"), "."], cwd=src, env=env, timeout=1700)
    outside = base / "elsewhere"
    outside.mkdir()
    return {"python": python, "src": src, "dist": base / "dist", "outside": outside, "env": env}


def test_the_installed_package_imports_from_outside_the_tree_and_runs_a_plan(installed):
    script = textwrap.dedent("""
        import json, os, sys, pydoc
        import bitfusion
        print(bitfusion.__file__)
        plan = {"name": "installed", "runner": "process://",
                "benchmarks": [{"name": "stream", "program": "bf-stream",
                                "args": ["--mib", "8", "--times", "2"], "repetitions": 2,
                                "warmup": 0}]}
        with open("plan.json", "w") as f:
            json.dump(plan, f)
        out = bitfusion.run_plan("plan.json", sinks=["jsonl://r.jsonl"])
        print([r["status"] for r in out["runs"]])
        text = pydoc.render_doc(bitfusion, renderer=pydoc.plaintext)
        print("help:", "provisioner_from_uri" in text, "NotFoundError" in text)
        print(bitfusion.version())
    """)
    env = {k: v for k, v in installed["env"].items() if k != "PYTHONPATH"}
    out = run([installed["python"], "-c", script], cwd=installed["outside"], env=env, timeout=300)
    lines = out.stdout.splitlines()
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = run([installed["python"], "-c", purelib], env=env).stdout.strip()
    assert lines[0].startswith(site + "/bitfusion/"), lines[0]
    assert lines[1] == "['ok', 'ok']", out.stdout + out.stderr
    assert lines[2] == "help: True True"
    assert lines[3] == version_in_cmake()


def version_in_cmake():
    for line in (ROOT / "CMakeLists.txt").read_text().splitlines():
        if line.startswith("project(bitfusion VERSION "):
            return line.split()[2]
    pytest.fail("no project(bitfusion VERSION x.y.z) line in CMakeLists.txt")


def test_the_wheel_carries_the_extension_programs_and_stubs(installed):
    wheels = list(installed["dist"].glob("bitfusion-*.whl"))
    assert len(wheels) == 1, wheels
    assert wheels[0].name.startswith(f"bitfusion-{version_in_cmake()}-cp3")
    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        assert {"bitfusion/__init__.py", "bitfusion/py.typed", "bitfusion/_bitfusion.pyi"} <= names
        assert any(n.startswith("bitfusion/_bitfusion.") and n.endswith(".so") for n in names)
        for program in PROGRAMS:
            info = whl.getinfo(f"bitfusion/libexec/{program}")
            assert (info.external_attr >> 16) & 0o111, f"{program} is not executable in the wheel"


def test_mypy_reads_the_installed_stubs(installed):
    good = installed["outside"] / "good.py"
    good.write_text(textwrap.dedent("""
        import bitfusion
        runner = bitfusion.container_runner_from_uri("process://")
        with runner.create(bitfusion.ContainerSpec(command=["true"])) as c:
            c.start()
            code: int = c.wait(timeout=10).exit_code
    """))
    bad = installed["outside"] / "bad.py"
    bad.write_text("import bitfusion\nbitfusion.container_runner_from_uri(42)\n")
    env = {k: v for k, v in installed["env"].items() if k != "MYPYPATH"}
    mypy = [installed["python"], "-m", "mypy", "--no-incremental", "--strict-optional"]
    run(mypy + [str(good)], cwd=installed["outside"], env=env)
    out = subprocess.run(mypy + [str(bad)], cwd=installed["outside"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1 and 'incompatible type "int"; expected "str"' in out.stdout, \
        out.stdout + out.stderr
