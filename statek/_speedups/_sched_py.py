"""Pure-Python scheduler kernels: the reference twin of ``_sched_c``.

This module is what runs when the compiled extension is missing or disabled
(``STATEK_NO_EXTENSIONS``), and it is the executable specification the
compiled module is tested against: every observable behaviour (orders, return
values, exception types and messages) must match ``_sched_c`` exactly.

Ids, lanes and keys are ints in ``range(0, 2**62)`` so that both twins can
store them in a C ``long long`` with room for sentinels.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from heapq import heapify, heappop, heappush
from itertools import islice
from operator import index as _index
from typing import NoReturn, SupportsIndex, cast

__all__ = ["ReadyQueue", "TimerHeap", "WaiterIndex", "partition_batch"]

ID_LIMIT = 1 << 62
"""Exclusive upper bound for job ids, lanes, keys and sequence numbers."""

# Lazy-deletion garbage is compacted once it outnumbers live entries by this
# much; the exact threshold is not observable, it only bounds memory.
_COMPACT_SLACK = 64


def _as_id(value: object, what: str) -> int:
    """Slow path of id validation; shared error texts keep the twins identical."""
    v = value if type(value) is int else _index(cast(SupportsIndex, value))  # may TypeError
    if not 0 <= v < ID_LIMIT:
        raise ValueError(f"{what} must be in range(0, 2**62), got {v}")
    return v


def _as_count(value: object, what: str) -> int:
    v = value if type(value) is int else _index(cast(SupportsIndex, value))
    if v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    return v


def _as_time(value: object, what: str) -> float:
    """Accept int/float (not str/Decimal) and reject NaN, which breaks ordering."""
    if type(value) is float:
        v = value
    elif isinstance(value, (int, float)):
        try:
            v = float(value)
        except OverflowError:
            raise ValueError(f"{what} is too large to convert to float") from None
    else:
        raise TypeError(f"{what} must be a real number (int or float), not {type(value).__name__}")
    if v != v:
        raise ValueError(f"{what} must not be NaN")
    return v


def _as_ids(values: Iterable[object], what: str) -> list[int]:
    """Validate a whole batch up front so a bad item leaves the structure untouched."""
    items = values if type(values) is list or type(values) is tuple else list(values)
    out: list[int] = []
    append = out.append
    for i, v in enumerate(items):
        if type(v) is not int or not 0 <= v < ID_LIMIT:
            v = _as_id(v, f"{what}[{i}]")
        append(v)
    return out


def _lookup_id(value: object) -> int | None:
    """``__contains__`` helper: anything that is not a valid id is simply absent."""
    if type(value) is not int:
        try:
            value = _index(cast(SupportsIndex, value))
        except TypeError:
            return None
    return value


def _no_pickle(obj: object) -> TypeError:
    return TypeError(
        f"cannot pickle {type(obj).__name__!r} object: "
        "scheduler state is rebuilt from durable storage, not serialized"
    )


class _Lane:
    """One lane's FIFO; ``stale`` counts discarded entries still in ``dq``."""

    __slots__ = ("dq", "nstale", "stale")

    def __init__(self) -> None:
        self.dq: deque[int] = deque()
        self.stale: dict[int, int] = {}
        self.nstale = 0

    def live(self) -> int:
        return len(self.dq) - self.nstale

    def pop_live(self) -> int:
        """Pop the first live job (caller guarantees one exists).

        Within a lane all entries of a job except possibly the last are stale,
        so consuming stale counts front-to-back is exact.
        """
        dq = self.dq
        while True:
            job = dq.popleft()
            if self.nstale:
                c = self.stale.get(job)
                if c:
                    if c == 1:
                        del self.stale[job]
                    else:
                        self.stale[job] = c - 1
                    self.nstale -= 1
                    continue
            return job

    def compact(self) -> None:
        stale = self.stale
        keep: deque[int] = deque()
        for job in self.dq:
            c = stale.get(job)
            if c:
                if c == 1:
                    del stale[job]
                else:
                    stale[job] = c - 1
            else:
                keep.append(job)
        self.dq = keep
        self.stale = {}
        self.nstale = 0


