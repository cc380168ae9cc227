"""The queue drain keeps the jobs it delivers to between calls (`worker_state`'s
`delivery_targets`): each job is looked up once, not once per call, and never outlives the
job's taking messages (a cancel finishes the job, which drops it)."""

from __future__ import annotations

from types import ModuleType

import dbzero as db0
import pytest

import statek
from statek import worker_state
from statek.executors.utils import process_push_notifications, run_job_step
from statek.models.status import JobStatus
from statek.runtime import queues
from tests.store.test_queue_cross_prefix import kernels  # noqa: F401
from tests.support.speedups_fixture import sched_impl  # noqa: F401


async def _sleeping_jobs(api: statek.StatekClientAPI, agent: statek.Agent,
                         n: int) -> list[statek.Job]:
    """Jobs SUSPENDED on an hour's sleep: a message lands in the inbox and wakes nothing."""
    jobs = [api.submit_new_job(agent, warmup_code="sleep(3600).value") for _ in range(n)]
    for job in jobs:
        await run_job_step(job)
    assert all(j.status == JobStatus.SUSPENDED for j in jobs)
    return jobs


def _drain(queue: statek.StatekPushQueue, pairs: list[tuple[statek.Job, str]]) -> int:
    queue.push_messages(pairs)
    return process_push_notifications(queue_prefixes=["test"])


def _count_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    looked_up: list[str] = []
    real = queues.DeliveryTarget.__init__

    def counting(self: queues.DeliveryTarget, job_uuid: str) -> None:
        looked_up.append(job_uuid)
        real(self, job_uuid)

    monkeypatch.setattr(queues.DeliveryTarget, "__init__", counting)
    return looked_up


async def test_a_job_is_looked_up_once_across_drain_calls(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = await _sleeping_jobs(api, agent, 3)
    looked_up = _count_lookups(monkeypatch)
    queue = statek.StatekPushQueue()
    for round_ in range(3):
        assert _drain(queue, [(j, f"round {round_}") for j in jobs]) == 3
    assert sorted(looked_up) == sorted(j.uuid for j in jobs)
    for job in jobs:
        assert job.messages == ["round 0", "round 1", "round 2"]
        assert job.unread_messages == 3


async def test_a_cancelled_job_is_not_kept_its_next_message_is_a_dead_letter(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        ) -> None:
    job, other = await _sleeping_jobs(api, agent, 2)
    queue = statek.StatekPushQueue()
    assert _drain(queue, [(job, "first"), (other, "first")]) == 2
    assert job.uuid in worker_state.current().delivery_targets
    assert api.cancel_job(job) is True
    assert job.uuid not in worker_state.current().delivery_targets
    assert _drain(queue, [(job, "after the cancel"), (other, "second")]) == 1
    assert job.messages == ["first"] and other.messages == ["first", "second"]
    (letter,) = list(queue.dead_letters)
    assert letter["item"] == "after the cancel" and "cancelled" in letter["reason"]


async def test_kept_targets_are_bounded_least_recently_used_first(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queues, "KEPT_TARGETS", 2)
    a, b, c = await _sleeping_jobs(api, agent, 3)
    queue = statek.StatekPushQueue()
    _drain(queue, [(a, "1"), (b, "1")])
    _drain(queue, [(a, "2")])  # a is now the most recently used
    _drain(queue, [(c, "1")])
    assert list(worker_state.current().delivery_targets) == [a.uuid, c.uuid]
    looked_up = _count_lookups(monkeypatch)
    _drain(queue, [(b, "2"), (c, "2")])
    assert looked_up == [b.uuid] and b.messages == ["1", "2"] and c.messages == ["1", "2"]


async def test_a_refused_target_is_not_kept(
        api: statek.StatekClientAPI, agent: statek.Agent, kernels: ModuleType,  # noqa: F811
        ) -> None:
    queue = statek.StatekPushQueue()
    queue.push_message(db0.uuid(agent), "for an agent?")
    assert process_push_notifications(queue_prefixes=["test"]) == 0
    assert len(list(queue.dead_letters)) == 1
    assert not worker_state.current().delivery_targets
