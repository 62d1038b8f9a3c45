#!/usr/bin/env bash
# Installs the dependencies, builds, and runs offline generation on the built-in default model
# (made on first use), printing the results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/server/latentserve generate --input examples/requests.jsonl --output results.jsonl
cat results.jsonl