class ReadyQueue:
    """Ready set: FIFO per lane, round-robin across lanes, no duplicate jobs.

    Lanes form a ring in the order they became non-empty; ``pop_batch`` serves
    the ring head and moves it to the back, so the fairness position survives
    across calls. A lane leaves the ring as soon as it has no live jobs.
    """

    __slots__ = ("_lanes", "_ring", "_where")

    def __init__(self) -> None:
        self._where: dict[int, int] = {}
        self._lanes: dict[int, _Lane] = {}
        self._ring: OrderedDict[int, None] = OrderedDict()

    def push(self, job_id: int, lane: int = 0) -> bool:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        if type(lane) is not int or not 0 <= lane < ID_LIMIT:
            lane = _as_id(lane, "lane")
        where = self._where
        if job_id in where:
            return False
        where[job_id] = lane
        ln = self._lanes.get(lane)
        if ln is None:
            self._lanes[lane] = ln = _Lane()
            self._ring[lane] = None
        ln.dq.append(job_id)
        return True

    def push_many(self, job_ids: Sequence[int], lane: int = 0) -> int:
        if type(lane) is not int or not 0 <= lane < ID_LIMIT:
            lane = _as_id(lane, "lane")
        ids = _as_ids(job_ids, "job_ids")
        where = self._where
        ln = self._lanes.get(lane)
        added = 0
        for job in ids:
            if job in where:
                continue
            where[job] = lane
            if ln is None:
                self._lanes[lane] = ln = _Lane()
                self._ring[lane] = None
            ln.dq.append(job)
            added += 1
        return added

    def _drop(self, lane: int) -> None:
        del self._lanes[lane]
        del self._ring[lane]

    def pop_batch(self, n: int) -> list[int]:
        if type(n) is not int or n < 0:
            n = _as_count(n, "n")
        out: list[int] = []
        ring = self._ring
        lanes = self._lanes
        where = self._where
        while len(out) < n and ring:
            if len(ring) == 1:  # a single lane: plain FIFO, no rotation needed
                out += self.pop_lane(next(iter(ring)), n - len(out))
                break
            # One pass over (a prefix of) the ring: serve each lane once, in order.
            for lane in list(islice(ring, min(n - len(out), len(ring)))):
                ln = lanes[lane]
                job = ln.pop_live()
                del where[job]
                out.append(job)
                if len(ln.dq) == ln.nstale:
                    self._drop(lane)
                else:
                    ring.move_to_end(lane)
        return out

    def pop_lane(self, lane: int, n: int) -> list[int]:
        if type(lane) is not int or not 0 <= lane < ID_LIMIT:
            lane = _as_id(lane, "lane")
        if type(n) is not int or n < 0:
            n = _as_count(n, "n")
        ln = self._lanes.get(lane)
        out: list[int] = []
        if ln is None:
            return out
        where = self._where
        while len(out) < n:
            job = ln.pop_live()
            del where[job]
            out.append(job)
            if len(ln.dq) == ln.nstale:
                self._drop(lane)
                break
        return out

    def discard(self, job_id: int) -> bool:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        lane = self._where.pop(job_id, None)
        if lane is None:
            return False
        ln = self._lanes[lane]
        ln.stale[job_id] = ln.stale.get(job_id, 0) + 1
        ln.nstale += 1
        if len(ln.dq) == ln.nstale:
            self._drop(lane)
        elif ln.nstale > _COMPACT_SLACK and 2 * ln.nstale > len(ln.dq):
            ln.compact()
        return True

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, job_id: object) -> bool:
        v = _lookup_id(job_id)
        return v is not None and v in self._where

    def lane_len(self, lane: int) -> int:
        if type(lane) is not int or not 0 <= lane < ID_LIMIT:
            lane = _as_id(lane, "lane")
        ln = self._lanes.get(lane)
        return 0 if ln is None else ln.live()

    def lanes(self) -> list[int]:
        """Non-empty lanes in service order (next to be served first)."""
        return list(self._ring)

    def __repr__(self) -> str:
        return f"<ReadyQueue jobs={len(self._where)} lanes={len(self._ring)}>"

    def __reduce__(self) -> NoReturn:
        raise _no_pickle(self)


class WaiterIndex:
    """Many-to-many job<->key waits; waking a key releases each job exactly once."""

    __slots__ = ("_jobs", "_keys")

    def __init__(self) -> None:
        # Insertion-ordered dicts double as ordered sets with O(1) removal.
        self._keys: dict[int, dict[int, None]] = {}
        self._jobs: dict[int, dict[int, None]] = {}

    def add(self, key: int, job_id: int) -> None:
        if type(key) is not int or not 0 <= key < ID_LIMIT:
            key = _as_id(key, "key")
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        ks = self._jobs.get(job_id)
        if ks is None:
            self._jobs[job_id] = {key: None}
        elif key in ks:
            return
        else:
            ks[key] = None
        js = self._keys.get(key)
        if js is None:
            self._keys[key] = {job_id: None}
        else:
            js[job_id] = None

    def _unlink(self, job_id: int, skip_key: int) -> None:
        keys = self._keys
        for k in self._jobs.pop(job_id):
            if k != skip_key:
                js = keys[k]
                del js[job_id]
                if not js:
                    del keys[k]

    def wake(self, key: int) -> list[int]:
        if type(key) is not int or not 0 <= key < ID_LIMIT:
            key = _as_id(key, "key")
        js = self._keys.pop(key, None)
        if js is None:
            return []
        out = list(js)
        for job in out:
            self._unlink(job, key)
        return out

    def remove_job(self, job_id: int) -> bool:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        if job_id not in self._jobs:
            return False
        self._unlink(job_id, -1)
        return True

    def keys_of(self, job_id: int) -> list[int]:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        ks = self._jobs.get(job_id)
        return [] if ks is None else list(ks)

    def waiting(self, key: int) -> int:
        if type(key) is not int or not 0 <= key < ID_LIMIT:
            key = _as_id(key, "key")
        js = self._keys.get(key)
        return 0 if js is None else len(js)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        v = _lookup_id(job_id)
        return v is not None and v in self._jobs

    def __repr__(self) -> str:
        return f"<WaiterIndex jobs={len(self._jobs)} keys={len(self._keys)}>"

    def __reduce__(self) -> NoReturn:
        raise _no_pickle(self)


