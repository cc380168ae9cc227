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


_CONSTRUCT_BEFORE_PREFIX = """
import sys
import dbzero as db0
import statek

def attempt(label):
    for make in (lambda: statek.Agent("r"), lambda: statek.SupervisedAgent("s")):
        try:
            make()
        except statek.NotInitializedError as exc:
            print(label, "NotInitializedError", exc)
        except Exception as exc:
            print(label, "OTHER", type(exc).__name__, exc)
        else:
            print(label, "CREATED")

attempt("no-init")
db0.init(dbzero_root=sys.argv[1])
attempt("no-prefix")
statek.open_prefix("app", "rw")
agent = statek.Agent("r", "prompt")
supervised = statek.SupervisedAgent("s")
queue = statek.StatekPushQueue()
print("made", type(agent).__name__, type(supervised).__name__, type(queue).__name__,
      isinstance(supervised, statek.Agent), db0.uuid(queue) == db0.uuid(statek.StatekPushQueue()))
uid = db0.uuid(agent)
statek.close()
db0.init(dbzero_root=sys.argv[1])
statek.open_prefix("app", "r")
back = db0.fetch(uid)
print("reopened", back.role, back.system_prompt, len(db0.find(statek.Agent)))
statek.close()
"""


def test_model_objects_before_a_prefix_is_open_raise_not_initialized(tmp_path: Path) -> None:
    """In a fresh process: no db0.init at all, then db0.init with no prefix open. dbzero
    allocates memo objects before __init__ runs, so this is checked ahead of dbzero."""
    out = subprocess.run(
        [sys.executable, "-c", _CONSTRUCT_BEFORE_PREFIX, str(tmp_path / "db")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    attempts = [line for line in lines if line.startswith(("no-init", "no-prefix"))]
    assert len(attempts) == 4, out.stdout
    for line in attempts:
        label, outcome, *_ = line.split(" ")
        assert outcome == "NotInitializedError", line
        assert "open_default_store()" in line, line
        assert ("dbzero is not initialised" if label == "no-init" else "no prefix is open") in line
    assert "made Agent SupervisedAgent StatekPushQueue True True" in lines
    assert "reopened r prompt 2" in lines  # both agents persisted as usual


def test_guarding_a_model_class_twice_is_a_no_op(statek_store: str) -> None:
    assert store.requires_prefix(statek.Agent) is statek.Agent
    assert statek.Agent("again").role == "again"


def test_singletons_cannot_be_guarded() -> None:
    """dbzero recognises a singleton class by its tp_new: replacing it would make every
    StatekPushQueue() a new object."""
    with pytest.raises(TypeError, match="StatekPushQueue is a dbzero singleton"):
        store.requires_prefix(statek.StatekPushQueue)


def test_init_without_settings_keeps_settings_bound_earlier(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from statek.settings import StatekSettings, reset_settings_cache

    monkeypatch.setenv("STATEK_MAX_TURNS", "9")
    reset_settings_cache()
    try:
        store.close()  # starts from nothing bound
        assert statek.init().max_turns == 9  # nothing bound: the environment's
        chosen = StatekSettings.build(max_turns=3)
        assert statek.init(chosen) is chosen
        assert statek.init() is chosen and store.settings() is chosen
        monkeypatch.setenv("STATEK_MAX_TURNS", "11")
        reset_settings_cache()
        assert statek.init(statek.get_statek_settings()).max_turns == 11  # back to the env's
        assert statek.init(chosen) is chosen
        store.close()  # forgets them
        assert statek.init().max_turns == 11
    finally:
        store.close()
        monkeypatch.undo()
        reset_settings_cache()


def test_start_statek_without_settings_runs_with_those_bound_by_init(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """The runner calls init(settings) itself; settings=None must not replace the
    application's with the environment's (here: max_turns=1 ends a job that never exits)."""
    from statek.providers import ScriptedProvider, add_provider, remove_provider
    from statek.settings import StatekSettings

    chosen = StatekSettings.build(max_turns=1, step_timeout=7)
    statek.init(chosen)
    add_provider("never-exits", ScriptedProvider(["x = 1"]))
    try:
        job = api.submit_new_job(agent, {})
        stats = statek.start_statek(agents=[agent], settings=None, provider="never-exits",
                                    auto_terminate=True)
    finally:
        remove_provider("never-exits")
    assert job.error == "harness: 1 turns reached max_turns=1"
    assert stats.steps_failed == 1
    assert store.settings() is chosen


def test_a_missing_prefix_is_not_called_damaged(statek_store: str) -> None:
    """Every RuntimeError of `db0.open` was reported as a damaged file, with the advice to
    restore a backup, for a prefix that simply does not exist too."""
    from statek.errors import StoreDamagedError

    with pytest.raises(RuntimeError, match="nosuch not found") as info:
        statek.open_prefix("nosuch", "r")
    assert not isinstance(info.value, StoreDamagedError)
