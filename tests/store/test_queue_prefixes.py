"""`queue_prefixes` must name prefixes that exist: a typo fails loudly and creates nothing."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import dbzero as db0
import pytest

import statek
from statek.errors import ConfigurationError
from statek.executors.utils import (
    process_agent_events,
    process_push_notifications,
    run_agentic_loop,
    run_jobs_loop,
)
from tests.store.test_queue_cross_prefix import kernels  # noqa: F401
from tests.support.reopen import reopen
from tests.support.speedups_fixture import sched_impl  # noqa: F401


def _files(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


async def test_worker_refuses_a_queue_prefix_that_does_not_exist(
        api: statek.StatekClientAPI, agent: statek.Agent, db_root: Path,
        kernels: ModuleType) -> None:  # noqa: F811
    job = api.submit_new_job(agent, warmup_code="exit(1)")
    before = _files(db_root)
    with pytest.raises(ConfigurationError, match="queue prefix 'tset' does not exist") as err:
        await run_jobs_loop(4, "scripted", queue_prefixes=["tset"], auto_terminate=True)
    assert "'test'" in str(err.value)  # the prefixes that do exist are listed
    assert _files(db_root) == before and not any("tset" in n for n in _files(db_root))
    assert "tset" not in {p.name for p in db0.get_prefixes()}
    assert job.status != statek.JobStatus.DONE  # no step ran
    supervised = statek.SupervisedAgent("s")
    supervised.update_warmup_def("exit(task)")
    with pytest.raises(ConfigurationError, match="'nowhere'"):
        await run_agentic_loop(supervised, None, lambda: 0, ["nowhere"], auto_terminate=True)
    assert _files(db_root) == before


def test_queue_helpers_refuse_a_missing_prefix(statek_store: str, db_root: Path) -> None:
    before = _files(db_root)
    with pytest.raises(ConfigurationError, match="'nope'"):
        process_push_notifications(queue_prefixes=["test", "nope"])
    with pytest.raises(ConfigurationError, match="'nope'"):
        process_agent_events(queue_prefixes=["nope"])
    assert _files(db_root) == before


async def test_a_queue_prefix_made_by_another_process_is_found(
        api: statek.StatekClientAPI, agent: statek.Agent, db_root: Path,
        statek_store: str, kernels: ModuleType) -> None:  # noqa: F811
    """The worker opens only the jobs' prefix; the queue's prefix, made and filled by the
    application in earlier processes, is opened by the worker and its queue found (not a
    second, empty one made beside it)."""
    job_uuid = api.submit_new_job(agent, warmup_code="exit(wait_message().value)").uuid
    reopen(db_root, "inbox")  # the application: makes the queue's prefix and pushes
    statek.StatekPushQueue().push_message(job_uuid, "via inbox")
    reopen(db_root, statek_store)  # the worker
    await run_jobs_loop(4, "scripted", queue_prefixes=["inbox"], auto_terminate=True)
    assert db0.fetch(job_uuid).exit_status == "via inbox"
    assert len(db0.find(statek.StatekPushQueue, prefix="inbox")) == 1
    assert statek.StatekPushQueue("inbox").message_count() == 0
