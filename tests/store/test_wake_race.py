"""A job whose awaited child finishes while the job's own step is still in flight resumes.

A step that waits (isolation="process": every statement is a round trip to an executor; a
model call) can create a child, see its future unready, and end only after the child has
already finished: the child's `job_finished` found no waiter then. Found as a parent that
never resumed in W5 under isolation="process" (12 of 30 runs); these tests replay the
interleaving step by step, without timing.
"""

from __future__ import annotations

import dbzero as db0
import pytest

import statek
from statek.execution.step import execute_step
from statek.executors.utils import run_jobs_loop
from statek.models.status import DONE, SUSPENDED, JobStatus
from statek.runtime.scheduler import Scheduler, current_scheduler


def _child_agent() -> statek.SupervisedAgent:
    child = statek.SupervisedAgent("race-child")
    child.update_warmup_def("exit(k + 1)")
    return child


async def _parent_suspended_then_child_done(api: statek.StatekClientAPI
                                            ) -> tuple[Scheduler, int, statek.Job, int]:
    """Run the parent's step (it delegates and suspends), then the child's whole step,
    before the parent's step is routed; returns the scheduler, the parent's number, the
    parent and the wake-event count seen when the parent's step began."""
    sched = current_scheduler()
    sched.rebuild()
    parent = api.submit_new_job(statek.Agent("race-parent"), {"child": _child_agent()},
                                warmup_code="exit(delegate(child, k=41).value)")
    [number] = sched.take(1)
    events_before = sched.wake_events
    await execute_step(parent)
    assert parent.state == SUSPENDED
    [child_number] = sched.take(1)
    child = db0.fetch(sched.uuid_of(child_number))
    child_events = sched.wake_events
    await execute_step(child)
    assert child.state == DONE  # its wake-up went out while no one was indexed on it
    sched.step_ended(child_number, child, 0.0, child_events)
    return sched, number, parent, events_before


async def test_parent_whose_child_finished_during_its_step_resumes(
        api: statek.StatekClientAPI) -> None:
    sched, number, parent, events_before = await _parent_suspended_then_child_done(api)
    sched.step_ended(number, parent, 0.0, events_before)
    assert sched.unsuspend() == 1
    assert sched.take(1) == [number]
    await execute_step(parent)
    assert parent.state == DONE and parent.exit_status == 42


async def test_a_step_with_no_wake_up_meanwhile_is_not_checked_again(
        api: statek.StatekClientAPI) -> None:
    sched = current_scheduler()
    sched.rebuild()
    parent = api.submit_new_job(statek.Agent("race-parent"), {"child": _child_agent()},
                                warmup_code="exit(delegate(child, k=1).value)")
    [number] = sched.take(1)
    events_before = sched.wake_events
    await execute_step(parent)
    sched.step_ended(number, parent, 0.0, events_before)
    assert sched.rechecks == []  # the common case costs nothing extra
    assert number in sched.waiters


@pytest.mark.usefixtures("execution_mode")
async def test_parents_and_children_all_finish_through_a_worker(
        api: statek.StatekClientAPI) -> None:
    """The W5 shape through a real worker, in both execution modes: every parent resumes
    (a lost wake-up would leave one suspended and the loop reports it as stranded)."""
    child = _child_agent()
    parent_agent = statek.Agent("race-parent")
    for k in range(8):
        api.submit_new_job(parent_agent, {"child": child, "k": k},
                           warmup_code="exit(delegate(child, k=k).value)")
    stats = await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert stats.stranded == 0
    done = list(db0.find(statek.Job, JobStatus.DONE))
    assert len(done) == 16
    assert sorted(j.exit_status for j in done if j.exit_status is not None) == sorted(
        [k + 1 for k in range(8)] * 2)
