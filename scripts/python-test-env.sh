#!/usr/bin/env bash
# Creates (or refreshes) the Python virtual environment the client tests run in: build/venv with
# the pinned packages of tests/server/python/requirements.txt. Re-running is cheap when nothing
# changed. Usage: scripts/python-test-env.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-build/venv}"
requirements="tests/server/python/requirements.txt"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "python-test-env: $venv is up to date"
  exit 0
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$wanted" > "$stamp"
echo "python-test-env: installed $(grep -cv '^\s*\(#\|$\)' "$requirements") packages into $venv"
