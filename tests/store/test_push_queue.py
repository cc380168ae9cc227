from __future__ import annotations

from collections import deque
from pathlib import Path

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
    chunks = q.messages.chunks  # consumed chunks were dropped (their entries set to None)
    assert sum(chunks[number] is not None for number in chunks.keys()) <= 1  # noqa: SIM118


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


@db0.memo(singleton=True, id="tests/TwoFifos")
class _TwoFifos:
    """Keeps the fifos reachable, so closing the store does not drop them."""

    def __init__(self) -> None:
        self.fifos = [Fifo(stride=2, packed=True), Fifo()]


_VALUE = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.just((1, 2)), st.just(b"\x00"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("push"), st.integers(0, 600)),
                          st.tuples(st.just("many"), st.integers(0, 600)),
                          st.tuples(st.just("pop"), st.integers(0, 900)),
                          st.tuples(st.just("commit"), st.just(0)),
                          st.tuples(st.just("reopen"), st.just(0))), max_size=10),
       _VALUE)
def test_single_pushes_match_a_deque_across_chunks_and_reopens(
        ops: list[tuple[str, int]], odd: object) -> None:
    """Single pushes append through the tail chunk kept in Python between pushes (two fifos,
    so each keeps its own); mixed with `push_many`, drops of whole chunks, commits and a store
    closed and opened again, both fifos still read back exactly what went in. (Commits: in
    dbzero 0.7.0 a list item set through a reference held across a commit is lost, which
    a fifo keeping its [head, tail] list would hit.)"""
    import tempfile

    from statek import store, worker_state

    with tempfile.TemporaryDirectory() as root:
        def opened() -> None:
            db0.init(dbzero_root=root)
            statek.open_prefix("prop", "rw")

        opened()
        try:
            ids = [db0.uuid(fifo) for fifo in _TwoFifos().fifos]
            models: list[deque[object]] = [deque(), deque()]
            counter = 0
            for op, n in ops:
                if op == "commit":
                    db0.commit()
                    continue
                if op == "reopen":
                    db0.commit()
                    state = worker_state.current()
                    store.close()
                    assert len(state.fifo_tails) == 0  # no stale memo object held
                    opened()
                    continue
                for which, uuid in enumerate(ids):
                    fifo = db0.fetch(uuid)
                    model = models[which]
                    if op == "pop":
                        _head, got = fifo.peek(n)
                        assert list(got) == [model[i] for i in range(min(n, len(model)))]
                        fifo.advance(len(got))
                        for _ in got:
                            model.popleft()
                        continue
                    items: list[object] = [
                        (f"J{k}", odd if k % 7 == 0 else f"m{k}") if which == 0 else k
                        for k in range(counter, counter + n)]
                    if op == "push":
                        for item in items:
                            fifo.push(item)
                    else:
                        fifo.push_many(items)
                    model.extend(items)
                    assert len(fifo) == len(model)
                counter += n
            db0.commit()
            store.close()
            opened()
            for uuid, model in zip(ids, models, strict=True):
                assert list(db0.fetch(uuid).peek(len(model) + 1)[1]) == list(model)
        finally:
            store.close()


