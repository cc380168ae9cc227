"""Selects the mypyc-compiled step pipeline when it was built and matches the sources.

Built only with ``STATEK_COMPILE_PIPELINE=1`` (see docs/building.md). The compiled
modules live apart from the sources, in ``statek/_compiled_bin/``, so a stale
binary can never shadow an edited ``.py`` by file-name precedence: this
selector serves them through an import hook only when the sha256 of every
source matches the one recorded at build time. A mismatch (an edited checkout
with an old build) warns and keeps the whole pipeline pure: mypyc binds calls
between the modules of one build, so mixing compiled and pure copies is unsafe.
``STATEK_NO_EXTENSIONS=1`` or ``STATEK_NO_COMPILED_PIPELINE=1`` always select
pure Python.

This file imports nothing from statek: ``install()`` must run before the
pipeline modules are first imported, and ``python statek/_compiled_pipeline.py
-m MODULE ARGS`` runs a module (pytest, a benchmark) with the hook installed.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

MODULES: tuple[str, ...] = (
    "statek.execution.conversation",
    "statek.execution.interpreter",
    "statek.execution.step",
    "statek.observability.hooks",
)
"""The modules the pipeline build compiles (chosen by measurement, docs/building.md).
Left out on purpose: job_functions (the sandbox trusts host code by its Python
function objects), models/* memo classes, job_locals (mypyc crashes on it), _json
(its tests reload it with another backend; an extension module cannot be reloaded)."""

BIN_DIR = "_compiled_bin"
MANIFEST = "manifest.json"
GROUP = f"statek.{BIN_DIR}.lib"
"""mypyc's group name: its shared library is the module ``statek._compiled_bin.lib__mypyc``."""

PACKAGE_DIR = Path(__file__).resolve().parent

STATUS: str = "pure: install() not called"
"""'compiled' once the hook serves the pipeline, else 'pure: <why>'."""


def source_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """Where a pipeline module's .py lives under the statek package directory."""
    parts = module.split(".")
    if parts[0] != "statek" or len(parts) < 2:
        raise ValueError(f"not a statek module: {module!r}")
    return package_dir.joinpath(*parts[1:]).with_suffix(".py")


def binary_stem(module: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The compiled shim's path without its ABI suffix (statek.a.b -> _compiled_bin/a/b)."""
    return package_dir.joinpath(BIN_DIR, *module.split(".")[1:])


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, the key tying a binary to the source it was built from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(target_dir: Path, package_dir: Path, modules: Sequence[str]) -> Path:
    """Record the source hashes a build compiled (called by setup.py's build_ext)."""
    import json  # not at the top: run as a script, statek/_json.py would shadow json's _json

    target_dir.mkdir(parents=True, exist_ok=True)
    hashes = {m: file_hash(source_path(m, package_dir)) for m in modules}
    path = target_dir / MANIFEST
    path.write_text(json.dumps({"modules": hashes}, indent=1, sort_keys=True) + "\n")
    return path


def _disabled(environ: Mapping[str, str]) -> str | None:
    for name in ("STATEK_NO_EXTENSIONS", "STATEK_NO_COMPILED_PIPELINE"):
        if environ.get(name, "") not in ("", "0"):
            return f"disabled by {name}"
    return None


def _binary(module: str, package_dir: Path) -> Path | None:
    stem = binary_stem(module, package_dir)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def select(
    package_dir: Path = PACKAGE_DIR, environ: Mapping[str, str] = os.environ
) -> tuple[dict[str, Path], str]:
    """Decide which binaries to serve: ({module: .so path}, status). Warns when stale."""
    import json

    reason = _disabled(environ)
    if reason:
        return {}, f"pure: {reason}"
    manifest = package_dir / BIN_DIR / MANIFEST
    if not manifest.is_file():
        return {}, "pure: the compiled pipeline was not built"
    try:
        recorded: dict[str, str] = json.loads(manifest.read_text())["modules"]
    except (ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"statek: unreadable {manifest}: {exc!r}; using pure Python", stacklevel=2)
        return {}, "pure: unreadable manifest"
    stale = sorted(m for m, h in recorded.items() if not _matches(m, h, package_dir))
    if stale:
        warnings.warn(
            "statek: the compiled pipeline was built from other sources than "
            f"{', '.join(stale)}; using pure Python for the whole pipeline "
            "(rebuild with STATEK_COMPILE_PIPELINE=1 pip install -e .)",
            RuntimeWarning,
            stacklevel=2,
        )
        return {}, f"pure: stale binaries for {', '.join(stale)}"
    binaries = {m: _binary(m, package_dir) for m in recorded}
    missing = sorted(m for m, p in binaries.items() if p is None)
    if missing:
        return {}, f"pure: no binary for this interpreter ({', '.join(missing)})"
    return {m: p for m, p in binaries.items() if p is not None}, "compiled"


def _matches(module: str, recorded: str, package_dir: Path) -> bool:
    try:
        return file_hash(source_path(module, package_dir)) == recorded
    except (OSError, ValueError):
        return False


class _PipelineFinder(importlib.abc.MetaPathFinder):
    """Serves the listed modules from their compiled shims, everything else untouched."""

    def __init__(self, binaries: Mapping[str, Path], status: str) -> None:
        self.binaries = dict(binaries)
        self.status = status

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        binary = self.binaries.get(fullname)
        if binary is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(binary))
        return importlib.util.spec_from_file_location(fullname, binary, loader=loader)


def install(
    package_dir: Path = PACKAGE_DIR, environ: Mapping[str, str] = os.environ
) -> str:
    """Put the hook first on sys.meta_path if the pipeline is usable; returns STATUS."""
    global STATUS
    for finder in sys.meta_path:  # by name: the -m runner's copy of this file is __main__
        if type(finder).__name__ == "_PipelineFinder":
            STATUS = str(getattr(finder, "status", "compiled"))
            return STATUS
    binaries, STATUS = select(package_dir, environ)
    if binaries:
        loaded = sorted(m for m in binaries if m in sys.modules)
        if loaded:  # too late: pure copies are in use and compiled ones would bind to them
            STATUS = f"pure: imported before install() ({', '.join(loaded)})"
            return STATUS
        sys.meta_path.insert(0, _PipelineFinder(binaries, STATUS))
    return STATUS


def main(argv: Sequence[str]) -> None:
    """``-m MODULE ARGS``: run MODULE as __main__ with the hook installed."""
    if len(argv) < 2 or argv[0] != "-m":
        raise SystemExit("usage: python statek/_compiled_pipeline.py -m MODULE [ARGS...]")
    sys.path[0] = os.getcwd()  # as `python -m` would: statek/ itself must not be on the path
    status = install()
    sys.stderr.write(f"statek pipeline: {status}\n")
    if os.environ.get("STATEK_REQUIRE_COMPILED_PIPELINE", "") == "1" and status != "compiled":
        raise SystemExit(f"compiled pipeline required but {status}")
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
