"""Every path that ends a job drops it from the worker's per-job caches (statek.job_caches).

The leak this guards: a job that defined a function and suspended keeps its whole globals
dict in the interpreter's caches; when it was then cancelled through the client, nothing
forgot it until `statek.close()`."""

from __future__ import annotations

import dbzero as db0
import pytest

import statek
from statek import job_caches, store
from statek.executors.utils import run_jobs_loop
from statek.models.status import JobStatus

#: a function (kept in the job's namespace between steps), then a suspension
N_JOBS = 20_000
DEFINE_AND_SUSPEND = "def double(x):\n    return 2 * x\nn = double(3)\nwait_message().value"


def _held() -> int:
    return sum(job_caches.resident().values())


async def test_twenty_thousand_cancelled_jobs_leave_nothing_behind(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    ids = api.submit_new_job_ids(agent, [None] * N_JOBS, warmup_code=DEFINE_AND_SUSPEND)
    stats = await run_jobs_loop(1000, queue_prefixes=["test"], auto_terminate=True)
    assert stats.stranded == N_JOBS  # all suspended, waiting for a message
    assert _held() >= N_JOBS  # the namespaces are kept while the jobs wait
    for job_uuid in ids[:20]:  # the client's path (a commit each) ...
        assert api.cancel_job(job_uuid)
    with store.transition():  # ... and the same `Job.cancel` for the rest, one commit
        for job_uuid in ids[20:]:
            assert db0.fetch(job_uuid).cancel()
    db0.commit()
    assert len(db0.find(statek.Job, JobStatus.DONE)) == N_JOBS
    assert job_caches.resident() == dict.fromkeys(job_caches.resident(), 0)


@pytest.mark.usefixtures("execution_mode")
async def test_exit_cancel_and_failure_all_drop_the_job(api: statek.StatekClientAPI,
                                                        agent: statek.Agent) -> None:
    exiting = api.submit_new_job(agent, warmup_code="def f():\n    return 1\nexit(f())")
    failing = api.submit_new_job(agent, warmup_code="def f():\n    return 1\nraise_ = 1 / 0")
    waiting = api.submit_new_job(agent, warmup_code=DEFINE_AND_SUSPEND)
    await run_jobs_loop(4, queue_prefixes=["test"], auto_terminate=True)
    assert exiting.exit_status == 1
    assert waiting.status == JobStatus.SUSPENDED
    api.cancel_job(failing)
    api.cancel_job(waiting)
    assert failing.is_done and waiting.is_done
    assert _held() == 0


def test_a_name_is_registered_once() -> None:
    table: dict[str, int] = {}
    job_caches.register("test.once", table)
    try:
        assert job_caches.register("test.once", table) is table  # the same table again: fine
        with pytest.raises(ValueError, match=r"test\.once"):
            job_caches.register("test.once", {})
    finally:
        job_caches.unregister("test.once")
