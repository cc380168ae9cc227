"""Every path that ends a job drops it from the worker's per-job caches (statek.worker_state).

The leak this guards: a job that defined a function and suspended keeps its whole globals
dict in the interpreter's caches; when it was then cancelled through the client, nothing
forgot it until `statek.close()`. Also: the state owner's lifecycle (created with the store,
dropped when it closes) and the bound on what it holds."""

from __future__ import annotations

from pathlib import Path

import dbzero as db0
import pytest

import statek
from statek import store, worker_state
from statek.executors.utils import run_jobs_loop
from statek.models.status import JobStatus
from statek.runtime.scheduler import current_scheduler

#: a function (kept in the job's namespace between steps), then a suspension
N_JOBS = 20_000
DEFINE_AND_SUSPEND = "def double(x):\n    return 2 * x\nn = double(3)\nwait_message().value"


def _held(worker: worker_state.WorkerState) -> int:
    return sum(worker.resident().values())


@pytest.mark.slow
async def test_twenty_thousand_cancelled_jobs_leave_nothing_behind(
        api: statek.StatekClientAPI, agent: statek.Agent,
        worker: worker_state.WorkerState) -> None:
    ids = api.submit_new_job_ids(agent, [None] * N_JOBS, warmup_code=DEFINE_AND_SUSPEND)
    stats = await run_jobs_loop(1000, queue_prefixes=["test"], auto_terminate=True)
    assert stats.stranded == N_JOBS  # all suspended, waiting for a message
    resident = worker.resident()
    assert resident["transient"] == resident["namespaces"] == N_JOBS  # kept while they wait
    for job_uuid in ids[:20]:  # the client's path (a commit each) ...
        assert api.cancel_job(job_uuid)
    with store.transition():  # ... and the same `Job.cancel` for the rest, one commit
        for job_uuid in ids[20:]:
            assert db0.fetch(job_uuid).cancel()
    db0.commit()
    assert len(db0.find(statek.Job, JobStatus.DONE)) == N_JOBS
    assert worker.resident() == dict.fromkeys(worker_state.PER_JOB, 0)
    assert worker is worker_state.current()  # the same owner throughout


@pytest.mark.usefixtures("execution_mode")
async def test_exit_cancel_and_failure_all_drop_the_job(
        api: statek.StatekClientAPI, agent: statek.Agent,
        worker: worker_state.WorkerState) -> None:
    exiting = api.submit_new_job(agent, warmup_code="def f():\n    return 1\nexit(f())")
    failing = api.submit_new_job(agent, warmup_code="def f():\n    return 1\nraise_ = 1 / 0")
    waiting = api.submit_new_job(agent, warmup_code=DEFINE_AND_SUSPEND)
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert exiting.exit_status == 1
    assert waiting.status == JobStatus.SUSPENDED
    assert worker.holding(waiting.uuid)  # its function keeps its namespace
    api.cancel_job(failing)
    api.cancel_job(waiting)
    assert failing.is_done and waiting.is_done
    assert worker.holding(waiting.uuid) == []
    assert _held(worker) == 0


async def test_closing_the_store_drops_the_owner_and_its_scheduler(
        api: statek.StatekClientAPI, agent: statek.Agent, db_root: Path) -> None:
    api.submit_new_job(agent, warmup_code=DEFINE_AND_SUSPEND)
    await run_jobs_loop(2, queue_prefixes=["test"], auto_terminate=True)
    first = worker_state.current()
    sched = current_scheduler()
    assert first.scheduler is sched and _held(first) > 0
    store.close()
    assert first.resident() == dict.fromkeys(worker_state.PER_JOB, 0)  # released
    assert first.scheduler is None
    assert worker_state.resident() == dict.fromkeys(worker_state.PER_JOB, 0)
    db0.init(dbzero_root=str(db_root))
    statek.init()
    statek.open_prefix("test", "rw")
    assert worker_state.current() is not first  # a new store, a new owner
    assert current_scheduler() is not sched


def test_a_restarted_owner_starts_empty(worker: worker_state.WorkerState) -> None:
    worker.transient["some-job"] = {"f": len}
    fresh = worker_state.restart()
    assert fresh is not worker and fresh is worker_state.current()
    assert _held(fresh) == 0 and worker.holding("some-job") == []


def test_a_finished_job_leaves_every_per_job_cache(worker: worker_state.WorkerState) -> None:
    for name in worker_state.PER_JOB:
        getattr(worker, name)["job-a"] = object()
        getattr(worker, name)["job-b"] = object()
    worker_state.drop_job("job-a")
    assert worker.holding("job-a") == []
    assert worker.holding("job-b") == list(worker_state.PER_JOB)
