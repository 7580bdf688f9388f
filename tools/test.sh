#!/usr/bin/env bash
# Quick start (2): installs what is missing, builds, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
build="${M3_BUILD_DIR:-build}"
ctest --test-dir "$build" --output-on-failure -j 2 "$@"
