"""The selector of the mypyc-compiled pipeline (statek/_compiled_pipeline.py).

Most tests build a fake package directory: the selection rules (disabled, not built,
stale, missing binary, usable) do not need a compiler. The last test runs only where
the pipeline was really built (STATEK_COMPILE_PIPELINE=1 pip install -e .).
"""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statek import _compiled_pipeline as cp

MODULE = "statek.execution.step"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _fake_package(root: Path, source: str = "x = 1\n", binary: bool = True) -> Path:
    """A statek-like directory with one pipeline module, its manifest and (maybe) binary."""
    pkg = root / "statek"
    src = cp.source_path(MODULE, pkg)
    src.parent.mkdir(parents=True)
    src.write_text(source)
    cp.write_manifest(pkg / cp.BIN_DIR, pkg, [MODULE])
    if binary:
        stem = cp.binary_stem(MODULE, pkg)
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_name(stem.name + SUFFIX).write_bytes(b"not really a shared object")
    return pkg


def test_paths_map_modules_into_the_package_and_the_binary_folder(tmp_path: Path) -> None:
    assert cp.source_path(MODULE, tmp_path) == tmp_path / "execution" / "step.py"
    assert cp.binary_stem(MODULE, tmp_path) == tmp_path / cp.BIN_DIR / "execution" / "step"
    with pytest.raises(ValueError, match="not a statek module"):
        cp.source_path("json.decoder", tmp_path)


def test_every_listed_module_exists_and_none_is_a_memo_model() -> None:
    for module in cp.MODULES:
        assert cp.source_path(module).is_file(), module
        assert not module.startswith("statek.models"), module


def test_usable_build_is_selected(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    binaries, status = cp.select(pkg, environ={})
    assert status == "compiled"
    assert binaries[MODULE].name == "step" + SUFFIX


def test_not_built_selects_pure_silently(tmp_path: Path) -> None:
    binaries, status = cp.select(tmp_path, environ={})
    assert (binaries, status) == ({}, "pure: the compiled pipeline was not built")


@pytest.mark.parametrize("var", ["STATEK_NO_EXTENSIONS", "STATEK_NO_COMPILED_PIPELINE"])
def test_environment_forces_pure(tmp_path: Path, var: str) -> None:
    pkg = _fake_package(tmp_path)
    assert cp.select(pkg, environ={var: "1"}) == ({}, f"pure: disabled by {var}")
    assert cp.select(pkg, environ={var: "0"})[1] == "compiled"


def test_edited_source_makes_the_whole_pipeline_pure_with_a_warning(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    cp.source_path(MODULE, pkg).write_text("x = 2  # edited after the build\n")
    with pytest.warns(RuntimeWarning, match=r"statek\.execution\.step.*pure Python"):
        binaries, status = cp.select(pkg, environ={})
    assert binaries == {}
    assert status == f"pure: stale binaries for {MODULE}"


def test_missing_binary_for_this_interpreter_selects_pure(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, binary=False)
    binaries, status = cp.select(pkg, environ={})
    assert binaries == {}
    assert status.startswith("pure: no binary for this interpreter")


def test_unreadable_manifest_warns(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    (pkg / cp.BIN_DIR / cp.MANIFEST).write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert cp.select(pkg, environ={}) == ({}, "pure: unreadable manifest")


def test_finder_serves_only_listed_modules(tmp_path: Path) -> None:
    binary = tmp_path / ("step" + SUFFIX)
    finder = cp._PipelineFinder({MODULE: binary}, "compiled")
    spec = finder.find_spec(MODULE)
    assert spec is not None and spec.origin == str(binary)
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    assert finder.find_spec("statek.execution.interpreter") is None


def test_runner_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit, match="usage"):
        cp.main(["pytest"])


@pytest.mark.skipif(
    cp.select(environ={})[1] != "compiled", reason="compiled pipeline not built here"
)
def test_built_pipeline_is_served_from_the_binary_folder(tmp_path: Path) -> None:
    code = (
        "import statek.execution.step as s, statek._compiled_pipeline as cp\n"
        "print(s.__file__)\nprint(cp.install())\n"  # finds the runner's hook: its status
    )
    env = {**os.environ, "STATEK_REQUIRE_COMPILED_PIPELINE": "1"}
    env.pop("STATEK_NO_EXTENSIONS", None)
    script = tmp_path / "probe.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(Path(cp.__file__)), "-m", "probe"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    file, status = proc.stdout.split()
    assert f"{os.sep}{cp.BIN_DIR}{os.sep}" in file and file.endswith(SUFFIX)
    assert status == "compiled"