_Entry = tuple[float, int, int]  # (deadline, schedule seq, job id)


class TimerHeap:
    """Deadline index, one deadline per job, ties broken by scheduling order.

    Rescheduling and cancelling leave stale heap entries behind (lazy
    deletion); an entry is live only while it is the job's current entry.
    """

    __slots__ = ("_entries", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._entries: dict[int, _Entry] = {}
        self._seq = 0

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._entries) + _COMPACT_SLACK:
            heap = list(self._entries.values())
            heapify(heap)
            self._heap = heap

    def schedule(self, job_id: int, deadline: float) -> None:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        if type(deadline) is not float or deadline != deadline:
            deadline = _as_time(deadline, "deadline")
        entry = (deadline, self._seq, job_id)
        self._seq += 1
        replaced = job_id in self._entries
        self._entries[job_id] = entry
        heappush(self._heap, entry)
        if replaced:
            self._maybe_compact()

    def cancel(self, job_id: int) -> bool:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        if self._entries.pop(job_id, None) is None:
            return False
        self._maybe_compact()
        return True

    def pop_due(self, now: float, limit: int = -1) -> list[int]:
        if type(now) is not float or now != now:
            now = _as_time(now, "now")
        if type(limit) is not int:
            limit = _index(limit)
        heap = self._heap
        entries = self._entries
        out: list[int] = []
        if limit == 0:
            return out
        while heap and heap[0][0] <= now:
            entry = heappop(heap)
            job = entry[2]
            if entries.get(job) is entry:
                del entries[job]
                out.append(job)
                if len(out) == limit:
                    break
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        entries = self._entries
        while heap:
            top = heap[0]
            if entries.get(top[2]) is top:
                return top[0]
            heappop(heap)
        return None

    def deadline_of(self, job_id: int) -> float | None:
        if type(job_id) is not int or not 0 <= job_id < ID_LIMIT:
            job_id = _as_id(job_id, "job_id")
        entry = self._entries.get(job_id)
        return None if entry is None else entry[0]

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<TimerHeap timers={len(self._entries)}>"

    def __reduce__(self) -> NoReturn:
        raise _no_pickle(self)


def partition_batch(
    targets: Sequence[int], seqs: Sequence[int], applied: Mapping[int, int]
) -> tuple[list[int], list[list[int]], list[int]]:
    """Group a drained batch by target job, dropping already-applied items.

    ``applied.get(target, -1)`` is called exactly once per distinct target, in
    first-appearance order, so custom mappings see the same calls from both
    twins. Targets whose items are all duplicates get no group.
    """
    tgt = targets if type(targets) is list or type(targets) is tuple else list(targets)
    sq = seqs if type(seqs) is list or type(seqs) is tuple else list(seqs)
    n = len(tgt)
    if len(sq) != n:
        raise ValueError(f"targets and seqs must have the same length, got {n} and {len(sq)}")
    order: list[int] = []
    groups: list[list[int]] = []
    duplicates: list[int] = []
    threshold: dict[int, int] = {}
    group_of: dict[int, list[int]] = {}
    get = applied.get
    for i in range(n):
        t = tgt[i]
        if type(t) is not int or not 0 <= t < ID_LIMIT:
            t = _as_id(t, f"targets[{i}]")
        s = sq[i]
        if type(s) is not int or not 0 <= s < ID_LIMIT:
            s = _as_id(s, f"seqs[{i}]")
        a = threshold.get(t)
        if a is None:
            raw = get(t, -1)
            a = raw if type(raw) is int else _index(raw)
            threshold[t] = a
        if s <= a:
            duplicates.append(i)
            continue
        g = group_of.get(t)
        if g is None:
            group_of[t] = g = []
            order.append(t)
            groups.append(g)
        g.append(i)
    return order, groups, duplicates
