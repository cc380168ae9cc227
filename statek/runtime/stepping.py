"""Driving the scheduler by hand: one step, or one unsuspend pass, at a time.

For applications and tests that run their own loop instead of `run_jobs_loop`; the worker
loop itself never calls these (it runs steps through its own task bookkeeping)."""

from __future__ import annotations

import dbzero as db0

from statek.execution.step import execute_step
from statek.models.job import Job
from statek.runtime.scheduler import current_scheduler


async def run_job_step(job: Job, provider: str | None = None) -> bool:
    """Execute one step of `job`; True when it completed during the step.

    Errors of the job (its code, the model's reply, the provider) are recorded on the job,
    never raised. A job that suspends is indexed, so `unsuspend_jobs()` finds it cheaply."""
    result = await execute_step(job, provider)
    if result.suspended:
        sched = current_scheduler()
        sched.index(sched.jobs.intern(db0.uuid(job)), job)
    return result.completed


def unsuspend_jobs() -> int:
    """Move suspended jobs whose futures are ready to STARTED; returns how many.

    Costs O(jobs whose wake-up condition changed); the first call in a process without a
    running loop builds the index from dbzero once, which moves the jobs whose futures
    became ready while no worker ran (counted in the result)."""
    sched = current_scheduler()
    moved = 0
    if not sched.rebuilt:
        moved = sched.rebuild()["woken"]
    return moved + sched.unsuspend()
