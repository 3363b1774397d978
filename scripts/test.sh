#!/usr/bin/env bash
# The README's second command: set up, build, and run every test — unit and end-to-end tests,
# the same unit tests under ASan+UBSan, the clang-format check, and a consumer built against
# the installed package. Exits non-zero on the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"

jobs=$(nproc)
python=/usr/bin/python3   # Debian's, with python3-pytest; not a pyenv one first on PATH
build=${BITFUSION_BUILD_DIR:-$root/build}
asan=${BITFUSION_ASAN_DIR:-$root/build-asan}
prefix=$(mktemp -d /tmp/bitfusion-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT

step() { printf '\n==== %s\n' "$*"; }

step "format check (clang-format, .clang-format)"
files=$(git ls-files '*.h' '*.cc' | grep -v '^tests/fixtures/' || true)
clang-format --dry-run --Werror $files

step "build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE=$python \
  -DBITFUSION_BUILD_PYTHON=ON
cmake --build "$build" -j "$jobs"

step "tests"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

step "benchmarks run once (smoke; figures are read by people, not asserted)"
for b in "$build"/benchmarks/*_benchmark "$build"/bin/*_benchmark; do
  [ -x "$b" ] || continue
  # A 10-machine pool is enough to see the pool benchmark work; people run it at 100.
  BITFUSION_POOL_SIZE=10 "$b" --benchmark_min_time=0.01 >/dev/null
done
PYTHONPATH="$build/python" $python benchmarks/python_sdk_benchmark.py --quick \
  --reference "$build/bin/container_lifecycle_reference" >/dev/null

step "ASan+UBSan unit tests ($asan)"
cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBITFUSION_SANITIZE=ON \
  -DBITFUSION_BUILD_BENCHMARKS=OFF -DBITFUSION_BUILD_EXAMPLES=OFF -DBITFUSION_BUILD_CLI=OFF
cmake --build "$asan" -j "$jobs" --target bitfusion_unit_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$asan" --output-on-failure -j "$jobs" -L unit

step "install, then build and run a consumer against the installed package"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B "$build/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$build/consumer"
"$build/consumer/bitfusion_consumer" "$prefix"
(cd "$(mktemp -d)" && "$prefix/bin/bitfusion" run "$prefix/share/bitfusion/specs/quickstart.json" \
  --sink null:// --quiet >/dev/null)

step "all tests passed"
