from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dbzero as db0
import pytest

import statek
from statek import store
from statek.errors import NotInitializedError


def test_import_before_dbzero_init_works_in_a_fresh_process() -> None:
    code = ("import statek, statek.executors.utils, statek.runner; "
            "from statek import start_statek, StatekClientAPI; print(statek.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == statek.__version__


def test_client_api_without_prefix_gives_one_clear_error() -> None:
    if store.db_initialized():
        store.close()
    with pytest.raises(NotInitializedError, match="no open dbzero prefix"):
        statek.StatekClientAPI()


def test_open_prefix_before_db_init_names_the_fix() -> None:
    if store.db_initialized():
        store.close()
    with pytest.raises(NotInitializedError, match=r"db0\.init"):
        statek.open_prefix("x")


def test_documented_startup(tmp_path: Path) -> None:
    db0.init(dbzero_root=str(tmp_path))
    try:
        settings = statek.init(settings=None, restricted=True)
        statek.open_prefix("app", "rw")
        assert store.current_prefix() == "app"
        assert store.restricted_mode() is True
        assert settings is store.settings()
    finally:
        store.close()


def test_restricted_false_turns_sandbox_off(tmp_path: Path) -> None:
    statek.init(restricted=False)
    assert store.restricted_mode() is False
    statek.init()
    assert store.restricted_mode() is True


def test_embedded_default_store_uses_env_data_dir(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from statek.settings import reset_settings_cache

    monkeypatch.setenv("STATEK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STATEK_DEFAULT_PREFIX", "embedded")
    reset_settings_cache()
    store._runtime.settings = None
    try:
        root, prefix = statek.open_default_store()
        assert (root, prefix) == (tmp_path / "data", "embedded")
        statek.Agent("a")
        store.commit_all()
        assert (tmp_path / "data" / "embedded.db0").exists()
    finally:
        store.close()
        reset_settings_cache()


def test_bad_open_mode_is_rejected(statek_store: str) -> None:
    with pytest.raises(ValueError, match="open mode"):
        statek.open_prefix("other", "w")
