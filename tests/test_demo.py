from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from statek import store
from statek.cli import main
from statek.settings import reset_settings_cache


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STATEK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("STATEK_DEFAULT_PROVIDER", raising=False)  # the demo chooses it itself
    reset_settings_cache()
    store._runtime.settings = None
    yield tmp_path / "data"
    reset_settings_cache()
    store._runtime.settings = None


def test_demo_runs_twice_on_the_same_store(data_dir: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--helpers", "20"])
    assert first.exit_code == 0, first.output
    assert "dispatcher -> 2470" in first.output  # sum of squares 0..19
    assert "messenger  -> 'hello from the demo'" in first.output
    assert "analyst    -> {'total': 45, 'turns': 2}" in first.output
    assert "store now holds 24 jobs" in first.output
    second = runner.invoke(main, ["demo", "--helpers", "20"])
    assert second.exit_code == 0, second.output
    assert "store now holds 48 jobs" in second.output
    assert "error" not in first.output + second.output
    assert (data_dir / "statek.db0").exists()


def test_the_default_demo_runs_without_an_error(data_dir: Path) -> None:
    """`statek demo` as the README's first command runs it: its dispatcher delegates 200
    helpers in one statement, within the default delegate budgets."""
    done = CliRunner().invoke(main, ["demo"])
    assert done.exit_code == 0, done.output
    assert "dispatcher -> 2646700" in done.output  # sum of squares 0..199
    assert "error" not in done.output
