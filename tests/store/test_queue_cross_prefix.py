"""Push queues in another dbzero prefix than the jobs, driven through the worker loop.

Also home of `kernels`: the fixture that runs a worker-loop test on both scheduler twins
(the scheduler and the queue drain bind their kernels at import, so it swaps those names).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import dbzero as db0
import pytest

import statek
from statek import worker_state
from statek.executors.utils import run_jobs_loop
from statek.providers import ScriptedProvider, add_provider, remove_provider
from statek.runtime import queues, scheduler
from tests.support.reopen import reopen
from tests.support.speedups_fixture import sched_impl  # noqa: F401

QUEUES = "queues"  # the second prefix, where the push queue lives


@pytest.fixture
def kernels(sched_impl: ModuleType,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The worker loop on the pure or the compiled scheduler kernels."""
    for name in ("ReadyQueue", "WaiterIndex", "TimerHeap"):
        monkeypatch.setattr(scheduler, name, getattr(sched_impl, name))
    monkeypatch.setattr(queues, "partition_batch", sched_impl.partition_batch)
    worker_state.restart()  # a fresh owner: its scheduler is built on these kernels
    yield sched_impl
    worker_state.restart()


@pytest.fixture
def scripted() -> Iterator[ScriptedProvider]:
    """The offline provider, counting model calls (none is expected in these tests)."""
    provider = ScriptedProvider(["exit('the model answered')"])
    add_provider("scripted", provider)
    yield provider
    remove_provider("scripted")


@pytest.fixture
def other_queue(statek_store: str) -> statek.StatekPushQueue:
    """The push queue of a second prefix, made while the jobs' prefix is the current one
    (as an application that opens both would make it)."""
    statek.open_prefix(QUEUES, "rw")
    statek.open_prefix(statek_store, "rw")  # the jobs' prefix is current again
    queue = statek.StatekPushQueue(QUEUES)
    db0.commit()
    return queue


async def test_events_in_another_prefix_become_jobs(
        api: statek.StatekClientAPI, other_queue: statek.StatekPushQueue,
        kernels: ModuleType, scripted: ScriptedProvider, db_root: Path) -> None:
    doubler = statek.SupervisedAgent("doubler")
    doubler.update_warmup_def("exit(task['n'] * 2)")
    for n in range(3):
        other_queue.push_event(doubler, {"n": n, "tags": ["a", "b"]})
    db0.commit()  # the KeyError showed after this commit
    stats = await run_jobs_loop(4, "scripted", queue_prefixes=[QUEUES], auto_terminate=True)
    assert stats.events_started == 3 and stats.jobs_completed == 3
    assert sorted(j.exit_status for j in db0.find(statek.Job)) == [0, 2, 4]
    assert other_queue.event_count() == 0 and list(other_queue.dead_letters) == []
    assert scripted.calls == 0
    reopen(db_root, QUEUES, "test")  # the jobs' locals hold plain copies of the events
    events = sorted((dict(j.locals)["task"] for j in db0.find(statek.Job)),
                    key=lambda e: e["n"])
    assert [(e["n"], list(e["tags"])) for e in events] == [(n, ["a", "b"]) for n in range(3)]
    assert len(statek.StatekPushQueue(QUEUES).events) == 1


async def test_messages_in_another_prefix_reach_their_jobs(
        api: statek.StatekClientAPI, agent: statek.Agent,
        other_queue: statek.StatekPushQueue, kernels: ModuleType,
        scripted: ScriptedProvider, db_root: Path) -> None:
    job = api.submit_new_job(agent, warmup_code="exit(wait_message().value)")
    other_queue.push_message(job, {"text": "hi", "to": ["x"]})
    db0.commit()
    stats = await run_jobs_loop(4, "scripted", queue_prefixes=[QUEUES], auto_terminate=True)
    assert stats.messages_delivered == 1 and job.is_done
    assert other_queue.message_count() == 0
    assert dict(job.applied_seqs) == {QUEUES: 0}  # a re-delivered copy would be skipped
    uuid = job.uuid
    del job
    reopen(db_root, QUEUES, "test")
    job = db0.fetch(uuid)
    (message,) = job.messages
    assert message["text"] == "hi" and list(message["to"]) == ["x"]
    assert job.exit_status["text"] == "hi"


async def test_a_redelivered_cross_prefix_batch_is_skipped(
        api: statek.StatekClientAPI, agent: statek.Agent,
        other_queue: statek.StatekPushQueue) -> None:
    """A crash after the jobs' prefix committed and before the queue's did re-reads the
    batch; each job remembers the last sequence number it applied from the queue."""
    job = api.submit_new_job(agent)
    other_queue.push_messages([(job, "one"), (job, "two")])
    db0.commit()
    assert queues.process_push_notifications(queue_prefixes=[QUEUES]) == 2
    other_queue.messages.ends[0] = 0  # the queue's commit was lost: both come again
    assert queues.process_push_notifications(queue_prefixes=[QUEUES]) == 0
    assert job.messages == ["one", "two"] and other_queue.message_count() == 0


def test_two_queues_reopen_a_finished_job_once_in_one_drain(
        api: statek.StatekClientAPI, agent: statek.Agent,
        other_queue: statek.StatekPushQueue, statek_store: str) -> None:
    """One drain call feeding a DONE job from two queues: the first delivery re-opens it,
    the second finds it open (the drain re-reads a status its delivery changed)."""
    job = api.submit_new_job(agent)
    job.finish(exit_status="first")
    other_queue.push_message(job, "from the other prefix")
    statek.StatekPushQueue(statek_store).push_message(job, "from its own prefix")
    db0.commit()
    assert queues.process_push_notifications(queue_prefixes=[QUEUES, statek_store]) == 2
    assert sorted(job.messages) == ["from its own prefix", "from the other prefix"]
    (earlier,) = job.previous_results
    assert earlier["exit_status"] == "first"
    assert job.status != statek.JobStatus.DONE


def test_plain_copy_keeps_memo_references(statek_store: str) -> None:
    agent = statek.Agent("kept")
    stored = db0.list([{"agent": agent, "pair": (1, 2)}, {3}])
    copied = queues.plain_copy(stored)
    assert copied == [{"agent": agent, "pair": (1, 2)}, {3}]
    assert type(copied) is list and type(copied[0]) is dict and type(copied[1]) is set
    assert copied[0]["agent"] is agent or copied[0]["agent"] == agent