def test_a_fifo_past_the_held_limit_still_pushes(statek_store: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """More fifos than the process keeps tails for: the others read their tail each push."""
    from statek import worker_state
    from statek._held import HeldByObject

    state = worker_state.current()
    monkeypatch.setattr(state, "fifo_tails", HeldByObject(1))
    fifos = [Fifo(), Fifo(stride=2, packed=True)]
    for k in range(3 * CHUNK_SIZE // 2):
        fifos[0].push(k)
        fifos[1].push((f"J{k}", k))
    assert len(state.fifo_tails) == 1
    assert fifos[0].peek(10**6)[1] == list(range(3 * CHUNK_SIZE // 2))
    assert fifos[1].peek(10**6)[1] == [(f"J{k}", k) for k in range(3 * CHUNK_SIZE // 2)]


def _opened(root: Path) -> StatekPushQueue:
    """The queue of prefix "q" in the store at `root`, opened for writing."""
    db0.init(dbzero_root=str(root))
    statek.open_prefix("q", "rw")
    return StatekPushQueue()


def test_pushes_after_the_store_is_opened_again(tmp_path: Path) -> None:
    """The queue's message fifo kept between pushes is dropped when the store closes; the
    queue found again after the re-open takes pushes after the stored ones."""
    from statek import store, worker_state

    try:
        first = _opened(tmp_path)
        first.push_message("J1", "one")
        del first
        db0.commit()
        state = worker_state.current()
        assert len(state.queue_fifos) == 1
        store.close()
        assert len(state.queue_fifos) == 0
        again = _opened(tmp_path)
        again.push_message("J2", "two")
        assert again.peek_messages(10) == (0, [("J1", "one"), ("J2", "two")])
    finally:
        store.close()


@pytest.mark.parametrize(("before", "undone", "after"), [
    (0, 5, 10),  # the block started the first chunk
    (CHUNK_SIZE, 5, 10),  # ... a later one: the tail goes back to a chunk's first item
    (CHUNK_SIZE - 3, 8, 10),  # it crossed into a new chunk from the one before
    (CHUNK_SIZE + 3, 4, 10),  # it stayed in a chunk that was there before it
    (2 * CHUNK_SIZE - 1, CHUNK_SIZE + 2, CHUNK_SIZE),  # it started two
])
def test_pushes_after_a_reverted_atomic_block(before: int, undone: int, after: int) -> None:
    """A user's `db0.atomic()` block that pushed and then failed is undone by dbzero, even a
    chunk it started; the pushes after it land after the ones before it, not in a chunk
    object that no longer exists."""
    import tempfile

    from statek import store

    with tempfile.TemporaryDirectory() as root:
        db0.init(dbzero_root=root)
        statek.open_prefix("atomic", "rw")
        try:
            q = StatekPushQueue()
            for k in range(before):
                q.push_message("J1", f"m{k}")
            db0.commit()
            with pytest.raises(RuntimeError, match="undo"), db0.atomic():
                for k in range(undone):
                    q.push_message("J2", f"undone {k}")
                raise RuntimeError("undo")
            for k in range(before, before + after):
                q.push_message("J1", f"m{k}")
            db0.commit()
            assert q.peek_messages(10**6)[1] == [("J1", f"m{k}") for k in range(before + after)]
            del q
        finally:
            store.close()


def test_single_pushes_and_drains_between_commits_are_all_stored(tmp_path: Path) -> None:
    """The W4 shape that lost the head and tail when a push kept the fifo's [head, tail]
    list in Python: pushes one by one, a drain, more pushes, a commit after each, then the
    store opened again holds exactly what was left."""
    from statek import store

    try:
        queue = _opened(tmp_path)
        for k in range(CHUNK_SIZE + 10):
            queue.push_message("J1", k)
            if k % 100 == 99:
                db0.commit()
        db0.commit()
        queue.ack_messages(CHUNK_SIZE + 5)
        db0.commit()
        queue.push_messages([("J2", "batch")] * 3)
        db0.commit()
        queue.push_message("J3", "last")
        db0.commit()
        expected = [("J1", k) for k in range(CHUNK_SIZE + 5, CHUNK_SIZE + 10)] + \
            [("J2", "batch")] * 3 + [("J3", "last")]
        assert queue.peek_messages(100) == (CHUNK_SIZE + 5, expected)
        del queue
        store.close()
        queue = _opened(tmp_path)
        assert queue.messages.span() == (CHUNK_SIZE + 5, CHUNK_SIZE + 14)
        assert queue.peek_messages(100) == (CHUNK_SIZE + 5, expected)
    finally:
        store.close()


def test_a_damaged_chunk_is_set_aside_and_its_queue_flows_again(
        api: statek.StatekClientAPI, agent: statek.Agent,
        caplog: pytest.LogCaptureFixture) -> None:
    """The messages of a chunk holding an entry `pack` never writes go to the queue's dead
    letters as stored, with an error naming them; another prefix's queue is drained in the
    same call, and messages pushed after the damage are delivered by the next."""
    from statek.executors.utils import process_push_notifications

    job = api.submit_new_job(agent)
    damaged = StatekPushQueue()
    damaged.push_messages([(job, "a"), (job, "b")])
    statek.open_prefix("other", "rw")
    healthy = StatekPushQueue("other")
    healthy.push_message(job, "c")
    db0.commit()
    chunk = damaged.messages.chunks[0]
    run = chunk[0]
    chunk[0] = -1  # a negative count before the run: read on, the drain looped forever
    chunk.append(run)
    with caplog.at_level("ERROR", logger="statek.queues"):
        delivered = process_push_notifications(
            queue_prefixes=[damaged.prefix_name, "other"])
    assert delivered == 1 and job.messages == ["c"]
    assert len(damaged) == 0 and len(healthy) == 0
    assert (f"push queue of prefix {damaged.prefix_name!r}: messages 0..1 set aside in its "
            "dead letters, their chunk cannot be read: damaged packed fifo chunk: entry 0 "
            "(-1) is not a count of the 1 value(s)") in caplog.text
    letter = damaged.dead_letters[-1]
    assert letter["kind"] == "damaged" and letter["target"] == ""
    assert list(letter["item"]) == [-1, run]  # kept as found, for whoever repairs it
    assert "messages 0..1 of the queue could not be read" in letter["reason"]
    damaged.push_message(job, "d")  # a fresh chunk: not appended after the damage
    assert damaged.messages.span()[0] == CHUNK_SIZE
    assert process_push_notifications(queue_prefixes=[damaged.prefix_name]) == 1
    assert job.messages == ["c", "d"]


def test_a_damaged_chunk_after_a_sound_one_waits_for_the_sound_ones_delivery(
        api: statek.StatekClientAPI, agent: statek.Agent) -> None:
    """A read spanning a sound chunk and a damaged one delivers the sound one's messages
    first; the next call sets the damaged one aside."""
    from statek.executors.utils import process_push_notifications

    job = api.submit_new_job(agent)
    queue = StatekPushQueue()
    queue.push_messages([(job, i) for i in range(CHUNK_SIZE + 3)])
    db0.commit()
    queue.messages.chunks[1][0] = -1
    prefix = queue.prefix_name
    assert process_push_notifications(queue_prefixes=[prefix], max_count=10_000) == CHUNK_SIZE
    assert len(job.messages) == CHUNK_SIZE and len(queue) == 3
    assert process_push_notifications(queue_prefixes=[prefix]) == 0
    assert len(queue) == 0 and queue.dead_letters[-1]["kind"] == "damaged"
    assert "messages 512..514" in queue.dead_letters[-1]["reason"]



DRAIN_WHILE_PUSHING = """
import random, sys, dbzero as db0, statek
import statek.models.fifo as fifo_module
fifo_module.CHUNK_SIZE = 1  # one chunk per item: hundreds of live chunks in a few seconds
db0.init(dbzero_root=sys.argv[1]); statek.init(); statek.open_prefix("main", "rw")
fifo = fifo_module.Fifo()
rnd, head, expected = random.Random(1), 0, []
for i in range(30_000):
    fifo.push(i)
    expected.append(i)
    while len(expected) - head > rnd.randint(1, 300):  # a backlog of up to 300 chunks
        seq, items = fifo.peek(1)
        assert items == [expected[head]], (seq, items, head)
        fifo.advance(1)
        head += 1
    if i % 50 == 0:
        db0.commit()
db0.commit()
print("ok", fifo.span())
statek.close()
"""


def test_draining_while_pushing_with_hundreds_of_chunks_left(tmp_path: Path) -> None:
    """dbzero 0.7.0 corrupts its heap when keys are deleted from a `db0.dict` that keeps a
    few hundred keys while new ones come in: the fifo dropped each consumed chunk with
    `del chunks[n]`, and a backlog of ~300 chunks (150k queued messages) drained while
    messages were pushed aborted the worker ("malloc(): corrupted top size"). A consumed
    chunk's entry is set to None instead. Run in its own process: the abort is the
    failure."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DRAIN_WHILE_PUSHING, str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.startswith("ok")
