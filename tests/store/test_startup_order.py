"""A worker starting over a store that already holds runnable jobs queues them as a running
worker would have: oldest first, and the agents' lanes in the order of their oldest jobs."""

from __future__ import annotations

from pathlib import Path

import statek
from statek.executors.utils import run_jobs_loop
from tests.store.test_steps_per_slot import _agent, marks  # noqa: F401
from tests.support.reopen import reopen

ONE_STEP = {"warmup_code": "mark(who, i)\nexit(i)"}  # a job of one step: marks when it runs


async def test_jobs_waiting_at_start_run_oldest_first_across_agents(
        api: statek.StatekClientAPI, db_root: Path, statek_store: str,
        marks: list[tuple[str, int]]) -> None:  # noqa: F811
    first, second = _agent("first"), _agent("second")
    for i in range(3):  # submitted one at a time, alternating which agent is newest
        api.submit_new_job_ids(first, [{"who": "first", "i": i}], **ONE_STEP)
        if i < 2:
            api.submit_new_job_ids(second, [{"who": "second", "i": i}], **ONE_STEP)
    statek.commit_all()
    reopen(db_root, statek_store)  # a new worker process
    stats = await run_jobs_loop(1, queue_prefixes=[statek_store], auto_terminate=True)
    assert stats.jobs_completed == 5
    assert marks == [("first", 0), ("second", 0), ("first", 1), ("second", 1), ("first", 2)]


async def test_a_batch_waiting_at_start_runs_in_submission_order(
        api: statek.StatekClientAPI, db_root: Path, statek_store: str,
        marks: list[tuple[str, int]]) -> None:  # noqa: F811
    api.submit_new_job_ids(_agent("solo"), [{"who": "solo", "i": i} for i in range(6)],
                           **ONE_STEP)
    statek.commit_all()
    reopen(db_root, statek_store)  # a new worker process
    await run_jobs_loop(1, queue_prefixes=[statek_store], auto_terminate=True)
    assert marks == [("solo", i) for i in range(6)]
