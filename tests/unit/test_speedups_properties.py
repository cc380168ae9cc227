"""Differential property tests: pure twin, compiled twin and a naive model.

Hypothesis drives every available implementation with the same random
operation sequence and asserts, after every single operation, that return
values (or exception type and message) and the whole observable state agree,
both between the twins and with a deliberately simple reference model.
Without a built extension the pure twin is still checked against the model;
``test_compiled_is_part_of_the_comparison`` then skips (or fails under
STATEK_REQUIRE_EXTENSIONS=1) so the gap is visible.

Set STATEK_HYPOTHESIS_PROFILE=quick for slow (emulated) CI runners, or
=thorough for a long bug hunt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from statek import _speedups
from tests.support.speedups_fixture import compiled_or_skip

settings.register_profile(
    "default",
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("quick", max_examples=25, stateful_step_count=30, deadline=None)
settings.register_profile(
    "thorough",
    max_examples=2000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("STATEK_HYPOTHESIS_PROFILE", "default"))

IMPLS: list[ModuleType] = [_speedups.pure]
if _speedups.compiled is not None:
    IMPLS.append(_speedups.compiled)

JOBS = st.integers(0, 24)
LANES = st.integers(0, 4)
KEYS = st.integers(0, 11)
BIG = 2**62 - 1
# Values that are not valid ids, counts or times: the twins must reject them
# with the same exception type and message.
WEIRD = st.one_of(
    st.integers(-(2**70), -1),
    st.integers(2**62, 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=2),
    st.none(),
    st.booleans(),
    st.just(BIG),
)


def test_compiled_is_part_of_the_comparison() -> None:
    compiled_or_skip()
    assert len(IMPLS) == 2


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # compared, not swallowed
        return ("raised", (type(exc).__name__, str(exc)))


def agree(
    objs: list[Any], method: str, *args: Any, model: Any = None, lenient: bool = False
) -> Any:
    """Call `method` on every implementation (and the model); all must agree.

    With `lenient`, input may be invalid: the model (which does not validate)
    only replays calls the implementations accepted.
    """
    results = [outcome(getattr(o, method), *args) for o in objs]
    for r in results[1:]:
        assert r == results[0], (method, args, results)
    if model is not None and not (lenient and results[0][0] == "raised"):
        expected = outcome(getattr(model, method), *args)
        assert results[0] == expected, (method, args, results[0], expected)
    return results[0][1]


# --------------------------------------------------------------------------
# ReadyQueue
# --------------------------------------------------------------------------


class ReadyQueueModel:
    """Lists all the way down: obviously right, hopelessly slow."""

    def __init__(self) -> None:
        self.ring: list[int] = []
        self.q: dict[int, list[int]] = {}

    def _lane_of(self, job: int) -> int | None:
        return next((ln for ln, jobs in self.q.items() if job in jobs), None)

    def push(self, job: int, lane: int = 0) -> bool:
        if self._lane_of(job) is not None:
            return False
        if lane not in self.q:
            self.q[lane] = []
            self.ring.append(lane)
        self.q[lane].append(job)
        return True

    def push_many(self, jobs: list[int], lane: int = 0) -> int:
        return sum(self.push(j, lane) for j in jobs)

    def _take(self, lane: int, n: int) -> list[int]:
        out, self.q[lane] = self.q[lane][:n], self.q[lane][n:]
        if not self.q[lane]:
            del self.q[lane]
            self.ring.remove(lane)
        return out

    def pop_batch(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n and self.ring:
            lane = self.ring.pop(0)
            self.ring.append(lane)
            out += self._take(lane, 1)
        return out

    def pop_lane(self, lane: int, n: int) -> list[int]:
        return self._take(lane, n) if lane in self.q and n else []

    def discard(self, job: int) -> bool:
        lane = self._lane_of(job)
        if lane is None:
            return False
        self.q[lane].remove(job)
        if not self.q[lane]:
            del self.q[lane]
            self.ring.remove(lane)
        return True

    def __len__(self) -> int:
        return sum(map(len, self.q.values()))

    def __contains__(self, job: object) -> bool:
        return isinstance(job, int) and self._lane_of(job) is not None

    def lane_len(self, lane: int) -> int:
        return len(self.q.get(lane, []))

    def lanes(self) -> list[int]:
        return list(self.ring)


class ReadyQueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.objs = [m.ReadyQueue() for m in IMPLS]
        self.model = ReadyQueueModel()

    @rule(job=JOBS, lane=LANES)
    def push(self, job: int, lane: int) -> None:
        agree(self.objs, "push", job, lane, model=self.model)

    @rule(jobs=st.lists(JOBS, max_size=8), lane=LANES, as_tuple=st.booleans())
    def push_many(self, jobs: list[int], lane: int, as_tuple: bool) -> None:
        agree(self.objs, "push_many", tuple(jobs) if as_tuple else jobs, lane, model=self.model)

    @rule(n=st.integers(0, 12))
    def pop_batch(self, n: int) -> None:
        agree(self.objs, "pop_batch", n, model=self.model)

    @rule(lane=LANES, n=st.integers(0, 6))
    def pop_lane(self, lane: int, n: int) -> None:
        agree(self.objs, "pop_lane", lane, n, model=self.model)

    @rule(job=JOBS)
    def discard(self, job: int) -> None:
        agree(self.objs, "discard", job, model=self.model)

    @rule(job=st.integers(100, 102), lane=LANES, times=st.integers(60, 140))
    def churn(self, job: int, lane: int, times: int) -> None:
        """Push/discard one job many times: exercises lazy-deletion compaction."""
        for _ in range(times):
            agree(self.objs, "push", job, lane, model=self.model)
            agree(self.objs, "discard", job, model=self.model)

    @rule(
        method=st.sampled_from(["push", "push_many", "discard", "lane_len", "pop_batch"]),
        bad=WEIRD,
    )
    def bad_input(self, method: str, bad: object) -> None:
        args: tuple[Any, ...] = {
            "push": (bad,),
            "push_many": ([1, bad],),
            "discard": (bad,),
            "lane_len": (bad,),
            "pop_batch": (bad,),
        }[method]
        agree(self.objs, method, *args, model=self.model, lenient=True)
        agree(self.objs, "pop_lane", 0, bad, model=self.model, lenient=True)
        agree(self.objs, "push", 1, bad, model=self.model, lenient=True)
        agree(self.objs, "__contains__", bad, model=self.model)

    @invariant()
    def same_state(self) -> None:
        agree(self.objs, "__len__", model=self.model)
        agree(self.objs, "lanes", model=self.model)
        for lane in range(5):
            agree(self.objs, "lane_len", lane, model=self.model)
        for job in range(26):
            agree(self.objs, "__contains__", job, model=self.model)


TestReadyQueue = ReadyQueueMachine.TestCase


# --------------------------------------------------------------------------
# WaiterIndex
# --------------------------------------------------------------------------


class WaiterIndexModel:
    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []

    def add(self, key: int, job: int) -> None:
        if (key, job) not in self.pairs:
            self.pairs.append((key, job))

    def wake(self, key: int) -> list[int]:
        jobs = [j for k, j in self.pairs if k == key]
        self.pairs = [(k, j) for k, j in self.pairs if j not in jobs]
        return jobs

    def remove_job(self, job: int) -> bool:
        before = len(self.pairs)
        self.pairs = [(k, j) for k, j in self.pairs if j != job]
        return len(self.pairs) != before

    def keys_of(self, job: int) -> list[int]:
        return [k for k, j in self.pairs if j == job]

    def waiting(self, key: int) -> int:
        return sum(k == key for k, _ in self.pairs)

    def __len__(self) -> int:
        return len({j for _, j in self.pairs})

    def __contains__(self, job: object) -> bool:
        return any(j == job for _, j in self.pairs) and isinstance(job, int)


class WaiterIndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.objs = [m.WaiterIndex() for m in IMPLS]
        self.model = WaiterIndexModel()

    # Few jobs and keys so jobs often wait on many keys (past the compiled
    # twin's scan limit, where it switches to a pair index).
    @rule(key=KEYS, job=st.integers(0, 5))
    def add(self, key: int, job: int) -> None:
        agree(self.objs, "add", key, job, model=self.model)

    @rule(keys=st.lists(KEYS, min_size=5, max_size=12), job=st.integers(0, 5))
    def add_many_keys(self, keys: list[int], job: int) -> None:
        for key in keys:
            agree(self.objs, "add", key, job, model=self.model)

    @rule(key=KEYS)
    def wake(self, key: int) -> None:
        agree(self.objs, "wake", key, model=self.model)

    @rule(job=st.integers(0, 5))
    def remove_job(self, job: int) -> None:
        agree(self.objs, "remove_job", job, model=self.model)

    @rule(method=st.sampled_from(["wake", "remove_job", "keys_of", "waiting"]), bad=WEIRD)
    def bad_input(self, method: str, bad: object) -> None:
        agree(self.objs, "add", bad, 1, model=self.model, lenient=True)
        agree(self.objs, "add", 1, bad, model=self.model, lenient=True)
        agree(self.objs, method, bad, model=self.model, lenient=True)
        agree(self.objs, "__contains__", bad, model=self.model)

    @invariant()
    def same_state(self) -> None:
        agree(self.objs, "__len__", model=self.model)
        for key in range(12):
            agree(self.objs, "waiting", key, model=self.model)
        for job in range(6):
            agree(self.objs, "keys_of", job, model=self.model)
            agree(self.objs, "__contains__", job, model=self.model)


TestWaiterIndex = WaiterIndexMachine.TestCase


# --------------------------------------------------------------------------
# TimerHeap
# --------------------------------------------------------------------------


class TimerHeapModel:
    def __init__(self) -> None:
        self.timers: dict[int, tuple[float, int]] = {}
        self.seq = 0

    def schedule(self, job: int, deadline: float) -> None:
        self.timers[job] = (float(deadline), self.seq)
        self.seq += 1

    def cancel(self, job: int) -> bool:
        return self.timers.pop(job, None) is not None

    def pop_due(self, now: float, limit: int = -1) -> list[int]:
        now = float(now)  # the kernels compare in float, like the deadlines
        due = sorted((t, j) for j, t in self.timers.items() if t[0] <= now)
        jobs = [j for _, j in (due if limit < 0 else due[:limit])]
        for j in jobs:
            del self.timers[j]
        return jobs

    def next_deadline(self) -> float | None:
        return min((d for d, _ in self.timers.values()), default=None)

    def deadline_of(self, job: int) -> float | None:
        t = self.timers.get(job)
        return None if t is None else t[0]

    def __len__(self) -> int:
        return len(self.timers)


TIMES = st.one_of(
    st.sampled_from([0.0, 1.0, 1.5, 2.0, 3.0, float("inf"), float("-inf")]),
    st.integers(-3, 5),
    st.floats(-10, 10, allow_nan=False),
)


class TimerHeapMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.objs = [m.TimerHeap() for m in IMPLS]
        self.model = TimerHeapModel()

    @rule(job=JOBS, deadline=TIMES)
    def schedule(self, job: int, deadline: float) -> None:
        agree(self.objs, "schedule", job, deadline, model=self.model)

    @rule(job=JOBS)
    def cancel(self, job: int) -> None:
        agree(self.objs, "cancel", job, model=self.model)

    @rule(now=TIMES, limit=st.integers(-2, 6))
    def pop_due(self, now: float, limit: int) -> None:
        agree(self.objs, "pop_due", now, limit, model=self.model)

    @rule(job=JOBS, times=st.integers(50, 200), base=TIMES)
    def reschedule_storm(self, job: int, times: int, base: float) -> None:
        """Many reschedules of one job: exercises heap compaction."""
        for i in range(times):
            agree(self.objs, "schedule", job, base + i % 3, model=self.model)

    @rule(bad=WEIRD)
    def bad_input(self, bad: object) -> None:
        for method, args in [
            ("schedule", (bad, 1.0)),
            ("schedule", (1, bad)),
            ("cancel", (bad,)),
            ("deadline_of", (bad,)),
            ("pop_due", (bad,)),
            ("pop_due", (0.0, bad)),
        ]:
            agree(self.objs, method, *args, model=self.model, lenient=True)

    @invariant()
    def same_state(self) -> None:
        agree(self.objs, "__len__", model=self.model)
        agree(self.objs, "next_deadline", model=self.model)
        for job in range(25):
            agree(self.objs, "deadline_of", job, model=self.model)


TestTimerHeap = TimerHeapMachine.TestCase


# --------------------------------------------------------------------------
# partition_batch
# --------------------------------------------------------------------------


def partition_model(
    targets: list[int], seqs: list[int], applied: Mapping[int, int]
) -> tuple[list[int], list[list[int]], list[int]]:
    groups: dict[int, list[int]] = {}
    dups: list[int] = []
    for i, (t, s) in enumerate(zip(targets, seqs, strict=True)):
        if s <= applied.get(t, -1):
            dups.append(i)
        else:
            groups.setdefault(t, []).append(i)
    return list(groups), list(groups.values()), dups


class CountingMapping(Mapping[int, int]):
    def __init__(self, data: dict[int, int]) -> None:
        self.data = data
        self.calls: list[int] = []

    def __getitem__(self, key: int) -> int:
        return self.data[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: int, default: Any = None) -> Any:
        self.calls.append(key)
        return self.data.get(key, default)


ITEMS = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 8)), max_size=40)
APPLIED = st.dictionaries(st.integers(0, 12), st.integers(-3, 8), max_size=8)


@given(items=ITEMS, applied=APPLIED, as_tuple=st.booleans())
def test_partition_batch_agrees(
    items: list[tuple[int, int]], applied: dict[int, int], as_tuple: bool
) -> None:
    targets = [t for t, _ in items]
    seqs = [s for _, s in items]
    expected = partition_model(targets, seqs, applied)
    snapshot = dict(applied)
    for mod in IMPLS:
        args = (tuple(targets), tuple(seqs)) if as_tuple else (targets, seqs)
        assert mod.partition_batch(*args, applied) == expected
        counting = CountingMapping(applied)
        assert mod.partition_batch(targets, seqs, counting) == expected
        assert counting.calls == list(dict.fromkeys(targets))
    assert applied == snapshot


@given(
    targets=st.lists(st.one_of(st.integers(0, 5), WEIRD), max_size=6),
    seqs=st.lists(st.one_of(st.integers(0, 5), WEIRD), max_size=6),
    applied=st.dictionaries(
        st.integers(0, 5), st.one_of(st.integers(-(2**70), 2**70), WEIRD), max_size=4
    ),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_partition_batch_bad_input_agrees(
    targets: list[Any], seqs: list[Any], applied: dict[int, Any]
) -> None:
    results = [outcome(m.partition_batch, targets, seqs, applied) for m in IMPLS]
    assert all(r == results[0] for r in results), results
