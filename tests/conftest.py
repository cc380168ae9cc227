"""Shared fixtures: a fresh dbzero store per test, torn down completely afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dbzero as db0
import pytest

import statek
from statek import signals, store
from statek.settings import reset_settings_cache


@pytest.fixture
def db_root(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def statek_store(db_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """dbzero initialised over a temp dir with prefix 'test' open; closed afterwards."""
    monkeypatch.setenv("STATEK_DATA_DIR", str(db_root))
    monkeypatch.setenv("STATEK_DEFAULT_PROVIDER", "scripted")  # tests choose the offline provider
    db_root.mkdir(parents=True)
    db0.init(dbzero_root=str(db_root))
    reset_settings_cache()  # read the environment as this test set it
    statek.init()
    statek.open_prefix("test", "rw")
    previous = signals.subscribe(None)
    try:
        yield "test"
    finally:
        signals.subscribe(previous)
        store.close()


@pytest.fixture
def api(statek_store: str) -> statek.StatekClientAPI:
    return statek.StatekClientAPI()


@pytest.fixture
def agent(statek_store: str) -> statek.Agent:
    return statek.Agent("worker", "You are a worker.")
