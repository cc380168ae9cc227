"""The scheduler's readiness signal given the job or its definition (no fetch by uuid), and
the loop counting the jobs its steps ended with an error."""

from __future__ import annotations

import dbzero as db0
import pytest

import statek
from statek import signals, store
from statek.executors.utils import run_jobs_loop
from statek.models.status import JobStatus
from statek.models.submit import create_job, jobdef_for
from statek.runtime.scheduler import Scheduler, current_scheduler


def _lane_uuids(sched: Scheduler, lane: int) -> set[str]:
    return {sched.uuid_of(number) for number in sched.ready.pop_lane(lane, 100)}


def test_a_job_made_runnable_lands_in_its_agents_lane_whatever_the_caller_passes(
        api: statek.StatekClientAPI) -> None:
    sched = current_scheduler()  # subscribed: submitting now signals it
    first, second = statek.Agent("lane-first"), statek.Agent("lane-second")
    batch = api.submit_new_job_ids(first, [{"i": 1}, {"i": 2}])  # by definition
    other = api.submit_new_job_ids(second, [{"i": 3}])
    with store.transition():
        delegated = create_job(jobdef_for(first, {"max_turns": 3}), {}, None)  # by job
    finished = api.submit_new_job(second, {})
    with store.transition():
        finished.set_status(JobStatus.STARTED)
        finished.finish("ok")
    lone = api.submit_new_job_ids(second, [{"i": 4}])[0]
    assert sched.ready.discard(sched.jobs.intern(lone))
    signals.job_runnable(lone)  # by uuid alone (the outbox drain): fetched
    finished.push_user_message("again")  # re-opened: Job.resume passes itself
    lane_first, lane_second = sched.agent_lane(first), sched.agent_lane(second)
    assert lane_first != lane_second
    assert _lane_uuids(sched, lane_first) == {*batch, db0.uuid(delegated)}
    assert _lane_uuids(sched, lane_second) == {*other, lone, db0.uuid(finished)}
    assert not len(sched.ready)


def test_a_job_in_flight_is_not_queued_again_by_its_signal(api: statek.StatekClientAPI,
                                                          agent: statek.Agent) -> None:
    sched = current_scheduler()
    job = api.submit_new_job(agent, {})
    assert sched.take(1) == [sched.jobs.intern(db0.uuid(job))]
    signals.job_runnable(db0.uuid(job), job)
    signals.job_runnable(db0.uuid(job), None, job.jobdef)
    assert not len(sched.ready)  # its step's end routes it


def test_a_job_number_reused_by_another_agents_job_takes_that_agents_lane(
        api: statek.StatekClientAPI) -> None:
    """The scheduler remembers each job's lane while the number is the job's: a finished
    job's number, given to the next job, must not keep the lane it had."""
    sched = current_scheduler()
    first, second = statek.Agent("reuse-first"), statek.Agent("reuse-second")
    job = api.submit_new_job(first, {})
    [number] = sched.take(1)
    with store.transition():
        job.set_status(JobStatus.STARTED)
        job.finish("ok")
    sched.step_ended(number, job, 0.0)  # DONE: the number is free
    [later] = api.submit_new_job_ids(second, [{}])
    assert sched.jobs.intern(later) == number
    assert sched.ready.pop_lane(sched.agent_lane(second), 10) == [number]
    assert not len(sched.ready)


async def test_the_loop_counts_the_jobs_ended_with_an_error(
        execution_mode: str, api: statek.StatekClientAPI, agent: statek.Agent,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ended with an error by the step (a warmup failure), by `Job.finish` (an exit status
    that cannot be stored) and by job code before a bare exit (the delegate budget, which
    an executor process hears of as a plain exit): each is a failed step (the step reports
    it: the loop reads no `job.error`); an exit with or without a status is not."""
    monkeypatch.setattr(store.settings(), "max_delegates_per_step", 0)
    helper = statek.SupervisedAgent("helper")
    helper.update_warmup_def("exit(1)")
    codes = ["raise ValueError('no')", "exit(10 ** 5000)", "delegate(helper)",
             "exit('done')", "exit()"]
    jobs = [api.submit_new_job(agent, {"helper": helper}, warmup_code=code) for code in codes]
    stats = await run_jobs_loop(10, queue_prefixes=["test"], auto_terminate=True)
    assert all(job.status == JobStatus.DONE for job in jobs)
    assert [job.error is not None for job in jobs] == [True, True, True, False, False]
    assert stats.jobs_completed == len(codes) and stats.steps_failed == 3
