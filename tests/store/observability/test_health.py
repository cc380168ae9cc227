"""/healthz and /readyz of a worker serving HTTP in this process: a loop that stops iterating
is reported not ready; a process without a loop is alive but not ready."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import statek
from statek import store
from statek.executors.utils import run_jobs_loop
from statek.runtime import loop as loop_module
from statek.runtime.loop import active_loops
from statek.server import start_server
from statek.settings import reset_settings_cache

BOUND_S = 60.0  # failure bound only


@pytest.fixture
async def server(statek_store: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setenv("STATEK_HTTP_PORT", "0")
    monkeypatch.setenv("STATEK_READY_DEADLINE", "1.5")
    reset_settings_cache()
    statek.init()
    running = await start_server(store.settings())
    try:
        yield running.url
    finally:
        await running.close()


async def until(check: Callable[[], Any], what: str) -> None:
    """Wait for `check()` to be true, yielding to the loop between looks."""
    try:
        async with asyncio.timeout(BOUND_S):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no {what} within {BOUND_S}s") from None


async def test_no_loop_alive_but_not_ready(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        alive = await http.get("/healthz")
        assert alive.status_code == 200 and alive.json()["ok"] is True
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == ["no worker loop is running"]


async def test_stalled_loop_is_not_ready_until_it_iterates_again(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stalled, release = asyncio.Event(), asyncio.Event()
    original = loop_module.JobsLoop._sleep

    async def sleep(self: loop_module.JobsLoop) -> None:
        if stalled.is_set() and not release.is_set():
            await release.wait()  # the loop hangs between two iterations
        await original(self)

    monkeypatch.setattr(loop_module.JobsLoop, "_sleep", sleep)
    worker = asyncio.create_task(run_jobs_loop(10, queue_prefixes=["test"]))
    async with httpx.AsyncClient(base_url=server) as http:
        async def status() -> int:
            return (await http.get("/readyz")).status_code

        try:
            await until(lambda: _true(bool(active_loops())), "a loop")
            await until(lambda: _is(status(), 200), "ready")
            stalled.set()
            await until(lambda: _is(status(), 503), "not ready")
            answer = (await http.get("/readyz")).json()
            assert "has not iterated" in answer["problems"][0]
            assert answer["last_iteration_age_s"] > 1.5
            assert (await http.get("/healthz")).status_code == 200  # alive all along
            release.set()
            await until(lambda: _is(status(), 200), "ready again")
        finally:
            release.set()
            loop_module.stop_loops()
            await asyncio.wait_for(worker, BOUND_S)


async def test_stopping_loop_is_not_ready(server: str) -> None:
    worker = asyncio.create_task(run_jobs_loop(10, queue_prefixes=["test"]))
    try:
        await until(lambda: _true(bool(active_loops())), "a loop")
        (running,) = active_loops()
        running.stopping = True  # what request_stop() sets, without waking the loop
        async with httpx.AsyncClient(base_url=server) as http:
            answer = await http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["problems"] == ["the worker loop is stopping"]
    finally:
        loop_module.stop_loops()
        await asyncio.wait_for(worker, BOUND_S)


async def _true(value: bool) -> bool:
    return value


async def _is(pending: Any, expected: int) -> bool:
    return bool(await pending == expected)


async def test_probes_need_no_token_metrics_does(statek_store: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEK_HTTP_PORT", "0")
    monkeypatch.setenv("STATEK_HTTP_TOKEN", "sesame")
    reset_settings_cache()
    statek.init()
    running = await start_server(store.settings())
    try:
        async with httpx.AsyncClient(base_url=running.url) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 503  # open, and no loop
            assert (await http.get("/metrics")).status_code == 401
            scraped = await http.get("/metrics", headers={"Authorization": "Bearer sesame"})
            assert scraped.status_code == 200
            assert "statek_loop_running 0.0" in scraped.text
    finally:
        await running.close()
