"""Build statek, compiling the optional Cython kernels when possible.

Metadata lives in pyproject.toml; this file only decides about extensions.
The kernels are optional (a pure-Python twin exists), so by default a missing
Cython, a missing compiler or a failed compile degrades to a pure install with
a loud warning. Release builds set STATEK_REQUIRE_EXTENSIONS=1 so that a wheel
silently lacking the speedups can never be published.

STATEK_COMPILE_PIPELINE=1 also compiles the step pipeline with mypyc (opt-in,
docs/building.md): the modules listed in statek/_compiled_pipeline.py are built
into statek/_compiled_bin/ with a manifest of their source hashes, and that
selector serves them only while the sources still match.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import Extension, setup  # type: ignore[import-untyped,unused-ignore]
from setuptools.command.build_ext import (  # type: ignore[import-untyped,unused-ignore]
    build_ext,
)

REQUIRE = os.environ.get("STATEK_REQUIRE_EXTENSIONS", "") == "1"
DISABLED = os.environ.get("STATEK_NO_EXTENSIONS", "") not in ("", "0")
PIPELINE = os.environ.get("STATEK_COMPILE_PIPELINE", "") == "1" and not DISABLED
HERE = os.path.dirname(os.path.abspath(__file__))


def _warn(msg: str) -> None:
    bar = "*" * 75
    sys.stderr.write(
        f"\n{bar}\nWARNING: {msg}\n"
        "statek will be installed WITHOUT its compiled scheduler kernels; the\n"
        "pure-Python fallback is used instead (same behaviour, slower).\n"
        "Set STATEK_REQUIRE_EXTENSIONS=1 to turn this into a build error.\n"
        f"{bar}\n\n"
    )


def _fail_or_warn(msg: str) -> None:
    if REQUIRE:
        raise SystemExit(f"error: {msg} (STATEK_REQUIRE_EXTENSIONS=1)")
    _warn(msg)


def _compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2", "/std:c++17"]
    return ["-O3", "-std=c++17", "-g0"]  # no debug info: the .so is 4x smaller


def _extension(source: str) -> Any:
    name = os.path.splitext(source)[0].replace(os.sep, ".").replace("/", ".")
    return Extension(name, [source], language="c++", extra_compile_args=_compile_args())


def _extensions() -> list[Any]:
    if DISABLED and not REQUIRE:
        _warn("STATEK_NO_EXTENSIONS is set")
        return []
    sources = sorted(glob.glob(os.path.join("statek", "_speedups", "*.pyx"), root_dir=HERE))
    if not sources:
        _fail_or_warn("no .pyx sources found")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        # An sdist ships the generated C++; it builds without Cython.
        generated = [src[: -len(".pyx")] + ".cpp" for src in sources]
        if all(os.path.exists(os.path.join(HERE, g)) for g in generated):
            return [_extension(g) for g in generated]
        _fail_or_warn("Cython is not installed, cannot compile the .pyx kernels")
        return []
    exts = [_extension(src) for src in sources]
    try:
        built = cythonize(exts, language_level=3, quiet=True)  # type: ignore[no-untyped-call,unused-ignore]
        return list(built)
    except Exception as exc:  # Cython compile errors come in many types
        _fail_or_warn(f"cythonize failed: {exc!r}")
        return []


def _selector() -> ModuleType:
    """statek/_compiled_pipeline.py loaded by path: it imports nothing from statek."""
    path = os.path.join(HERE, "statek", "_compiled_pipeline.py")
    spec = importlib.util.spec_from_file_location("_statek_compiled_pipeline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mypy_config(build_temp: str) -> str:
    """Lenient mypy settings for mypyc: the build env lacks the runtime deps, and errors
    outside the compiled modules (`mypy statek` checks those) must not block the build."""
    os.makedirs(build_temp, exist_ok=True)
    fd, path = tempfile.mkstemp(suffix=".ini", dir=build_temp)
    with os.fdopen(fd, "w") as f:
        f.write("[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n")
    return path


_PIPELINE_CACHE: list[Any] = []


def _pipeline_extensions(build_temp: str) -> list[Any]:
    """mypyc extensions for the pipeline, renamed into statek._compiled_bin so no binary
    sits beside (and shadows) its source. Generated once per setup.py run (editable
    builds finalize build_ext twice; mypyc's type check is the slow part)."""
    if _PIPELINE_CACHE:
        return _PIPELINE_CACHE
    from mypyc.build import mypycify

    sel = _selector()
    files = [os.path.relpath(sel.source_path(m, Path(HERE, "statek")), HERE) for m in sel.MODULES]
    exts = mypycify(
        ["--config-file", _mypy_config(build_temp), *files],
        opt_level="3",
        debug_level="0",
        group_name=sel.GROUP,
        target_dir=os.path.join(build_temp, "mypyc"),
    )
    for ext in exts:
        if ext.name in sel.MODULES:
            ext.name = f"statek.{sel.BIN_DIR}.{ext.name.removeprefix('statek.')}"
    _PIPELINE_CACHE.extend(exts)
    return _PIPELINE_CACHE


class OptionalBuildExt(build_ext):  # type: ignore[misc,unused-ignore]
    """build_ext that downgrades compiler failures to a warning unless required."""

    failed = False
    pipeline: tuple[str, ...] = ()  # names of the pipeline's extensions, once added

    def finalize_options(self) -> None:
        super().finalize_options()
        if PIPELINE and not self.pipeline:
            self._add_pipeline()

    def run(self) -> None:
        if self.pipeline and (self.inplace or getattr(self, "editable_mode", False)):
            for name in self.pipeline:  # the in-place copy needs the folders to exist
                os.makedirs(os.path.join(HERE, *name.split(".")[:-1]), exist_ok=True)
        try:
            super().run()
        except Exception as exc:  # e.g. DistutilsPlatformError: no compiler at all
            if not self.failed:  # else a follow-up error (--inplace copy) of a reported one
                self._give_up(exc)
        if self.pipeline and not self.failed:
            self._write_manifests()

    def _add_pipeline(self) -> None:
        try:
            exts = _pipeline_extensions(self.build_temp)
        except BaseException as exc:  # ImportError (no mypy), SystemExit (mypy type errors)
            _fail_or_warn(f"compiling the pipeline with mypyc failed: {exc!r}")
            return
        for ext in exts:  # what setuptools' finalize_options does for its own extensions
            ext._full_name = self.get_ext_fullname(ext.name)
            ext._links_to_dynamic = False
            ext._needs_stub = False
            ext._file_name = self.get_ext_filename(ext._full_name)
        self.extensions.extend(exts)
        self.pipeline = tuple(ext.name for ext in exts)

    def _write_manifests(self) -> None:
        """The manifest goes beside the built binaries and, for in-place/editable builds,
        beside their copies in the source tree."""
        sel = _selector()
        targets = [Path(self.build_lib, "statek", sel.BIN_DIR)]
        if self.inplace or getattr(self, "editable_mode", False):
            targets.append(Path(HERE, "statek", sel.BIN_DIR))
        for target in targets:
            sel.write_manifest(target, Path(HERE, "statek"), sel.MODULES)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # CCompilerError, DistutilsExecError, ...
            self._give_up(exc, ext.name)

    def _give_up(self, exc: BaseException, name: str = "extensions") -> None:
        self.failed = True
        _fail_or_warn(f"building {name} failed: {exc}")


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    # PEP 517 frontends install these into the build env (only when asked for the pipeline).
    setup_requires=["mypy>=1.10"] if PIPELINE else [],
    # Generated C++ is build input, not package data (the .pyx is shipped).
    exclude_package_data={"statek._speedups": ["*.c", "*.cpp", "*.html"]},
)
