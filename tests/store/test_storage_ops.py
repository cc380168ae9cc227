"""Storage operations of the push queue, counted with benchmarks/storage_ops.py's shim: a
push is one append, one int read and one int write, a drain writes each job once per call and
the queue's head once; queues stored before the flat layout still work."""

from __future__ import annotations

import datetime
import tempfile
from collections import deque
from typing import Any

import dbzero as db0
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statek
from benchmarks.storage_ops import OpCounter
from statek import store, worker_state
from statek.models.fifo import CHUNK_SIZE, Fifo
from statek.models.inbox import MAX_HEAD_CHARS
from statek.runtime.queues import check_queue_prefixes, process_push_notifications
from statek.statek_push_queue import StatekPushQueue


def _writes(ops: OpCounter) -> dict[str, int]:
    return {key: n for key, n in ops.ops.items() if "write" in key.split(":")[0]}


def test_push_message_is_one_append_and_one_list_item_write(api: statek.StatekClientAPI,
                                                            agent: statek.Agent) -> None:
    job: Any = api.submit_new_job(agent)
    q = StatekPushQueue()
    q.push_message(job, "first")  # starts the chunk
    with OpCounter() as ops:
        for i in range(10):
            q.push_message(job.uuid, f"m{i}")
    assert _writes(ops) == {"container write: Fifo.ends.setitem": 10,
                            "container write: Fifo.last.append": 10}
    assert not any("chunks" in key for key in ops.ops)  # no dict lookup per push
    # the tail chunk and the constants are read once, then kept in Python between pushes;
    # the [head, tail] list is read afresh each push (a held one loses item sets, S15)
    assert {key: n for key, n in ops.ops.items() if key.startswith("attr read")} == {
        "attr read: Fifo.ends": 10 + 1, "attr read: Fifo.last": 1, "attr read: Fifo.stride": 1,
        "attr read: Fifo.packed_from": 1}  # `ends` once more when the tail chunk is kept
    assert ops.ops["container read: Fifo.ends.getitem"] == 10
    assert ops.ops["container read: Fifo.ends.getslice"] == 1
    assert q.peek_messages(20)[1] == [(job.uuid, "first")] + [(job.uuid, f"m{i}")
                                                            for i in range(10)]


