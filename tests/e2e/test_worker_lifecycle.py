"""How a worker starts, runs out of work, is cancelled and gives back the process's signals."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import dbzero as db0
import pytest

import statek
from statek import store
from statek.executors.utils import run_agentic_loop
from statek.models.status import JobStatus
from statek.providers import ScriptedProvider, remove_provider
from statek.runner import last_stats
from statek.settings import StatekSettings

APP_QUEUE: list[int] = []


@statek.tool
def lc_take_task() -> int:
    """The application's task queue, as a job's warmup sees it."""
    return APP_QUEUE.pop()


@pytest.fixture
def app_queue() -> Iterator[list[int]]:
    APP_QUEUE.clear()
    yield APP_QUEUE
    APP_QUEUE.clear()


async def _until(predicate: Any, what: str) -> None:
    """Wait (bounded) for a condition the worker makes true; never a fixed sleep."""
    async with asyncio.timeout(60):
        while not predicate():
            await asyncio.sleep(0.005)


#: the stats of the last loop an earlier test ran: a test waits for its own loop's
_previous_stats: list[Any] = [None]


@pytest.fixture(autouse=True)
def _remember_previous_stats() -> None:
    _previous_stats[0] = last_stats()


def _finished(n: int) -> bool:
    stats = last_stats()
    return (stats is not None and stats is not _previous_stats[0]
            and stats.jobs_completed >= n)


async def test_cancelling_start_statek_async_raises_and_keeps_the_counters(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    quick = [api.submit_new_job(agent, {"i": i}, warmup_code="exit(i)") for i in range(10)]
    napper = api.submit_new_job(agent, {}, warmup_code="sleep(3600).value\nexit('woke')")
    worker = asyncio.create_task(statek.start_statek_async(provider="scripted"))
    await _until(lambda: _finished(10), "ten jobs done")
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    stats = last_stats()
    assert stats is not None and stats.jobs_completed == 10 and stats.steps_done >= 11
    assert [j.exit_status for j in quick] == list(range(10))
    assert napper.status == JobStatus.SUSPENDED  # resumes on the next start


async def test_a_timeout_around_start_statek_async_raises_timeout_error(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    api.submit_new_job(agent, {}, warmup_code="sleep(3600).value")
    api.submit_new_job(agent, {}, warmup_code="exit(1)")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:
            worker = asyncio.ensure_future(statek.start_statek_async(provider="scripted"))
            await _until(lambda: _finished(1), "one job done")
            deadline.reschedule(asyncio.get_running_loop().time())
            await worker
    stats = last_stats()
    assert stats is not None and stats.jobs_completed == 1


async def test_the_applications_signal_handlers_stay_and_come_back(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    loop = asyncio.get_running_loop()
    hits: list[str] = []
    loop.add_signal_handler(signal.SIGTERM, hits.append, "app")
    # SIGINT at its default (asyncio.run would have put its own there, which statek respects)
    sigint_before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        api.submit_new_job(agent, {}, warmup_code="sleep(3600).value")
        api.submit_new_job(agent, {}, warmup_code="exit(1)")
        worker = asyncio.create_task(statek.start_statek_async(provider="scripted"))
        await _until(lambda: _finished(1), "one job done")
        os.kill(os.getpid(), signal.SIGTERM)  # the application's: the worker keeps running
        await _until(lambda: hits == ["app"], "the app saw SIGTERM")
        assert not worker.done()
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # statek's
        os.kill(os.getpid(), signal.SIGINT)  # statek's: a graceful stop
        stats = await asyncio.wait_for(worker, 60)
        assert stats.jobs_completed == 1
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        os.kill(os.getpid(), signal.SIGTERM)  # still the application's
        await _until(lambda: hits == ["app", "app"], "the app saw SIGTERM again")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGINT, sigint_before)


def test_start_statek_restores_a_python_level_handler(api: statek.StatekClientAPI,
                                                      agent: statek.Agent) -> None:
    def mine(signum: int, frame: Any) -> None:
        raise AssertionError("not expected to run")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        api.submit_new_job(agent, {}, warmup_code="exit(3)")
        stats = statek.start_statek(provider="scripted", auto_terminate=True)
        assert stats.jobs_completed == 1
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_auto_terminate_runs_until_the_application_queue_is_empty(
        statek_store: str, app_queue: list[int], concurrency: int) -> None:
    """Jobs of two steps (warmup, then a model turn), more tasks than slots."""
    app_queue.extend(range(12))
    boss = statek.SupervisedAgent("boss", "You work.", tools=[lc_take_task])
    taken: list[int] = []
    statek.add_provider("lc", ScriptedProvider(["exit(task)"]))
    try:
        async with asyncio.timeout(60):
            stats = await run_agentic_loop(boss, "task = lc_take_task()",
                                           lambda: len(app_queue), ["test"], concurrency,
                                           "lc", auto_terminate=True)
    finally:
        remove_provider("lc")
    for job in db0.find(statek.Job):
        assert job.status == JobStatus.DONE and job.error is None
        taken.append(job.exit_status)
    assert sorted(taken) == list(range(12))
    assert app_queue == [] and stats.jobs_completed == 12


async def test_slots_freed_inline_do_not_wait_for_the_commit_window(
        statek_store: str, app_queue: list[int]) -> None:
    """Two-step jobs, two slots, a 30 s commit window: every other round ends with steps that
    finished inline and nothing else to wake the loop; it must start new work at once."""
    store.init(StatekSettings(commit_interval=30.0))
    app_queue.extend(range(60))
    boss = statek.SupervisedAgent("quick", "You work.", tools=[lc_take_task])
    statek.add_provider("lc2", ScriptedProvider(["exit(task)"]))
    try:
        async with asyncio.timeout(30):  # the old loop idled up to 1 s per round: 30 s here
            stats = await run_agentic_loop(boss, "task = lc_take_task()",
                                           lambda: len(app_queue), ["test"], 2, "lc2",
                                           auto_terminate=True)
    finally:
        remove_provider("lc2")
    assert stats.jobs_completed == 60 and app_queue == []
