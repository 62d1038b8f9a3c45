#!/usr/bin/env bash
# Configures and builds latentserve into ./build (Release, Ninja, warnings as errors).
# Extra arguments go to the CMake configure step, e.g. -DLATENTSERVE_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${LATENTSERVE_JOBS:-$(nproc)}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLATENTSERVE_WERROR=ON "$@"
cmake --build build -j "$jobs"
