"""Nothing a job raises or runs ends or stalls the worker: BaseException classes are recorded,
the step code budget ends a runaway job, and the loop keeps serving the event loop."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import dbzero as db0
import pytest

import statek
from statek.executors.utils import run_jobs_loop
from statek.models.status import JobStatus
from statek.settings import reset_settings_cache
from statek.tools import idempotency_key, tool


def _supervised(role: str, warmup: str) -> statek.SupervisedAgent:
    agent = statek.SupervisedAgent(role)
    agent.update_warmup_def(warmup)
    return agent


def _settings(**overrides: Any) -> None:
    statek.init(statek.get_statek_settings(default_provider="scripted", **overrides))


@tool
def raise_cancelled_sync() -> None:
    """A tool raising CancelledError on its own (not a cancellation of the step)."""
    raise asyncio.CancelledError("from the tool")


@tool
async def raise_cancelled_async() -> None:
    raise asyncio.CancelledError("from the async tool")


@tool
async def raise_system_exit_async() -> None:
    raise SystemExit(7)


@tool
def sleepy(seconds: float) -> float:
    """A sync tool that blocks (time.sleep is interrupted by the budget signal)."""
    time.sleep(seconds)
    return seconds


RAISES = {
    "BaseException": "raise BaseException('plain base')",
    "GeneratorExit": "raise GeneratorExit()",
    "KeyboardInterrupt": "raise KeyboardInterrupt()",
    "SystemExit": "raise SystemExit(3)",
    "subclass": "class Mine(BaseException):\n    pass\nraise Mine('custom')",
    "generator": ("def gen():\n    yield 1\n    raise GeneratorExit()\n"
                  "for x in gen():\n    pass"),
    "CancelledError (sync tool)": "raise_cancelled_sync()",
    "CancelledError (async tool)": "raise_cancelled_async()",
    "SystemExit (async tool)": "raise_system_exit_async()",
}
TOOLS = ["raise_cancelled_sync", "raise_cancelled_async", "raise_system_exit_async"]


@pytest.mark.parametrize("name", list(RAISES))
async def test_any_exception_class_is_recorded_and_others_finish(
        api: statek.StatekClientAPI, name: str) -> None:
    bad = statek.SupervisedAgent("bad", tools=TOOLS)
    bad.update_warmup_def(RAISES[name])
    good = _supervised("good", "exit(n + 1)")
    bad_job = api.submit_new_job(bad, {})
    good_jobs = [api.submit_new_job(good, {"n": i}) for i in range(20)]
    stats = await run_jobs_loop(10, queue_prefixes=["test"], auto_terminate=True)
    assert bad_job.is_done and bad_job.error is not None
    assert "warmup failed" in bad_job.error
    assert [j.exit_status for j in good_jobs] == [i + 1 for i in range(20)]
    assert stats.jobs_completed == 21


async def test_worker_cancellation_still_stops_the_worker(api: statek.StatekClientAPI) -> None:
    waiter = _supervised("waiter", "m = wait_message().value\nexit(m)")
    api.submit_new_job(waiter, {})
    task = asyncio.create_task(run_jobs_loop(4, queue_prefixes=["test"]))
    while len(db0.find(statek.Job, JobStatus.SUSPENDED)) == 0:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_infinite_loop_ends_with_budget_error_and_fleet_goes_on(
        api: statek.StatekClientAPI) -> None:
    _settings(step_code_budget=0.3, step_kill_after=0)
    spinner = _supervised("spinner", "n = 0\nwhile True:\n    n += 1")
    good = _supervised("good", "exit(n * 2)")
    bad_job = api.submit_new_job(spinner, {})
    good_jobs = [api.submit_new_job(good, {"n": i}) for i in range(10)]
    began = time.monotonic()
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert bad_job.is_done
    assert bad_job.error is not None and "step_code_budget" in bad_job.error
    assert [j.exit_status for j in good_jobs] == [i * 2 for i in range(10)]
    assert time.monotonic() - began < 60  # failure bound only


SWALLOWERS = {
    "caught once": "try:\n    while True:\n        pass\nexcept BaseException:\n    x = 1",
    "in a function": "def spin():\n    while True:\n        pass\nspin()",
    "sleeping sync tool": "sleepy(600)",
    "generator": "def g():\n    while True:\n        yield 1\nfor _ in g():\n    pass",
    # an `except` clause re-raises the budget before its body: no loop can keep it
    "caught in a loop": ("while True:\n    try:\n        while True:\n            pass\n"
                         "    except BaseException:\n        pass"),
    "bare except in a function": ("def spin():\n    while True:\n        try:\n"
                                  "            pass\n        except:\n            pass\nspin()"),
    "caught by a tuple": ("kinds = (ValueError, BaseException)\nwhile True:\n    try:\n"
                          "        while True:\n            pass\n    except kinds:\n"
                          "        pass"),
}


@pytest.mark.parametrize("name", list(SWALLOWERS))
async def test_job_code_cannot_outlast_the_budget(api: statek.StatekClientAPI, name: str) -> None:
    _settings(step_code_budget=0.3, step_kill_after=0)
    spinner = statek.SupervisedAgent("spinner", tools=["sleepy"])
    spinner.update_warmup_def(SWALLOWERS[name])
    job = api.submit_new_job(spinner, {})
    other = api.submit_new_job(_supervised("other", "exit('fine')"), {})
    await asyncio.wait_for(run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True), 120)
    assert job.is_done and "step_code_budget" in (job.error or "")
    assert other.exit_status == "fine"


async def test_budget_is_per_step_and_model_code_gets_it_too(
        api: statek.StatekClientAPI) -> None:
    """Reply code that loops ends the job too (not only warmups), with the budget named."""
    from statek.providers import ScriptedProvider, add_provider, remove_provider

    _settings(step_code_budget=0.3, step_kill_after=0)
    add_provider("spin-llm", ScriptedProvider(["x = 0\nwhile True:\n    x += 1"]))
    try:
        agent = statek.Agent("looper", metadata={"MODEL": "spin-llm/any"})
        job = api.submit_new_job(agent, {})
        await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    finally:
        remove_provider("spin-llm")
    assert job.is_done and "step_code_budget" in (job.error or "")
    assert job.turns == 1  # not asked again after the breach


async def test_a_timer_fires_while_a_chain_of_inline_steps_runs(
        api: statek.StatekClientAPI) -> None:
    """The loop yields to the event loop every few ms of its own work while runnable work
    keeps arriving. Gaps are measured in this process's CPU time: on a loaded machine the
    wall clock also counts other processes and the disk's fsync waits, which say nothing
    about how long the loop runs without yielding."""
    chain = _supervised("chain", "exit(k)")
    jobs = [api.submit_new_job(chain, {"k": i}) for i in range(3000)]
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.process_time()
        while True:
            await asyncio.sleep(0.001)
            now = time.process_time()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await run_jobs_loop(100, queue_prefixes=["test"], auto_terminate=True)
    finally:
        ticking.cancel()
    assert jobs[-1].exit_status == 2999
    assert len(gaps) > 10
    gaps.sort()
    # the median tick is served within 50 ms of the process's CPU time
    assert gaps[len(gaps) // 2] < 0.05, gaps[-5:]


async def test_commits_within_the_window_during_a_burst(
        api: statek.StatekClientAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    # a fixed 50 ms window: what is tested is that a burst does not hold commits back (how
    # costly commits stretch the window is tests/store/test_commit_window.py's)
    monkeypatch.setenv("STATEK_COMMIT_INTERVAL_MAX", "0.05")
    reset_settings_cache()
    statek.init()
    chain = _supervised("chain", "exit(k)")
    for i in range(3000):
        api.submit_new_job(chain, {"k": i})
    stamps: list[float] = []
    real_commit = db0.commit

    def commit(*args: Any) -> Any:
        stamps.append(time.monotonic())
        return real_commit(*args)

    monkeypatch.setattr(db0, "commit", commit)
    await run_jobs_loop(100, queue_prefixes=["test"], auto_terminate=True)
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
    assert len(stamps) > 3
    # window 50 ms plus one step; the median is the stable figure on a loaded machine
    assert gaps[len(gaps) // 2] < 0.1, gaps[-5:]


_seen_keys: list[str] = []


@tool
def charge(amount: int) -> int:
    _seen_keys.append(idempotency_key())
    return amount


@tool
async def charge_async(amount: int) -> int:
    _seen_keys.append(idempotency_key())
    return amount


def test_idempotency_key_outside_a_tool_call_is_refused() -> None:
    with pytest.raises(statek.StatekError, match="only available while a job calls a tool"):
        idempotency_key()


@pytest.mark.usefixtures("execution_mode")  # an executor's async tool calls had no key
async def test_async_tools_get_a_stable_idempotency_key(api: statek.StatekClientAPI) -> None:
    agent = statek.SupervisedAgent("payer", tools=["charge_async"])
    agent.update_warmup_def("a = charge_async(1)\nb = charge_async(2)\nexit(a + b)")
    _seen_keys.clear()
    job = api.submit_new_job(agent, {})
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == 3
    assert len(_seen_keys) == 2 and len(set(_seen_keys)) == 2
    assert all(key.startswith(job.uuid + ":") for key in _seen_keys)
    # the key names the call's place in the code, so a re-run computes the same one
    assert _seen_keys == [f"{job.uuid}:w0:0:1", f"{job.uuid}:w0:1:1"]



@pytest.mark.usefixtures("execution_mode")
async def test_sync_tools_get_a_stable_idempotency_key(api: statek.StatekClientAPI) -> None:
    """Two sync calls in one statement, one in the next: a key each, named by the place of
    the call, so a re-run of the step (after a crash) makes the same calls with the same keys.
    In either mode: an isolated executor's sync tool calls had no key (idempotency_key()
    raised in the tool)."""
    agent = statek.SupervisedAgent("sync-payer", tools=["charge"])
    agent.update_warmup_def("a = charge(1) + charge(2)\nb = charge(4)\nexit(a + b)")
    _seen_keys.clear()
    job = api.submit_new_job(agent, {})
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert job.exit_status == 7
    assert _seen_keys == [f"{job.uuid}:w0:0:t1", f"{job.uuid}:w0:0:t2", f"{job.uuid}:w0:1:t1"]
    first = list(_seen_keys)
    _seen_keys.clear()
    again = api.submit_new_job(agent, {})
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    assert [k.replace(again.uuid, job.uuid) for k in _seen_keys] == first
