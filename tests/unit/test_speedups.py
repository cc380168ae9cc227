"""Unit tests for the scheduler kernels, run against both twins via ``sched_impl``."""

# The imported fixture is shadowed by test parameters of the same name, by design.
# ruff: noqa: F811

from __future__ import annotations

import copy
import inspect
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from statek import _speedups
from tests.support.speedups_fixture import sched_impl  # noqa: F401

MAX_ID = 2**62 - 1
BAD_IDS: list[tuple[object, type[Exception]]] = [
    (-1, ValueError),
    (2**62, ValueError),
    (2**80, ValueError),
    (-(2**80), ValueError),
    (1.0, TypeError),
    ("1", TypeError),
    (None, TypeError),
]


class Idx:
    """An int-like that is not an int: accepted through ``__index__``."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


# --------------------------------------------------------------------------
# ReadyQueue
# --------------------------------------------------------------------------


def test_ready_queue_empty(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    assert len(q) == 0
    assert not q
    assert q.lanes() == []
    assert q.pop_batch(10) == []
    assert q.pop_lane(0, 10) == []
    assert q.lane_len(0) == 0
    assert 0 not in q
    assert q.discard(0) is False
    assert repr(q) == "<ReadyQueue jobs=0 lanes=0>"


def test_push_rejects_duplicates_in_any_lane(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    assert q.push(1) is True
    assert q.push(1) is False
    assert q.push(1, lane=7) is False
    assert q.lanes() == [0]
    assert len(q) == 1
    assert 1 in q
    assert q.lane_len(0) == 1
    assert q.lane_len(7) == 0


def test_pop_lane_is_fifo_and_keeps_cursor(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many([10, 11, 12, 13], lane=1)
    q.push_many([20, 21], lane=2)
    assert q.pop_lane(2, 1) == [20]
    assert q.pop_lane(1, 2) == [10, 11]
    # lane 1 was activated first and is still the head of the ring
    assert q.pop_batch(3) == [12, 21, 13]
    assert len(q) == 0
    assert q.lanes() == []


def test_pop_batch_round_robin_in_activation_order(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many([1, 2, 3], lane=5)
    q.push_many([4, 5], lane=3)
    q.push(6, lane=9)
    assert q.lanes() == [5, 3, 9]
    assert q.pop_batch(4) == [1, 4, 6, 2]
    # lane 9 emptied and left the ring; lane 3 is next
    assert q.lanes() == [3, 5]
    assert q.pop_batch(10) == [5, 3]


def test_round_robin_position_persists_across_calls(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many(range(100, 110), lane=0)
    q.push_many(range(200, 210), lane=1)
    q.push_many(range(300, 310), lane=2)
    got = [q.pop_batch(1)[0] for _ in range(6)]
    assert got == [100, 200, 300, 101, 201, 301]
    assert q.pop_batch(2) == [102, 202]
    assert q.lanes() == [2, 0, 1]


def test_big_lane_cannot_starve_small_lane(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    assert q.push_many(range(10_000), lane=1) == 10_000
    q.push(99_999, lane=2)
    first = q.pop_batch(1)
    second = q.pop_batch(1)
    assert first == [0]
    assert second == [99_999]
    assert q.lanes() == [1]


def test_new_lane_joins_behind_the_cursor(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many([1, 2], lane=0)
    q.push_many([3, 4], lane=1)
    assert q.pop_batch(1) == [1]  # cursor now at lane 1
    q.push(5, lane=2)  # joins at the back: after lane 0
    assert q.lanes() == [1, 0, 2]
    assert q.pop_batch(10) == [3, 2, 5, 4]


def test_discard(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many([1, 2, 3], lane=0)
    q.push(4, lane=1)
    assert q.discard(2) is True
    assert q.discard(2) is False
    assert 2 not in q
    assert len(q) == 3
    assert q.lane_len(0) == 2
    assert q.discard(4) is True  # lane 1 empties and leaves the ring
    assert q.lanes() == [0]
    assert q.pop_batch(10) == [1, 3]


def test_discard_then_repush_goes_to_the_back(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many([1, 2, 3], lane=0)
    q.discard(1)
    assert q.push(1, lane=0) is True
    assert q.pop_lane(0, 10) == [2, 3, 1]


def test_discard_then_repush_elsewhere(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many([1, 2], lane=0)
    q.discard(1)
    q.push(1, lane=1)
    assert q.lane_len(0) == 1
    assert q.lane_len(1) == 1
    assert q.pop_batch(10) == [2, 1]


def test_emptied_lane_rejoins_at_the_back(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push(1, lane=0)
    q.push(2, lane=1)
    q.push(3, lane=2)
    q.discard(1)
    q.push(4, lane=0)
    assert q.lanes() == [1, 2, 0]


def test_many_discards_keep_order(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many(range(1000), lane=0)
    for job in range(0, 1000, 3):
        assert q.discard(job)
    for _ in range(5):  # churn one job to pile up lazily deleted entries
        for _ in range(100):
            q.push(5000, lane=0)
            q.discard(5000)
    expected = [j for j in range(1000) if j % 3]
    assert len(q) == len(expected)
    assert q.lane_len(0) == len(expected)
    assert q.pop_lane(0, 10**9) == expected
    assert q.lanes() == []


def test_push_many_counts_and_dedups(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    assert q.push_many([1, 2, 2, 3, 1]) == 3
    assert q.push_many((3, 4)) == 1
    assert q.push_many(iter([5, 6])) == 2
    assert q.push_many(range(7, 9), lane=2) == 2
    assert q.push_many([]) == 0
    assert q.lanes() == [0, 2]
    assert q.pop_lane(0, 100) == [1, 2, 3, 4, 5, 6]


def test_push_many_is_all_or_nothing(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    with pytest.raises(ValueError, match=r"job_ids\[2\] must be in range"):
        q.push_many([1, 2, -3, 4])
    with pytest.raises(TypeError):
        q.push_many([1, 2, "x"])
    with pytest.raises(TypeError):
        q.push_many(5)
    assert len(q) == 0
    assert q.lanes() == []


def test_pop_sizes(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push_many(range(5))
    assert q.pop_batch(0) == []
    assert q.pop_lane(0, 0) == []
    assert q.pop_batch(2**70) == [0, 1, 2, 3, 4]
    q.push_many(range(3))
    assert q.pop_lane(0, 2**70) == [0, 1, 2]


@pytest.mark.parametrize(("bad", "exc"), BAD_IDS)
def test_ready_queue_bad_ids(sched_impl: ModuleType, bad: object, exc: type[Exception]) -> None:
    q = sched_impl.ReadyQueue()
    with pytest.raises(exc):
        q.push(bad)
    with pytest.raises(exc):
        q.push(1, lane=bad)
    with pytest.raises(exc):
        q.discard(bad)
    with pytest.raises(exc):
        q.lane_len(bad)
    with pytest.raises(exc):
        q.pop_lane(bad, 1)
    assert (bad in q) is False
    assert len(q) == 0


@pytest.mark.parametrize("bad", [-1, -(2**70)])
def test_negative_counts(sched_impl: ModuleType, bad: int) -> None:
    q = sched_impl.ReadyQueue()
    with pytest.raises(ValueError, match="n must be >= 0"):
        q.pop_batch(bad)
    with pytest.raises(ValueError, match="n must be >= 0"):
        q.pop_lane(0, bad)
    with pytest.raises(TypeError):
        q.pop_batch(1.5)


def test_index_protocol_and_bool_are_ints(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    assert q.push(Idx(5), lane=Idx(2)) is True
    assert q.push(True) is True  # bool is an int: job 1
    assert Idx(5) in q
    assert 1 in q
    assert q.pop_batch(Idx(10)) == [5, 1]


def test_extreme_ids(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push(MAX_ID, lane=MAX_ID)
    q.push(0, lane=0)
    assert MAX_ID in q
    assert q.lanes() == [MAX_ID, 0]
    assert q.pop_batch(2) == [MAX_ID, 0]


def test_contains_never_raises(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    q.push(1)
    for probe in (1.0, "1", None, -1, 2**62, 2**100, (1,), object()):
        assert (probe in q) is False


def test_ready_queue_large_volume(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    lanes = 37
    for lane in range(lanes):
        q.push_many(range(lane, 50_000, lanes), lane)
    assert len(q) == 50_000
    out: list[int] = []
    while q:
        out += q.pop_batch(999)
    assert sorted(out) == list(range(50_000))
    # Round-robin from lane 0 means the first `lanes` jobs come out in order.
    assert out[:lanes] == list(range(lanes))
    # And it stays reusable after draining.
    q.push(3)
    assert q.pop_batch(5) == [3]


# --------------------------------------------------------------------------
# WaiterIndex
# --------------------------------------------------------------------------


def test_waiter_index_empty(sched_impl: ModuleType) -> None:
    w = sched_impl.WaiterIndex()
    assert len(w) == 0
    assert w.wake(1) == []
    assert w.remove_job(1) is False
    assert w.keys_of(1) == []
    assert w.waiting(1) == 0
    assert 1 not in w
    assert repr(w) == "<WaiterIndex jobs=0 keys=0>"


def test_add_keys_and_counts(sched_impl: ModuleType) -> None:
    w = sched_impl.WaiterIndex()
    w.add(10, 1)
    w.add(20, 1)
    w.add(10, 2)
    w.add(10, 1)  # duplicate pair: no-op
    assert len(w) == 2
    assert w.keys_of(1) == [10, 20]
    assert w.keys_of(2) == [10]
    assert w.waiting(10) == 2
    assert w.waiting(20) == 1
    assert 1 in w
    assert 3 not in w


def test_wake_in_add_order_and_only_once(sched_impl: ModuleType) -> None:
    w = sched_impl.WaiterIndex()
    for job in (5, 3, 9):
        w.add(1, job)
    w.add(2, 3)
    w.add(2, 7)
    assert w.wake(1) == [5, 3, 9]
    assert w.waiting(2) == 1  # job 3 left key 2 as well
    assert w.keys_of(3) == []
    assert w.wake(2) == [7]
    assert w.wake(1) == []
    assert len(w) == 0


def test_remove_job(sched_impl: ModuleType) -> None:
    w = sched_impl.WaiterIndex()
    w.add(1, 100)
    w.add(2, 100)
    w.add(1, 101)
    assert w.remove_job(100) is True
    assert w.remove_job(100) is False
    assert w.waiting(1) == 1
    assert w.waiting(2) == 0
    assert w.wake(1) == [101]


def test_job_on_many_keys(sched_impl: ModuleType) -> None:
    """Past a few keys the compiled twin switches to a pair index; same results."""
    w = sched_impl.WaiterIndex()
    keys = list(range(1000, 1050))
    for k in keys:
        w.add(k, 7)
        w.add(k, 8)
    for k in keys:
        w.add(k, 7)  # all duplicates
    assert w.keys_of(7) == keys
    assert w.waiting(1000) == 2
    assert w.wake(1025) == [7, 8]
    assert len(w) == 0
    assert all(w.waiting(k) == 0 for k in keys)
    for k in reversed(keys):
        w.add(k, 7)
    assert w.keys_of(7) == keys[::-1]
    assert w.remove_job(7) is True
    assert w.wake(1000) == []


def test_key_with_many_jobs(sched_impl: ModuleType) -> None:
    w = sched_impl.WaiterIndex()
    for job in range(5000):
        w.add(1, job)
        w.add(2 + job % 3, job)
    for job in range(0, 5000, 2):
        w.remove_job(job)
    assert w.waiting(1) == 2500
    assert w.wake(2) == [j for j in range(5000) if j % 2 and j % 3 == 0]
    assert w.wake(1) == [j for j in range(5000) if j % 2 and j % 3]
    assert len(w) == 0


def test_readd_after_wake(sched_impl: ModuleType) -> None:
    w = sched_impl.WaiterIndex()
    w.add(1, 1)
    w.add(1, 2)
    assert w.wake(1) == [1, 2]
    w.add(1, 2)
    w.add(1, 1)
    assert w.wake(1) == [2, 1]


@pytest.mark.parametrize(("bad", "exc"), BAD_IDS)
def test_waiter_index_bad_ids(sched_impl: ModuleType, bad: object, exc: type[Exception]) -> None:
    w = sched_impl.WaiterIndex()
    with pytest.raises(exc):
        w.add(bad, 1)
    with pytest.raises(exc):
        w.add(1, bad)
    for method in (w.wake, w.remove_job, w.keys_of, w.waiting):
        with pytest.raises(exc):
            method(bad)
    assert (bad in w) is False
    assert len(w) == 0
    assert w.waiting(1) == 0


# --------------------------------------------------------------------------
# TimerHeap
# --------------------------------------------------------------------------


def test_timer_heap_empty(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    assert len(th) == 0
    assert th.next_deadline() is None
    assert th.pop_due(1e300) == []
    assert th.cancel(1) is False
    assert th.deadline_of(1) is None
    assert repr(th) == "<TimerHeap timers=0>"


def test_pop_due_order_and_ties(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    th.schedule(1, 5.0)
    th.schedule(2, 3.0)
    th.schedule(3, 3.0)
    th.schedule(4, 1.0)
    th.schedule(5, 9.0)
    assert th.next_deadline() == 1.0
    assert th.pop_due(3.0) == [4, 2, 3]  # deadline <= now, ties in scheduling order
    assert th.pop_due(4.9) == []
    assert th.pop_due(100.0) == [1, 5]
    assert len(th) == 0


def test_reschedule_replaces_and_requeues_tie(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    th.schedule(1, 2.0)
    th.schedule(2, 2.0)
    th.schedule(1, 2.0)  # same deadline, but now scheduled after job 2
    assert len(th) == 2
    assert th.pop_due(2.0) == [2, 1]
    th.schedule(3, 10.0)
    th.schedule(3, 1.0)
    assert th.deadline_of(3) == 1.0
    assert th.next_deadline() == 1.0
    assert th.pop_due(5.0) == [3]


def test_cancel_and_next_deadline(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    th.schedule(1, 1.0)
    th.schedule(2, 2.0)
    assert th.cancel(1) is True
    assert th.cancel(1) is False
    assert th.next_deadline() == 2.0
    assert th.deadline_of(1) is None
    assert th.pop_due(10.0) == [2]
    assert th.next_deadline() is None


def test_pop_due_limit(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    for job in range(10):
        th.schedule(job, float(job))
    assert th.pop_due(100.0, 0) == []
    assert th.pop_due(100.0, 3) == [0, 1, 2]
    assert th.pop_due(100.0, limit=2**70) == list(range(3, 10))
    for job in range(5):
        th.schedule(job, 0.5)
    assert th.pop_due(1.0, -(2**70)) == list(range(5))


def test_deadline_values(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    th.schedule(1, 3)  # ints are accepted and stored as floats
    th.schedule(2, True)
    th.schedule(3, math.inf)
    th.schedule(4, -math.inf)
    th.schedule(5, 2**1000)
    d1 = th.deadline_of(1)
    assert d1 == 3.0
    assert type(d1) is float
    assert th.deadline_of(2) == 1.0
    assert th.next_deadline() == -math.inf
    assert th.pop_due(-math.inf) == [4]
    assert th.pop_due(1e300) == [2, 1]
    assert th.pop_due(math.inf) == [5, 3]


@pytest.mark.parametrize(
    ("bad", "exc"),
    [(math.nan, ValueError), ("1.0", TypeError), (None, TypeError), (2**1100, ValueError)],
)
def test_bad_deadlines(sched_impl: ModuleType, bad: object, exc: type[Exception]) -> None:
    th = sched_impl.TimerHeap()
    with pytest.raises(exc):
        th.schedule(1, bad)
    with pytest.raises(exc):
        th.pop_due(bad)
    assert len(th) == 0
    with pytest.raises(TypeError):
        th.pop_due(1.0, 1.5)


@pytest.mark.parametrize(("bad", "exc"), BAD_IDS)
def test_timer_heap_bad_ids(sched_impl: ModuleType, bad: object, exc: type[Exception]) -> None:
    th = sched_impl.TimerHeap()
    with pytest.raises(exc):
        th.schedule(bad, 1.0)
    with pytest.raises(exc):
        th.cancel(bad)
    with pytest.raises(exc):
        th.deadline_of(bad)


def test_heavy_rescheduling_keeps_one_timer(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    for i in range(5000):
        th.schedule(i % 7, 1000.0 - i)
    assert len(th) == 7
    assert th.next_deadline() == 1000.0 - 4999
    assert th.pop_due(1e9) == [(4999 - k) % 7 for k in range(7)]


def test_timer_heap_large_volume(sched_impl: ModuleType) -> None:
    th = sched_impl.TimerHeap()
    n = 20_000
    for job in range(n):
        th.schedule(job, float((job * 7919) % 1000))
    for job in range(0, n, 4):
        th.cancel(job)
    out = th.pop_due(1e9)
    expected = sorted((j for j in range(n) if j % 4), key=lambda j: ((j * 7919) % 1000, j))
    assert out == expected


# --------------------------------------------------------------------------
# partition_batch
# --------------------------------------------------------------------------


def test_partition_basic(sched_impl: ModuleType) -> None:
    targets = [5, 6, 5, 7, 6, 5]
    seqs = [1, 1, 2, 0, 0, 3]
    applied = {5: 1, 7: 0}
    snapshot = dict(applied)
    order, groups, dups = sched_impl.partition_batch(targets, seqs, applied)
    assert order == [6, 5]  # 5's first item is a duplicate; 7 has only duplicates
    assert groups == [[1, 4], [2, 5]]
    assert dups == [0, 3]
    assert applied == snapshot


def test_partition_empty_and_inputs(sched_impl: ModuleType) -> None:
    assert sched_impl.partition_batch([], [], {}) == ([], [], [])
    assert sched_impl.partition_batch((1, 2, 1), (0, 0, 1), {}) == ([1, 2], [[0, 2], [1]], [])
    assert sched_impl.partition_batch(iter([3]), range(1), {3: -5}) == ([3], [[0]], [])
    assert sched_impl.partition_batch([3], [0], {3: 2**70}) == ([], [], [0])


def test_partition_equal_seq_is_duplicate(sched_impl: ModuleType) -> None:
    assert sched_impl.partition_batch([1, 1], [4, 5], {1: 4}) == ([1], [[1]], [0])


def test_partition_calls_get_once_per_target(sched_impl: ModuleType) -> None:
    class Recording(Mapping[int, int]):
        def __init__(self) -> None:
            self.calls: list[tuple[int, int]] = []

        def __getitem__(self, key: int) -> int:
            raise KeyError(key)

        def __iter__(self) -> Iterator[int]:
            return iter(())

        def __len__(self) -> int:
            return 0

        def get(self, key: int, default: Any = None) -> Any:
            self.calls.append((key, default))
            return {9: 1}.get(key, default)

    m = Recording()
    result = sched_impl.partition_batch([9, 8, 9, 8, 7], [1, 1, 2, 2, 0], m)
    assert result == ([8, 9, 7], [[1, 3], [2], [4]], [0])
    assert m.calls == [(9, -1), (8, -1), (7, -1)]


def test_partition_large(sched_impl: ModuleType) -> None:
    targets = [(i * 37) % 101 for i in range(5000)]
    seqs = list(range(5000))
    applied = {t: 2500 for t in range(0, 101, 2)}
    order, groups, dups = sched_impl.partition_batch(targets, seqs, applied)
    assert sorted([*dups, *(i for g in groups for i in g)]) == list(range(5000))
    for t, g in zip(order, groups, strict=True):
        assert g == sorted(g)
        assert all(targets[i] == t and seqs[i] > applied.get(t, -1) for i in g)
    assert all(seqs[i] <= applied.get(targets[i], -1) for i in dups)


def test_partition_bad_input(sched_impl: ModuleType) -> None:
    pb = sched_impl.partition_batch
    with pytest.raises(ValueError, match="same length"):
        pb([1, 2], [1], {})
    with pytest.raises(ValueError, match=r"targets\[1\] must be in range"):
        pb([1, -2], [1, 1], {})
    with pytest.raises(ValueError, match=r"seqs\[0\] must be in range"):
        pb([1], [2**62], {})
    with pytest.raises(TypeError):
        pb([1.5], [1], {})
    with pytest.raises(TypeError):
        pb([1], [1], {1: "3"})
    with pytest.raises(TypeError):
        pb(1, [1], {})
    with pytest.raises(AttributeError):
        pb([1], [1], None)


# --------------------------------------------------------------------------
# both twins alike
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["ReadyQueue", "WaiterIndex", "TimerHeap"])
def test_not_picklable(sched_impl: ModuleType, cls: str) -> None:
    obj = getattr(sched_impl, cls)()
    with pytest.raises(TypeError, match="cannot pickle"):
        pickle.dumps(obj)
    with pytest.raises(TypeError, match="cannot pickle"):
        copy.copy(obj)


def test_same_public_signatures(sched_impl: ModuleType) -> None:
    pure = _speedups.pure
    for cls in ("ReadyQueue", "WaiterIndex", "TimerHeap"):
        ours, ref = getattr(sched_impl, cls), getattr(pure, cls)
        names = {n for n in vars(ref) if not n.startswith("_")}
        assert names <= set(dir(ours)), cls
        for name in names:
            ref_params = list(inspect.signature(getattr(ref, name)).parameters)
            assert list(inspect.signature(getattr(ours, name)).parameters) == ref_params
    assert list(inspect.signature(sched_impl.partition_batch).parameters) == [
        "targets",
        "seqs",
        "applied",
    ]


def test_keyword_arguments(sched_impl: ModuleType) -> None:
    q = sched_impl.ReadyQueue()
    assert q.push(job_id=1, lane=2) is True
    assert q.push_many(job_ids=[2], lane=2) == 1
    assert q.pop_lane(lane=2, n=1) == [1]
    th = sched_impl.TimerHeap()
    th.schedule(job_id=1, deadline=1.0)
    assert th.pop_due(now=2.0, limit=5) == [1]
    w = sched_impl.WaiterIndex()
    w.add(key=1, job_id=2)
    assert w.wake(key=1) == [2]
    assert sched_impl.partition_batch(targets=[1], seqs=[1], applied={}) == ([1], [[0]], [])


# --------------------------------------------------------------------------
# the selector (not per-implementation: it picks one)
# --------------------------------------------------------------------------


def test_selector_exports() -> None:
    assert _speedups.pure.__name__ == "statek._speedups._sched_py"
    assert _speedups.IMPLEMENTATION in ("compiled", "pure")
    assert _speedups.speedups_enabled() is (_speedups.compiled is not None)
    assert set(_speedups.KEPT_KERNELS) <= set(_speedups.KERNELS)
    assert _speedups.pure_storage.__name__ == "statek._speedups._storage_py"
    assert (_speedups.compiled is None) is (_speedups.compiled_storage is None)
    for name in _speedups.KERNELS:
        impl = _speedups.IMPLEMENTATIONS[name]
        pure, compiled = _speedups.twins_of(name)
        source = compiled if impl == "compiled" else pure
        assert getattr(_speedups, name) is getattr(source, name)
    with pytest.raises(KeyError, match="no kernel named 'Nope'"):
        _speedups.twins_of("Nope")


def _selector_in_subprocess(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "STATEK_NO_EXTENSIONS"}
    if env_value is not None:
        env["STATEK_NO_EXTENSIONS"] = env_value
    root = str(Path(_speedups.__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = (
        "import statek._speedups as s; "
        "print(s.IMPLEMENTATION, s.compiled is None, s.ReadyQueue.__module__)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize("value", ["1", "yes"])
def test_no_extensions_switch_forces_pure(value: str) -> None:
    assert _selector_in_subprocess(value) == "pure True statek._speedups._sched_py"


@pytest.mark.parametrize("value", [None, "", "0"])
def test_switch_off_uses_compiled_when_built(value: str | None) -> None:
    if _speedups.compiled is None:
        pytest.skip(f"compiled kernels unavailable: {_speedups.COMPILED_UNAVAILABLE_REASON}")
    out = _selector_in_subprocess(value)
    assert out.startswith("compiled False ")