@pytest.mark.parametrize(("earlier", "inbox_write"), [
    (1, "attr write: Job.inbox"),  # the string form: rewritten once
    (MAX_HEAD_CHARS // 4, "container write: Job.inbox.extend"),  # past it: a list
])
def test_drain_writes_each_job_once_per_call(api: statek.StatekClientAPI, agent: statek.Agent,
                                             earlier: int, inbox_write: str) -> None:
    jobs: list[Any] = [api.submit_new_job(agent) for _ in range(2)]
    q = StatekPushQueue()
    q.push_messages([(jobs[i % 2], i) for i in range(20)])
    for job in jobs:  # the inboxes exist
        job.apply_messages(["hello"] * earlier)
    with OpCounter() as ops:
        assert process_push_notifications(3, 100, queue_prefixes=[q.prefix_name]) == 20
    assert ops.ops[inbox_write] == 2
    assert not {"attr write: Job.inbox", "container write: Job.inbox.extend"} - {inbox_write} \
        & set(ops.ops)
    assert ops.ops["container write: Fifo.ends.setitem"] == 1  # the head, once
    assert ops.ops["container read: Fifo.chunks[].getslice"] == 1
    assert [job.messages for job in jobs] == [
        ["hello"] * earlier + [*range(0, 20, 2)], ["hello"] * earlier + [*range(1, 20, 2)]]
    assert q.message_count() == 0


def test_a_drain_reads_whether_a_finished_job_was_cancelled_once(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    done: list[Any] = [api.submit_new_job(agent) for _ in range(3)]
    for job in done:
        job.finish("ok")
    cancelled = api.submit_new_job(agent)
    cancelled.cancel()
    q = StatekPushQueue()
    q.push_messages([(job, f"m{i}") for i, job in enumerate([*done, cancelled, *done])])
    with OpCounter() as ops:
        assert process_push_notifications(queue_prefixes=[q.prefix_name]) == 6
    assert ops.ops["attr read: Job.cancelled"] == 4  # once per finished job, at its lookup
    assert [job.status for job in done] == [statek.JobStatus.STARTED] * 3
    assert [job.messages for job in done] == [["m0", "m4"], ["m1", "m5"], ["m2", "m6"]]
    assert cancelled.messages == [] and len(q.dead_letters) == 1


def test_fifo_reuses_no_dropped_chunk(statek_store: str) -> None:
    fifo = Fifo(stride=2)
    fifo.push_many([(i, -i) for i in range(CHUNK_SIZE)])
    fifo.advance(CHUNK_SIZE)  # the whole chunk is consumed and dropped
    assert dict(fifo.chunks.items()) == {0: None} and fifo.last is None
    fifo.push((1, 2))
    fifo.push((3, 4))
    assert fifo.peek(5) == (CHUNK_SIZE, [(1, 2), (3, 4)])
    assert fifo.peek_flat(1) == (CHUNK_SIZE, [1, 2])


def test_fifo_rejects_items_of_the_wrong_width(statek_store: str) -> None:
    fifo = Fifo(stride=2)
    fifo.push((1, 2))
    for bad in ((1,), (1, 2, 3)):
        try:
            fifo.push(bad)
        except ValueError as exc:
            assert "2 values" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
    assert fifo.peek(5)[1] == [(1, 2)]


def _old_layout(fifo: Any) -> None:
    """Make `fifo` look as stored by earlier versions: no `stride`, no `last`."""
    del fifo.stride
    del fifo.last


def test_queue_of_the_earlier_layout_still_delivers(api: statek.StatekClientAPI,
                                                    agent: statek.Agent) -> None:
    job: Any = api.submit_new_job(agent)
    q = StatekPushQueue()
    q.messages = Fifo()  # tuples, one per item, as earlier versions stored them
    _old_layout(q.messages)
    q.push_message(job, "a")
    q.push_messages([(job, "b"), (job.uuid, "c")])
    q.push_message(job, "d")
    assert q.peek_message_columns(10) == (0, [job.uuid] * 4, ["a", "b", "c", "d"])
    assert process_push_notifications(2, 10, queue_prefixes=[q.prefix_name]) == 4
    assert job.messages == ["a", "b", "c", "d"]
    db0.commit()
    assert q.message_count() == 0


def test_counter_leaves_every_memo_class_as_it_was(api: statek.StatekClientAPI) -> None:
    """Subclasses too (SupervisedAgent inherits Agent's attribute slots)."""
    with OpCounter() as ops:
        agent = statek.SupervisedAgent("sup")
        assert agent.role == "sup"
    assert ops.ops["attr read: SupervisedAgent.role"] == 1
    again: Any = statek.SupervisedAgent("sup2")
    assert again.role == "sup2" and list(again.tool_names) == list(agent.tool_names)
    assert not OpCounter().ops  # nothing counted once uninstalled


def _message(i: int) -> Any:
    """Mostly plain JSON (packed as a string), sometimes what JSON would change (stored as it
    is in a packed fifo): both forms meet in one chunk."""
    return (i, "tuple") if i % 7 == 3 else f"m{i}"


@settings(max_examples=25, deadline=None)
@given(st.booleans(),
       st.lists(st.one_of(st.tuples(st.just("one"), st.integers(0, 3)),
                          st.tuples(st.just("many"), st.integers(0, 700)),
                          st.tuples(st.just("pop"), st.integers(0, 900))), max_size=14))
def test_pair_fifo_matches_a_deque(packed: bool, ops: list[tuple[str, int]]) -> None:
    """A stride-2 fifo (the messages layout), flat or packed, against a deque of pairs,
    across chunks, with single pushes after a chunk was started, filled and dropped."""
    with tempfile.TemporaryDirectory() as root:
        db0.init(dbzero_root=root)
        statek.open_prefix("prop", "rw")
        try:
            fifo = Fifo(stride=2, packed=packed)
            model: deque[tuple[int, Any]] = deque()
            counter = 0
            for op, n in ops:
                if op == "pop":
                    first, got = fifo.peek(n)
                    assert got == [model[i] for i in range(min(n, len(model)))]
                    assert fifo.peek_flat(n) == (first, [v for pair in got for v in pair])
                    fifo.advance(len(got))
                    for _ in got:
                        model.popleft()
                    continue
                if op == "one":
                    for _ in range(n):
                        item = (counter, _message(counter))
                        assert fifo.push(item) == counter  # its sequence number
                        model.append(item)
                        counter += 1
                else:
                    items = [(i, _message(i)) for i in range(counter, counter + n)]
                    assert fifo.push_many(items) == counter
                    model.extend(items)
                    counter += n
                assert len(fifo) == len(model)
        finally:
            store.close()


def test_a_batch_of_plain_messages_is_one_stored_value(api: statek.StatekClientAPI,
                                                       agent: statek.Agent) -> None:
    job: Any = api.submit_new_job(agent)
    q = StatekPushQueue()
    q.push_messages([(job, {"n": i}) for i in range(300)])
    q.push_message(job, "one more")
    assert [type(entry) for entry in q.messages.chunks[0]] == [str, str]
    with OpCounter() as ops:
        first, ids, messages = q.peek_message_columns(500)
    assert ops.ops["container read: Fifo.chunks[].getslice"] == 1
    assert ops.ops["values read: Fifo.chunks[]"] == 2  # 301 messages, two stored values
    assert (first, ids) == (0, [job.uuid] * 301)
    assert messages == [{"n": i} for i in range(300)] + ["one more"]


def test_messages_json_would_change_arrive_unchanged(api: statek.StatekClientAPI,
                                                     agent: statek.Agent) -> None:
    """Tuples, dates, bytes, int dict keys, a memo reference: stored as they are, in order
    with the plain messages around them, and delivered as they were pushed."""
    job: Any = api.submit_new_job(agent)
    when = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)
    sent: list[Any] = ["plain", (1, "pair"), when, b"\x00\xff", {1: "int key"}, agent,
                       {"nested": [1.5, None]}, "last"]
    q = StatekPushQueue()
    q.push_messages([(job, message) for message in sent[:4]])
    for message in sent[4:]:
        q.push_message(job, message)
    assert process_push_notifications(100, 100, queue_prefixes=[q.prefix_name]) == len(sent)
    inbox = job.messages
    assert inbox[:4] == ["plain", (1, "pair"), when, b"\x00\xff"]
    assert dict(inbox[4]) == {1: "int key"}
    assert inbox[5] == agent and dict(inbox[6]) == {"nested": [1.5, None]}
    assert inbox[7] == "last"


def test_a_queue_stored_before_packing_packs_from_its_next_chunk(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job: Any = api.submit_new_job(agent)
    q = StatekPushQueue()
    del q.messages.packed_from  # as stored by earlier versions
    q.push_messages([(job, i) for i in range(CHUNK_SIZE - 2)])
    db0.commit()
    statek.StatekClientAPI().push_message(job, CHUNK_SIZE - 2)  # a producer: no upgrade
    assert not q.messages.packing()
    worker_state.current().known_prefixes.clear()  # as a worker starting
    check_queue_prefixes([q.prefix_name])  # the worker opens its queues: packing from chunk 1
    assert q.messages.packed_from == 1 and not q.messages.packs(0)
    q.push_messages([(job, i) for i in range(CHUNK_SIZE - 1, CHUNK_SIZE + 10)])
    q.push_message(job, "after")
    assert len(q.messages.chunks[0]) == 2 * CHUNK_SIZE  # still flat
    assert [type(entry) for entry in q.messages.chunks[1]] == [str, str]
    assert process_push_notifications(100, 2000, queue_prefixes=[q.prefix_name]) == \
        CHUNK_SIZE + 11
    assert job.messages == [*range(CHUNK_SIZE + 10), "after"]
    worker_state.current().known_prefixes.clear()
    check_queue_prefixes([q.prefix_name])
    assert q.messages.packed_from == 1  # set once


def _as_stored_before_ends(fifo: Fifo) -> None:
    """Give `fifo` the form earlier versions stored: head and tail as attributes."""
    head, tail = fifo.span()
    fifo.head, fifo.tail = head, tail
    del fifo.ends


def test_a_queue_stored_before_ends_works_and_moves_them_into_a_list(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    job: Any = api.submit_new_job(agent)
    q = StatekPushQueue()
    q.push_messages([(job, i) for i in range(CHUNK_SIZE - 3)])
    agent_fifo = Fifo(stride=1)
    q.events["AGENT"] = agent_fifo
    agent_fifo = q.events["AGENT"]
    agent_fifo.push("event 0")
    for fifo in (q.messages, agent_fifo):
        _as_stored_before_ends(fifo)
    db0.commit()
    assert q.messages.counters() is None and q.messages.span() == (0, CHUNK_SIZE - 3)
    # a producer, one push at a time across a chunk's end, and a consumer, before the upgrade
    for i in range(CHUNK_SIZE - 3, CHUNK_SIZE + 2):
        q.push_message(job, i)
    agent_fifo.push("event 1")
    assert q.message_count() == CHUNK_SIZE + 2 and len(agent_fifo) == 2
    q.ack_messages(2)
    assert q.messages.counters() is None and q.messages.span() == (2, CHUNK_SIZE + 2)
    assert int(q.messages.head) == 2 and int(q.messages.tail) == CHUNK_SIZE + 2
    db0.commit()
    worker_state.current().known_prefixes.clear()  # as a worker starting
    check_queue_prefixes([q.prefix_name])  # moves head and tail into `ends`
    assert list(q.messages.ends) == [2, CHUNK_SIZE + 2] and list(agent_fifo.ends) == [0, 2]
    assert not q.messages.store_ends_in_a_list()  # once
    q.push_message(job, "after")
    agent_fifo.push("event 2")
    assert int(q.messages.tail) == CHUNK_SIZE + 2  # the old attribute is no longer written
    assert q.messages.span() == (2, CHUNK_SIZE + 3)
    assert agent_fifo.peek(10) == (0, ["event 0", "event 1", "event 2"])
    assert process_push_notifications(100, 2000, queue_prefixes=[q.prefix_name]) == \
        CHUNK_SIZE + 1
    assert job.messages == [*range(2, CHUNK_SIZE + 2), "after"]
