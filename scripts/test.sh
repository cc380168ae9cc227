#!/usr/bin/env bash
# Set up a venv, install statek with its test extra, and run the suite.
# The README's test command; CI runs this same script.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${STATEK_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"
"$VENV/bin/python" -m pytest -q "$@"
