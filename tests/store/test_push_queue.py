from __future__ import annotations

from collections import deque

import dbzero as db0
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statek
from statek.errors import UnstorableValueError
from statek.models.fifo import CHUNK_SIZE, Fifo
from statek.statek_push_queue import StatekPushQueue


def test_one_queue_per_prefix(statek_store: str) -> None:
    q1 = StatekPushQueue()
    q2 = StatekPushQueue(statek_store)
    assert q1 == q2
    statek.open_prefix("other", "rw")
    q3 = StatekPushQueue("other")
    assert q3 != q1 and q3.prefix_name == "other"


def test_messages_fifo_across_chunks(api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    q = StatekPushQueue()
    n = CHUNK_SIZE * 2 + 7
    first = q.push_messages([(job, i) for i in range(n)])
    assert first == 0 and q.message_count() == n
    seen: list[int] = []
    while q.message_count():
        start, batch = q.peek_messages(100)
        assert start == len(seen)
        seen.extend(m for _, m in batch)
        q.ack_messages(len(batch))
    assert seen == list(range(n))
    assert len(q.messages.chunks) <= 1  # consumed chunks were dropped


def test_peek_without_ack_loses_nothing(api: statek.StatekClientAPI,
                                        agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    q = StatekPushQueue()
    q.push_message(job, "a")
    q.push_message(job.uuid, "b")
    assert q.peek_messages(10) == (0, [(job.uuid, "a"), (job.uuid, "b")])
    assert q.peek_messages(10) == (0, [(job.uuid, "a"), (job.uuid, "b")])
    q.ack_messages(1)
    assert q.peek_messages(10) == (1, [(job.uuid, "b")])


def test_events_per_agent(statek_store: str) -> None:
    a = statek.SupervisedAgent("a")
    b = statek.SupervisedAgent("b")
    q = StatekPushQueue()
    for i in range(3):
        q.push_event(a, f"a{i}")
    q.push_event(b, "b0")
    assert q.event_count(a) == 3 and q.event_count(b) == 1 and q.event_count() == 4
    assert sorted(q.event_agents()) == sorted([db0.uuid(a), db0.uuid(b)])
    assert q.peek_events(a, 2) == (0, ["a0", "a1"])
    q.ack_events(a, 2)
    assert q.peek_events(a, 5) == (2, ["a2"])
    assert q.peek_events(b, 5) == (0, ["b0"])


def test_unstorable_message_is_rejected_and_nothing_queued(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job = api.submit_new_job(agent)
    with pytest.raises(UnstorableValueError, match="message of type object"):
        api.push_message(job, object())
    assert StatekPushQueue().message_count() == 0


def test_message_for_missing_job_is_refused(api: statek.StatekClientAPI) -> None:
    with pytest.raises(statek.JobNotFoundError):
        api.push_message("NOSUCHJOBUUID", "hello")


def test_dead_letters_keep_the_item(statek_store: str) -> None:
    q = StatekPushQueue()
    q.record_dead_letter("message", "gone", {"x": 1}, "job does not exist")
    (entry,) = list(q.dead_letters)
    assert entry["target"] == "gone" and entry["item"] == {"x": 1}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("push"), st.integers(0, 700)),
                          st.tuples(st.just("pop"), st.integers(0, 900))), max_size=12))
def test_fifo_matches_a_deque(ops: list[tuple[str, int]]) -> None:
    import tempfile

    from statek import store

    with tempfile.TemporaryDirectory() as root:
        db0.init(dbzero_root=root)
        statek.open_prefix("prop", "rw")
        try:
            fifo = Fifo()
            model: deque[int] = deque()
            counter = 0
            for op, n in ops:
                if op == "push":
                    items = list(range(counter, counter + n))
                    counter += n
                    fifo.push_many(items)
                    model.extend(items)
                else:
                    _head, got = fifo.peek(n)
                    expected = [model[i] for i in range(min(n, len(model)))]
                    assert list(got) == expected
                    fifo.advance(len(got))
                    for _ in got:
                        model.popleft()
                assert len(fifo) == len(model)
        finally:
            store.close()
