#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) from the pinned requirements.
# Idempotent: reinstalls only when requirements*.txt, setup.py or the C source changed
# (the editable install compiles transforms/formats/_lines.c in place).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements.sha"
want="$(cat requirements.txt requirements-dev.txt setup.py transforms/formats/*.c transforms/formats/*.h | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  # The distribution was called cassandra-writetime-export before: drop that install.
  .venv/bin/python -m pip uninstall -q -y cassandra-writetime-export >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
