#!/usr/bin/env bash
# Installs the dependencies, builds, and serves the built-in default model (made on first use)
# with the OpenAI-compatible API on http://127.0.0.1:8000 until Ctrl-C. HOST and PORT change the
# address; further arguments go to `latentserve serve` (e.g. --grpc-port 50051).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"
cat <<MESSAGE
When "latentserve: serving" appears below, try from another shell:
  curl http://$host:$port/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "latentserve-tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}'
MESSAGE
exec ./build/server/latentserve serve --host "$host" --port "$port" "$@"
