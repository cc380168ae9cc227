"""Steps with long job code take turns with the event loop: other tasks (and signal
handlers, sockets, timers, model replies) run between them instead of after all of them
(statek.execution.turns). Found by a new-user trial: SIGINT waited for every in-flight step
of CPU-heavy code."""

from __future__ import annotations

import asyncio

import dbzero as db0
import pytest

import statek
from statek.execution import turns
from statek.executors.utils import run_jobs_loop
from statek.models.job import Job
from statek.models.status import JobStatus

JOBS = 6
HEAVY = "x = 0\nfor i in range(n):\n    x += 1\nexit(x)"


def _done() -> int:
    return len(db0.find(Job, JobStatus.DONE))


async def _counts_seen_by_a_timer(api: statek.StatekClientAPI, agent: statek.Agent,
                                  n: int) -> set[int]:
    """Run JOBS jobs of `n` iterations each; the DONE counts another task saw meanwhile (it
    runs once per loop turn: a 1 ms timer would skip the turns that began within 1 ms)."""
    for _ in range(JOBS):
        api.submit_new_job(agent, {"n": n}, warmup_code=HEAVY)
    seen: set[int] = set()

    async def watch() -> None:
        while True:
            seen.add(_done())
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        stats = await run_jobs_loop(JOBS, queue_prefixes=["test"], auto_terminate=True)
    finally:
        watcher.cancel()
    assert stats.jobs_completed == JOBS
    return seen


async def test_timers_run_between_steps_of_long_code(api: statek.StatekClientAPI,
                                                     agent: statek.Agent,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # each job's code takes far more than this turn (any machine), so at most two run per
    # turn (the one the turn began with, and one after the loop's own iteration resets it)
    monkeypatch.setattr(turns, "TURN_S", 0.001)
    seen = await _counts_seen_by_a_timer(api, agent, 50_000)
    between = seen & set(range(1, JOBS))
    assert len(between) >= JOBS // 2 - 1, seen  # before: {0} (all six ran in one turn)


async def test_cheap_code_never_yields(api: statek.StatekClientAPI, agent: statek.Agent,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    yields = 0
    real = turns.next_turn

    async def counted() -> None:
        nonlocal yields
        yields += 1
        await real()

    monkeypatch.setattr(turns, "next_turn", counted)
    monkeypatch.setattr(turns, "TURN_S", 60.0)  # no turn runs this long
    for i in range(20):
        api.submit_new_job(agent, {"i": i}, warmup_code="exit(i)")
    stats = await run_jobs_loop(20, queue_prefixes=["test"], auto_terminate=True)
    assert stats.jobs_completed == 20 and yields == 0


async def test_a_loop_that_ended_with_a_turn_queued_does_not_stall_the_next() -> None:
    """`next_turn` queued a reset on a loop that then ended: a new loop must not wait on it."""
    turns.new_turn()

    async def spend_and_yield() -> None:
        turns._turn_began -= 10  # as if long code ran
        waiting = asyncio.ensure_future(turns.next_turn())
        await asyncio.sleep(0)
        waiting.cancel()  # the loop ends before the reset ran... (it may have run: fine)

    await spend_and_yield()
    turns._turn_began -= 10
    turns._reset_on = object()  # type: ignore[assignment]  # a reset queued on a gone loop
    await asyncio.wait_for(turns.next_turn(), timeout=30)  # queues its own and returns
    assert not turns.turn_spent()
