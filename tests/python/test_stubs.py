"""The typed stubs match the built extension: the committed _bitfusion.pyi is what
generate_stubs.py makes from it, mypy's stubtest finds no difference between stubs and module,
and mypy, reading them, accepts correct code and rejects a wrong argument type."""
import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_committed_stubs_are_what_the_module_generates():
    out = subprocess.run([sys.executable, str(ROOT / "bindings/python/generate_stubs.py"),
                          "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr


def test_stubtest_finds_the_stubs_and_the_module_agree():
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from mypy.stubtest import main; sys.exit(main())",
         "--concise", "bitfusion._bitfusion"], capture_output=True, text=True)
    # Every pybind11 class has the metaclass pybind11_type, which stubs do not spell; stubtest
    # reports each such class. Any other difference is a real one.
    differences = [line for line in out.stdout.splitlines()
                   if line and not line.endswith(" is inconsistent, metaclass differs")]
    assert out.stderr == "" and differences == [], "\n".join(differences[:50]) + out.stderr
    # The check above must have looked at the classes at all.
    assert "bitfusion._bitfusion.SampleBatch is inconsistent" in out.stdout


def test_mypy_checks_calls_against_the_stubs(tmp_path):
    (tmp_path / "ok.py").write_text(textwrap.dedent("""
        import bitfusion
        sink: bitfusion.ResultSink = bitfusion.result_sink_from_uri("null://")
        batch = bitfusion.SampleBatch({"run": "r"})
        index: int = batch.add_series(bitfusion.Series(metric="m", unit="s"))
        sink.write(batch)
    """))
    (tmp_path / "wrong.py").write_text("import bitfusion\nbitfusion.SampleBatch().append('x')\n")
    package_dir = os.path.dirname(os.path.dirname(__import__("bitfusion").__file__))
    env = dict(os.environ, MYPYPATH=package_dir)
    mypy = [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "c")]
    ok = subprocess.run(mypy + ["ok.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = subprocess.run(mypy + ["wrong.py"], cwd=tmp_path, env=env, capture_output=True,
                           text=True)
    assert wrong.returncode == 1 and "append" in wrong.stdout, wrong.stdout + wrong.stderr
