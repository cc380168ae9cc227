#!/usr/bin/env bash
# Build a statek wheel the way cibuildwheel's Linux job does, minus its container, then
# install it into a fresh venv and run the test suite against the installed wheel.
#
#   scripts/build_wheel.sh                        # python3.11, kernels only (default build)
#   PYTHON=python3.13 scripts/build_wheel.sh      # another interpreter
#   STATEK_COMPILE_PIPELINE=1 scripts/build_wheel.sh   # also the mypyc pipeline (opt-in)
#   SUITE="tests/unit/test_speedups.py" scripts/build_wheel.sh   # fewer tests (default: all)
#
# Same as cibuildwheel ([tool.cibuildwheel] in pyproject.toml): `build` frontend in an
# isolated env, STATEK_REQUIRE_EXTENSIONS=1 (a wheel without its compiled code fails the
# build), `auditwheel repair` (skipped with a notice when patchelf is missing: the wheel
# stays linux_x86_64 instead of manylinux), tests from a temp dir that holds tests/ but
# no statek/, so they import the installed wheel. Not the same: cibuildwheel builds inside
# a manylinux_2_28 container (older glibc, its own compilers); this machine has no docker
# engine, so the wheel is built against the host's glibc. See docs/building.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
OUT=${OUT:-$ROOT/wheelhouse}
SUITE=${SUITE:-tests}
WORK=$(mktemp -d /tmp/statek-wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found" >&2; exit 2; }
tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
echo "== $tag: build tools venv"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q build auditwheel

echo "== $tag: python -m build --wheel (isolated, STATEK_REQUIRE_EXTENSIONS=1," \
     "STATEK_COMPILE_PIPELINE=${STATEK_COMPILE_PIPELINE:-0})"
start=$(date +%s)
(cd "$ROOT" && STATEK_REQUIRE_EXTENSIONS=1 \
    "$WORK/tools/bin/python" -m build --wheel --outdir "$WORK/dist" .)
echo "== $tag: built in $(( $(date +%s) - start )) s"
wheel=$(ls "$WORK"/dist/statek-*-"$tag"-*.whl)

"$WORK/tools/bin/auditwheel" show "$wheel" || true
mkdir -p "$OUT"
if command -v patchelf >/dev/null; then
    "$WORK/tools/bin/auditwheel" repair --wheel-dir "$OUT" "$wheel"
    wheel=$(ls -t "$OUT"/statek-*-"$tag"-*manylinux*.whl | head -1)
else
    echo "notice: patchelf missing, auditwheel repair skipped (wheel keeps its linux tag)"
    cp "$wheel" "$OUT/"
    wheel="$OUT/$(basename "$wheel")"
fi
echo "== $tag: wheel $wheel"
unzip -l "$wheel" | grep -E '\.so$' || { echo "error: no compiled module in $wheel" >&2; exit 1; }

echo "== $tag: fresh venv, install the wheel with its test extra"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "${wheel}[test]"

echo "== $tag: suite from a temp dir (imports the installed wheel)"
mkdir "$WORK/run"
cp -r "$ROOT/tests" "$ROOT/benchmarks" "$ROOT/pyproject.toml" "$WORK/run/"
cd "$WORK/run"
"$WORK/venv/bin/python" - <<'EOF'
import statek, statek._speedups as s, statek._compiled_pipeline as cp
assert "site-packages" in statek.__file__, statek.__file__
print("statek from", statek.__file__, "| kernels:", s.IMPLEMENTATION, "| pipeline:", cp.select()[1])
EOF
runner=("$WORK/venv/bin/python")
if [ "${STATEK_COMPILE_PIPELINE:-0}" = 1 ]; then
    # Until statek/__init__.py installs the selector's hook, its runner does.
    sel=$("$WORK/venv/bin/python" -c 'import statek._compiled_pipeline as c; print(c.__file__)')
    runner=(env STATEK_REQUIRE_COMPILED_PIPELINE=1 "$WORK/venv/bin/python" "$sel")
fi
# shellcheck disable=SC2086
"${runner[@]}" -m pytest -q -p no:cacheprovider $SUITE
