"""Builds the `bitfusion` Python package with CMake for pip (see pyproject.toml).

The extension bitfusion._bitfusion is the CMake target `bitfusion_python` (the library's objects
linked in, so nothing else has to be installed beside it); the bundled programs that plans name
(bf-matmul, bf-stream, their static twins for bare images, and bitfusion-probe) go into the
package's libexec/ folder, where run_plan() looks first.

Environment:
  BITFUSION_BUILD_TYPE   CMake build type (default Release)
  BITFUSION_CMAKE_ARGS   extra arguments for the CMake configure step (split on whitespace)
  CMAKE_BUILD_PARALLEL_LEVEL   build jobs (default: the number of CPUs)
The CMake build folder is build-python/ at the repository root, so a rebuild is incremental and
ccache (with CCACHE_BASEDIR set to the tree) reuses what a build/ of the same type compiled.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PACKAGE_SOURCE = ROOT / "bindings" / "python" / "bitfusion"
# CMake target -> file name of the programs bundled in bitfusion/libexec.
PROGRAMS = {
    "bitfusion_probe": "bitfusion-probe",
    "bf_matmul": "bf-matmul",
    "bf_stream": "bf-stream",
    "bf_matmul_static": "bf-matmul-static",
    "bf_stream_static": "bf-stream-static",
}


def project_version():
    """The version in CMakeLists.txt's project() call: the one place it is written."""
    text = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r"project\(bitfusion\s+VERSION\s+([0-9.]+)", text)
    if not match:
        sys.exit("setup.py: no `project(bitfusion VERSION x.y.z` in CMakeLists.txt")
    return match.group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configures and builds the tree's CMake project, then copies its outputs into the
    package."""

    def build_extension(self, ext):
        for tool in ("cmake",):
            if shutil.which(tool) is None:
                sys.exit(f"setup.py: `{tool}` is not on PATH; install it (Debian: apt install "
                         "cmake ninja-build) or run scripts/setup.sh")
        build_dir = ROOT / "build-python"
        build_type = os.environ.get("BITFUSION_BUILD_TYPE", "Release")
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir),
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBITFUSION_BUILD_PYTHON=ON",
            "-DBITFUSION_BUILD_TESTS=OFF",
            "-DBITFUSION_BUILD_BENCHMARKS=OFF",
            "-DBITFUSION_BUILD_CLI=OFF",
        ]
        if shutil.which("ninja") and not (build_dir / "Makefile").exists():
            configure += ["-G", "Ninja"]
        configure += os.environ.get("BITFUSION_CMAKE_ARGS", "").split()
        self._run(configure)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        self._run(["cmake", "--build", str(build_dir), "-j", jobs, "--target", "bitfusion_python",
                   *PROGRAMS])

        module = self.get_ext_fullpath(ext.name)
        built = list((build_dir / "python" / "bitfusion").glob("_bitfusion*.so"))
        if len(built) != 1:
            sys.exit(f"setup.py: expected one _bitfusion*.so in {build_dir}/python/bitfusion, "
                     f"found {len(built)}")
        os.makedirs(os.path.dirname(module), exist_ok=True)
        shutil.copyfile(built[0], module)
        libexec = Path(module).parent / "libexec"
        libexec.mkdir(exist_ok=True)
        for name in PROGRAMS.values():
            shutil.copy2(build_dir / "bin" / name, libexec / name)

    def _run(self, command):
        print("setup.py:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)


setup(
    version=project_version(),
    packages=["bitfusion"],
    package_dir={"bitfusion": str(PACKAGE_SOURCE.relative_to(ROOT))},
    package_data={"bitfusion": ["py.typed", "*.pyi"]},
    ext_modules=[CMakeExtension("bitfusion._bitfusion")],
    cmdclass={"build_ext": CMakeBuild},
    # setuptools' own staging folder, kept apart from the CMake build folders.
    options={"build": {"build_base": "build-python/setuptools"}},
    zip_safe=False,
)
