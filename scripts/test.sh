#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "${LATENTSERVE_JOBS:-$(nproc)}"
