#!/usr/bin/env bash
# Set up a venv, install statek with its test extras, and run the suite.
# The README's test command; CI runs this same script (and again with other settings, below).
#   STATEK_VENV    the venv folder (default .venv)
#   PYTHON         the interpreter that creates it (default python3)
#   STATEK_EXTRAS  the extras installed (default test,fast: what `pip install statek[fast]`
#                  users run; CI also runs the suite with only `test`, the fallbacks' case)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${STATEK_VENV:-.venv}"
PY="${PYTHON:-python3}"
EXTRAS="${STATEK_EXTRAS:-test,fast}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
"$VENV/bin/python" -m pytest -q "$@"
