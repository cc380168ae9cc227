"""Build statek, compiling the optional Cython kernels when possible.

Metadata lives in pyproject.toml; this file only decides about extensions.
The kernels are optional (a pure-Python twin exists), so by default a missing
Cython, a missing compiler or a failed compile degrades to a pure install with
a loud warning. Release builds set STATEK_REQUIRE_EXTENSIONS=1 so that a wheel
silently lacking the speedups can never be published.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Any

from setuptools import Extension, setup  # type: ignore[import-untyped,unused-ignore]
from setuptools.command.build_ext import (  # type: ignore[import-untyped,unused-ignore]
    build_ext,
)

REQUIRE = os.environ.get("STATEK_REQUIRE_EXTENSIONS", "") == "1"
DISABLED = os.environ.get("STATEK_NO_EXTENSIONS", "") not in ("", "0")
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


class OptionalBuildExt(build_ext):  # type: ignore[misc,unused-ignore]
    """build_ext that downgrades compiler failures to a warning unless required."""

    failed = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # e.g. DistutilsPlatformError: no compiler at all
            if not self.failed:  # else a follow-up error (--inplace copy) of a reported one
                self._give_up(exc)

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
    # Generated C++ is build input, not package data (the .pyx is shipped).
    exclude_package_data={"statek._speedups": ["*.c", "*.cpp", "*.html"]},
)
