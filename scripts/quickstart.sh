#!/usr/bin/env bash
# The README's first command: set up, build, and run the quickstart plan on this host. Prints
# the summary table and leaves bitfusion-results.db (SQLite) in the current directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
build=${BITFUSION_BUILD_DIR:-$root/build-release}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBITFUSION_BUILD_TESTS=OFF -DBITFUSION_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" --target bitfusion_cli bf_matmul bf_stream
"$build/bin/bitfusion" inventory
echo
"$build/bin/bitfusion" run "$root/examples/specs/quickstart.json"
