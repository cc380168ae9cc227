"""Shared fixtures: a fresh dbzero store (and worker state owner) per test, torn down
completely afterwards.

The suite is laid out by what a test needs, so `pytest tests/unit` is a quick check:

    tests/unit/     no store: kernels, sandbox compile, providers over a stub, settings, docs
    tests/store/    dbzero in this process: models, steps, queues, budgets, security cases
    tests/e2e/      other processes: workers, restarts, the CLI, the HTTP API, the dashboard
    tests/support/  helpers the layers share (provider stub, tool server, mock LLM server,
                    the fixture running a test on both kernel twins)

A feature folder (admission/, outbox/, security/...) sits under each layer its tests need.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dbzero as db0
import pytest

import statek
from statek import signals, store, worker_state
from statek.settings import reset_settings_cache


@pytest.fixture(autouse=True)
def _settings_forgotten_after_each_test() -> Iterator[None]:
    """Settings a test read from its monkeypatched STATEK_* variables stay cached after
    monkeypatch restores them: forget them, so no test runs with the last one's (W5 once ran
    under isolation="process" after the security suite)."""
    yield
    reset_settings_cache()


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
    worker_state.restart()  # a fresh state owner: nothing cached by an earlier test
    statek.open_prefix("test", "rw")
    previous = signals.subscribe(None)
    try:
        yield "test"
    finally:
        signals.subscribe(previous)
        store.close()


@pytest.fixture
def worker(statek_store: str) -> worker_state.WorkerState:
    """The worker's state owner over the test's store (fresh for each test)."""
    return worker_state.current()


@pytest.fixture
def api(statek_store: str) -> statek.StatekClientAPI:
    return statek.StatekClientAPI()


@pytest.fixture
def agent(statek_store: str) -> statek.Agent:
    return statek.Agent("worker", "You are a worker.")


@pytest.fixture(params=["aiohttp", "pyreqwest", "asyncio"])
def each_http_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per HTTP transport (as the kernel twins run on both): providers built
    with the default `http_client="auto"` and the registry's (STATEK_PROVIDER_HTTP_CLIENT) get
    this one. pyreqwest comes with statek[fast]; without it that half is skipped."""
    from statek.providers import http_base, transports

    name = str(request.param)
    if name not in transports.available_clients():
        pytest.skip(f"{name} is not installed (statek[fast])")
    real = transports.resolve_client
    monkeypatch.setattr(http_base, "resolve_client",
                        lambda asked: real(name if asked == "auto" else asked))
    monkeypatch.setenv("STATEK_PROVIDER_HTTP_CLIENT", name)
    reset_settings_cache()
    return name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "in_process_only(reason): skipped under the "
                            "execution_mode fixture's 'process' mode (tests in-process internals)")
    config.addinivalue_line("markers", "in_process_xfail(reason): a strict xfail under the "
                            "execution_mode fixture's 'in-process' mode only")


@pytest.fixture(params=["in-process", "process"])
def execution_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per execution mode (settings.isolation): job code in the worker
    process, or in executor processes (two here). Use it before `statek_store` (e.g.
    `pytestmark = pytest.mark.usefixtures("execution_mode")`) so the store binds it."""
    mode = str(request.param)
    if mode == "process":
        only = request.node.get_closest_marker("in_process_only")
        if only is not None:
            pytest.skip(f"in-process only: {only.kwargs.get('reason', '')}")
    else:
        gap = request.node.get_closest_marker("in_process_xfail")
        if gap is not None:
            request.applymarker(pytest.mark.xfail(reason=gap.kwargs.get("reason", ""),
                                                  strict=True))
    monkeypatch.setenv("STATEK_ISOLATION", mode)
    monkeypatch.setenv("STATEK_EXECUTOR_PROCESSES", "2")
    reset_settings_cache()
    if mode == "process":  # started before the test: its timings never include a start-up
        from statek.isolation.pool import pool_for
        from statek.isolation.runner import pool_config

        pool_for(pool_config()).prestart()
    return mode
