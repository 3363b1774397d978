#!/usr/bin/env bash
# The README's second command: set up, build, and run every test — unit and end-to-end tests,
# the same unit tests under ASan+UBSan, the clang-format check, and a consumer built against
# the installed package; under CI=true also a short run of every fuzz target. Exits non-zero on the first failure.
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
# The Conan recipe cannot run here (no PyPI); it must at least parse, as must setup.py.
$python -m py_compile conan/conanfile.py setup.py

step "build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE=$python \
  -DBITFUSION_BUILD_PYTHON=ON
cmake --build "$build" -j "$jobs"

step "tests"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

step "benchmarks run once (smoke; figures are read by people, not asserted)"
for b in "$build"/benchmarks/*_benchmark "$build"/bin/*_benchmark; do
  [ -x "$b" ] || continue
  # A 10-machine pool (and a 10-container fleet, a plan on 5 then 10 machines, 2 remote runs
  # each way, a 1 s remote agent) is enough to see those benchmarks work; people run them at 100
  # (and 200, and a plan on 20, 10 rounds, 10 s).
  BITFUSION_POOL_SIZE=10 BITFUSION_FLEET_SIZE=10 BITFUSION_PLAN_MACHINES=10 BITFUSION_REMOTE_RUNS=2 \
    BITFUSION_AGENT_SECONDS=1 "$b" --benchmark_min_time=0.01 >/dev/null
done
PYTHONPATH="$build/python" $python benchmarks/python_sdk_benchmark.py --quick \
  --reference "$build/bin/container_lifecycle_reference" >/dev/null

step "ASan+UBSan unit tests ($asan)"
cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBITFUSION_SANITIZE=ON \
  -DBITFUSION_BUILD_BENCHMARKS=OFF -DBITFUSION_BUILD_EXAMPLES=OFF -DBITFUSION_BUILD_CLI=OFF
cmake --build "$asan" -j "$jobs" --target bitfusion_unit_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$asan" --output-on-failure -j "$jobs" -L unit

if [ "${CI:-}" = true ]; then
  # Each libFuzzer target for a few seconds from its seeds (docs/fuzzing.md): about 2 minutes.
  step "fuzz targets, 8 s each (scripts/fuzz.sh)"
  BITFUSION_FUZZ_SECONDS=8 BITFUSION_FUZZ_JOBS=$jobs "$root/scripts/fuzz.sh"
fi

step "install; consumers of the installed package: CMake with and without a component, pkg-config"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B "$build/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$build/consumer"
"$build/consumer/bitfusion_consumer" "$prefix"
"$build/consumer/bitfusion_consumer_postgres" "$prefix"
# The core alone needs no libpq; the component stays NEEDED although nothing names its symbols.
core_lib=$(find "$prefix" -name 'libbitfusion.so' | head -1)
if readelf -d "$build/consumer/bitfusion_consumer" "$core_lib" | grep -q 'NEEDED.*libpq'; then
  echo "the core library or a consumer without components needs libpq" >&2; exit 1
fi
readelf -d "$build/consumer/bitfusion_consumer_postgres" | grep -q 'NEEDED.*libbitfusion_postgres'
# An unknown component is a configure error that names the known ones.
unknown=$(mktemp -d)
printf 'cmake_minimum_required(VERSION 3.25)\nproject(x CXX)\nfind_package(bitfusion CONFIG REQUIRED COMPONENTS gpu)\n' \
  > "$unknown/CMakeLists.txt"
if cmake -S "$unknown" -B "$unknown/b" -DCMAKE_PREFIX_PATH="$prefix" >"$unknown/log" 2>&1 ||
   ! grep -q 'has no component "gpu"; its components are: postgres' "$unknown/log"; then
  cat "$unknown/log" >&2; exit 1
fi
rm -rf "$unknown"
# pkg-config, from the installed .pc files (relocatable: the prefix is found from their place).
export PKG_CONFIG_PATH; PKG_CONFIG_PATH=$(dirname "$(find "$prefix" -name bitfusion.pc | head -1)")
g++ -std=c++20 examples/consumer/main.cc -o "$build/consumer/pc_consumer" \
  $(pkg-config --cflags --libs bitfusion)
"$build/consumer/pc_consumer" "$prefix"
g++ -std=c++20 -DBITFUSION_CONSUMER_POSTGRES examples/consumer/main.cc \
  -o "$build/consumer/pc_consumer_postgres" $(pkg-config --cflags --libs bitfusion-postgres)
"$build/consumer/pc_consumer_postgres" "$prefix"
quick=$(mktemp -d)
(cd "$quick" && "$prefix/bin/bitfusion" run "$prefix/share/bitfusion/specs/quickstart.json" \
  --sink null:// --quiet >/dev/null)
rm -rf "$quick"

step "all tests passed"
